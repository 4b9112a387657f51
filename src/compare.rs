//! PLACEHOLDER — implemented by the compare/plot helper (issue 7).

use std::process::ExitCode;

use crate::config::CompareConfig;

/// Runs the command.
pub fn run(cfg: &CompareConfig) -> anyhow::Result<ExitCode> {
    let _ = cfg;
    anyhow::bail!("not implemented yet")
}
