//! PLACEHOLDER — implemented by the compare/plot helper (issue 7).

use std::process::ExitCode;

use crate::config::MergeConfig;

/// Runs the command.
pub fn run(cfg: &MergeConfig) -> anyhow::Result<ExitCode> {
    let _ = cfg;
    anyhow::bail!("not implemented yet")
}
