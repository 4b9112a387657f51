//! Ctrl-C and SIGTERM: both raise a [`StopFlag`], so a command ends its current work
//! cleanly and keeps what it measured.

use anyhow::Context;

use crate::engine::StopFlag;

/// Installs a Ctrl-C / SIGTERM handler that raises `stop` (once per process).
pub fn stop_on_signal(stop: &StopFlag) -> anyhow::Result<()> {
    let stop = stop.clone();
    ctrlc::set_handler(move || stop.raise()).context("cannot install the Ctrl-C handler")
}
