//! The library's error type: what a user can fix (bad flags, limits of this machine) and
//! what the kernel refused at run time. Every message names the thing, the value and the fix.

use std::io;

/// Everything `Config` validation and `run` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// `--target` is not an `IP:PORT` address.
    #[error("--target {value:?} is not a usable address ({reason}); write IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")]
    BadTarget { value: String, reason: String },
    /// `--rate` is zero, negative or not finite.
    #[error(
        "--rate {0} is not a usable rate; give connections per second above 0, e.g. --rate 1000"
    )]
    BadRate(f64),
    /// `--sources` does not parse or does not fit the target.
    #[error("--sources {value:?}: {reason}")]
    BadSources { value: String, reason: String },
    /// More connections must be open at once than (source addresses × local ports) allow.
    #[error("{what} {needed} needs {needed} local ports at once, but only {available} are available ({sources} source address(es) × {ports} ports in net.ipv4.ip_local_port_range); lower it or add source addresses with --sources 127.0.0.2-127.0.0.9")]
    PortsExhausted {
        what: &'static str,
        needed: u64,
        available: u64,
        sources: u64,
        ports: u64,
    },
    /// More sockets must be open at once than RLIMIT_NOFILE allows.
    #[error("{needed} sockets must be open at once but the open-files limit is {limit}; raise it (ulimit -n {needed_with_slack}) or lower --connections/--concurrency")]
    FdLimit {
        needed: u64,
        limit: u64,
        needed_with_slack: u64,
    },
    /// A flag's value or a combination of flags makes no sense; the message says what to do.
    #[error("{0}")]
    BadOption(String),
    /// Pinning a worker thread failed.
    #[error("cannot pin worker thread {thread} to cpu {cpu}: {source}")]
    Pin {
        thread: usize,
        cpu: usize,
        source: io::Error,
    },
    /// A system call the run depends on failed (not a per-connection outcome).
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// A worker thread panicked (a bug in loadgen).
    #[error("worker thread {0} panicked; this is a bug in loadgen")]
    WorkerPanicked(usize),
}

impl LoadgenError {
    /// True when the user can fix this by changing the command line (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            LoadgenError::BadTarget { .. }
                | LoadgenError::BadRate(_)
                | LoadgenError::BadSources { .. }
                | LoadgenError::PortsExhausted { .. }
                | LoadgenError::FdLimit { .. }
                | LoadgenError::BadOption(_)
        )
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        LoadgenError::Io {
            what: what.into(),
            source,
        }
    }
}
