//! io_uring support on this kernel, and which engines can run here.
//! PLACEHOLDER API — the engines helper replaces the body with a real probe.

use serde::{Deserialize, Serialize};

use crate::engine::EngineKind;

/// What the io_uring probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UringProbe {
    /// `io_uring_setup` worked.
    pub setup_ok: bool,
    /// Why setup failed, when it did.
    pub setup_error: Option<String>,
    /// `kernel.io_uring_disabled` (0 enabled, 1 root/group only, 2 disabled), if present.
    pub io_uring_disabled: Option<u32>,
    /// IORING_OP_ACCEPT (5.5).
    pub accept: bool,
    /// Multishot accept (5.19).
    pub accept_multishot: bool,
    /// IORING_OP_CONNECT (5.5).
    pub connect: bool,
    /// IORING_OP_CLOSE (5.6).
    pub close: bool,
    /// IORING_OP_ASYNC_CANCEL (5.5).
    pub async_cancel: bool,
    /// IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN accepted (6.1).
    pub defer_taskrun: bool,
    /// IORING_FEAT_EXT_ARG (wait with timeout, 5.11).
    pub ext_arg: bool,
}

/// Runs the probe.
pub fn probe_uring() -> UringProbe {
    UringProbe::default()
}

/// Whether an engine can run here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSupport {
    /// Engine name (`std`, `uring`, `multishot`, `tokio-uring`, `tokio`).
    pub name: String,
    /// True when it can run.
    pub supported: bool,
    /// Empty when supported; otherwise what is missing and the Linux version that has it.
    pub reason: String,
}

/// Support for one engine given a probe.
pub fn engine_support(kind: EngineKind, probe: &UringProbe) -> EngineSupport {
    let _ = probe;
    EngineSupport {
        name: kind.name().into(),
        supported: true,
        reason: String::new(),
    }
}
