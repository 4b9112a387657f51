//! PLACEHOLDER — implemented by the compare/plot helper (issue 7).

use std::process::ExitCode;

use crate::config::PlotConfig;

/// Runs the command.
pub fn run(cfg: &PlotConfig) -> anyhow::Result<ExitCode> {
    let _ = cfg;
    anyhow::bail!("not implemented yet")
}

/// Draws the standard charts of one run directory into `<dir>/plots/`; returns the files written.
pub fn plot_run_dir(dir: &std::path::Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let _ = dir;
    Ok(Vec::new())
}
