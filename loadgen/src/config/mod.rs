//! The validated run configuration, built once from the command line (or by hand by a
//! caller such as acceptbench's sweep). Workers and reporters read only this.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, MethodArg, ModeArg, SocketOpsArg};
use crate::error::LoadgenError;
use crate::sources::SourceRange;

mod args;
pub mod request;
pub use common::ring::RingSetup;

/// Default in-flight cap of rate mode (all threads together).
pub const DEFAULT_RATE_CONCURRENCY: usize = 4096;
/// Default closed-loop connects in flight per thread: with io_uring, 16 in flight measured
/// ~1.14× the connections per client CPU-second of one blocking connect at a time (and of
/// the C reference client) on loopback, because submissions and wake-ups are batched.
pub const DEFAULT_CLOSED_PER_THREAD: usize = 16;
/// Default measured duration when neither --duration nor --connections is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Pacing strategy and its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Closed loop: each of `concurrency` connectors reconnects as soon as it is done.
    Closed,
    /// Open loop at `rate_per_s` connections/s spread evenly over time.
    Rate { rate_per_s: f64 },
    /// `connections` connects at once per round, `rounds` rounds.
    Burst { rounds: u32 },
}

impl Mode {
    /// "closed", "rate" or "burst".
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Closed => "closed",
            Mode::Rate { .. } => "rate",
            Mode::Burst { .. } => "burst",
        }
    }
}

/// Requested connect method; `run` resolves it to a `Method` (and reports which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    /// Blocking for closed mode with one connect per thread, else io_uring (epoll fallback).
    Auto,
    /// io_uring, falling back to epoll when the kernel refuses it.
    Uring,
    /// epoll or blocking, by in-flight count per thread.
    Std,
    /// Non-blocking connect + epoll.
    Epoll,
    /// Blocking connect.
    Blocking,
}

/// How a socket is made, set up and closed (`--socket-ops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SocketOps {
    /// In the ring where the connects go through io_uring and the kernel can (see
    /// `Ring`), else system calls; the report says which ran and why.
    #[default]
    Auto,
    /// socket(), setsockopt() and close() system calls around the driver's connect.
    Syscall,
    /// io_uring: IORING_OP_SOCKET, SO_LINGER by uring_cmd linked to the connect, and
    /// IORING_OP_CLOSE (hard-linked behind the connect when nothing needs the socket
    /// after it). `--method uring` only.
    Ring,
}

impl SocketOps {
    /// "auto", "syscall" or "ring".
    pub fn name(self) -> &'static str {
        match self {
            SocketOps::Auto => "auto",
            SocketOps::Syscall => "syscall",
            SocketOps::Ring => "ring",
        }
    }
}

/// What `close()` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// SO_LINGER {1,0}: RST, no TIME_WAIT on the client (default).
    Reset,
    /// Plain close: FIN, the client side goes through TIME_WAIT.
    Graceful,
}

/// Where the CLI writes its results; `run` ignores this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Print the report as one JSON object (last stdout line).
    pub json: bool,
    /// HdrHistogram percentile-distribution file (µs).
    pub hgrm: Option<PathBuf>,
    /// Served-latency percentile-distribution file (µs; `wait_close` runs).
    pub served_hgrm: Option<PathBuf>,
    /// HdrHistogram V2 interval log file (ns, 1 s intervals).
    pub hlog: Option<PathBuf>,
    /// Per-connection records file.
    pub records: Option<PathBuf>,
    /// Run id written into the records file's header (joins refuse files of another run).
    pub run_id: Option<String>,
    /// No human summary, no progress line.
    pub quiet: bool,
    /// Burst: report each round on stdout and wait for "next"/"stop" on stdin.
    pub sync_stdio: bool,
    /// Driven over ssh: `ready pid <PID>`, wait for `go`; `stop` or end of stdin stops
    /// the run (see [`crate::protocol`]).
    pub remote: bool,
    /// `--trace kernel`: record the kernel's account of the target port.
    pub trace_kernel: bool,
    /// `--trace-required`: fail when it cannot be recorded.
    pub trace_required: bool,
    /// `--trace-out FILE`: the per-connection timeline CSV.
    pub trace_out: Option<PathBuf>,
}

/// A validated loadgen configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Listener to connect to.
    pub target: SocketAddr,
    /// Pacing strategy.
    pub mode: Mode,
    /// Connections in flight across all threads (burst: the burst size).
    pub concurrency: usize,
    /// Stop after this many measured attempts (burst: connects per round).
    pub connections: Option<u64>,
    /// Measured duration (closed/rate); `None` = until `connections` or the stop flag.
    pub duration: Option<Duration>,
    /// Warm-up before the measured window (closed/rate).
    pub warmup: Duration,
    /// Worker threads.
    pub threads: usize,
    /// CPUs to pin worker i to (`cpus[i % len]`); empty = no pinning.
    pub cpus: Vec<usize>,
    /// Source addresses to bind, round robin; `None` = the kernel's choice.
    pub sources: Option<SourceRange>,
    /// Per-connect timeout (burst: the wait for a round's outcomes).
    pub connect_timeout: Duration,
    /// RST or FIN on close.
    pub close: CloseMode,
    /// Wait for the server's action on each connection (closed/rate): its first byte
    /// or its close, then read until it closes; counted as served, client-only or reset.
    pub wait_close: bool,
    /// Sent once connected (needs `wait_close`): the server's answer is what it does.
    pub server_request: Option<Vec<u8>>,
    /// How long to wait for the server's answer or close; `None` = `connect_timeout`.
    pub serve_timeout: Option<Duration>,
    /// Burst: close each round's connections before reporting the round.
    pub close_early: bool,
    /// Requested connect method.
    pub method: MethodChoice,
    /// io_uring set-up flags of the connect driver's ring (`--method uring`; default
    /// `defer`, falling back to `coop`, then `default`, where the kernel refuses it).
    pub ring_setup: RingSetup,
    /// Socket, SO_LINGER and close by system call or in the ring (`--method uring`).
    pub socket_ops: SocketOps,
    /// Keep per-connection records (costs one getsockname per connection).
    pub keep_records: bool,
    /// Keep one histogram per second for an interval log.
    pub keep_intervals: bool,
    /// CLI output settings.
    pub output: Output,
}

impl Config {
    /// A closed-loop, one-thread configuration for `target` with every default.
    pub fn new(target: SocketAddr) -> Self {
        Config {
            target,
            mode: Mode::Closed,
            concurrency: DEFAULT_CLOSED_PER_THREAD,
            connections: None,
            duration: Some(DEFAULT_DURATION),
            warmup: Duration::ZERO,
            threads: 1,
            cpus: Vec::new(),
            sources: None,
            connect_timeout: Duration::from_secs(3),
            close: CloseMode::Reset,
            wait_close: false,
            server_request: None,
            serve_timeout: None,
            close_early: false,
            method: MethodChoice::Auto,
            ring_setup: RingSetup::Defer,
            socket_ops: SocketOps::Auto,
            keep_records: false,
            keep_intervals: false,
            output: Output::default(),
        }
    }

    /// Parses loadgen's command line (`args[0]` is the program name) into a validated config.
    /// Help/version requests and clap's own errors come back as `Err(clap::Error)`.
    pub fn from_args<I, T>(args: I) -> Result<Result<Config, LoadgenError>, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        Ok(Config::from_cli(&cli))
    }

    /// Builds and validates a config from parsed flags.
    pub fn from_cli(cli: &Cli) -> Result<Config, LoadgenError> {
        let target = parse_target(&cli.target)?;
        let mode = mode_from_cli(cli)?;
        let (concurrency, duration) = load_from_cli(cli)?;
        let sources = cli.sources.as_deref().map(SourceRange::parse).transpose()?;
        let method = method_from_cli(cli)?;
        let server_request = cli
            .server_request
            .as_deref()
            .map(request::parse)
            .transpose()?;
        let config = Config {
            target,
            mode,
            concurrency,
            connections: cli.connections,
            duration,
            warmup: cli.warmup.unwrap_or(Duration::ZERO),
            threads: cli.threads,
            cpus: cli.cpus.clone(),
            sources,
            connect_timeout: cli.connect_timeout,
            close: if cli.graceful_close {
                CloseMode::Graceful
            } else {
                CloseMode::Reset
            },
            wait_close: cli.wait_close || server_request.is_some(),
            server_request,
            serve_timeout: cli.serve_timeout,
            close_early: cli.close_early,
            method,
            ring_setup: cli.ring_setup.unwrap_or(RingSetup::Defer),
            socket_ops: match cli.socket_ops {
                SocketOpsArg::Auto => SocketOps::Auto,
                SocketOpsArg::Syscall => SocketOps::Syscall,
                SocketOpsArg::Ring => SocketOps::Ring,
            },
            keep_records: cli.records.is_some(),
            keep_intervals: cli.hlog.is_some(),
            output: Output {
                json: cli.json,
                hgrm: cli.hgrm.clone(),
                served_hgrm: cli.served_hgrm.clone(),
                hlog: cli.hlog.clone(),
                records: cli.records.clone(),
                run_id: cli.run_id.clone(),
                quiet: cli.quiet,
                sync_stdio: cli.sync_stdio,
                remote: cli.remote,
                trace_kernel: cli.trace.is_some(),
                trace_required: cli.trace_required,
                trace_out: cli.trace_out.clone(),
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the invariants `run` relies on; call it after building a config by hand.
    pub fn validate(&self) -> Result<(), LoadgenError> {
        let bad = |s: String| Err(LoadgenError::BadOption(s));
        if self.target.port() == 0 {
            return Err(LoadgenError::BadTarget {
                value: self.target.to_string(),
                reason: "port 0 cannot be connected to".into(),
            });
        }
        if let Mode::Rate { rate_per_s } = self.mode {
            if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
                return Err(LoadgenError::BadRate(rate_per_s));
            }
        }
        if self.threads == 0 || self.threads > 1024 {
            return bad(format!(
                "--threads {} is out of range; use 1..=1024",
                self.threads
            ));
        }
        if let Mode::Burst { rounds } = self.mode {
            let n = self.connections.unwrap_or(0);
            if n == 0 {
                return bad("--mode burst needs --connections N (the burst size), N ≥ 1".into());
            }
            if rounds == 0 {
                return bad("--rounds 0 runs nothing; use --rounds 1 or more".into());
            }
            if self.concurrency as u64 != n {
                return bad(format!(
                    "burst: concurrency {} must equal --connections {n}",
                    self.concurrency
                ));
            }
            if !self.warmup.is_zero() {
                return bad("--warmup does not apply to --mode burst; drop it (use an extra --rounds instead)".into());
            }
            if self.wait_close && self.close_early {
                return bad("--close-early resets each round's connections, --wait-close waits for the server to serve them: drop one".into());
            }
        } else if self.concurrency < self.threads {
            return bad(format!(
                "--concurrency {} is below --threads {}: every thread needs at least one connection in flight; raise --concurrency or lower --threads",
                self.concurrency, self.threads
            ));
        }
        self.validate_serve()?;
        if self.connections == Some(0) {
            return bad("--connections 0 runs nothing; give N ≥ 1 or drop it".into());
        }
        if self.duration == Some(Duration::ZERO) {
            return bad("--duration 0 runs nothing; give e.g. --duration 10s".into());
        }
        if self.connect_timeout.is_zero() {
            return bad(
                "--connect-timeout 0 gives up before any connect; give e.g. --connect-timeout 3s"
                    .into(),
            );
        }
        if let Some(src) = &self.sources {
            if src.is_ipv6() != self.target.is_ipv6() {
                return Err(LoadgenError::BadSources {
                    value: format!("{}..", src.nth(0)),
                    reason: format!(
                        "source family does not match --target {}; use IPv{} sources",
                        self.target,
                        if self.target.is_ipv6() { 6 } else { 4 }
                    ),
                });
            }
        }
        // Existence only, not this thread's affinity mask: `acceptbench sweep` starts
        // loadgen from its acceptor thread, already pinned to the server CPU, and
        // sched_setaffinity may widen a mask again (within the cgroup's cpuset).
        // SAFETY: sysconf with a valid name has no memory effects.
        let ncpu = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1) as usize;
        if let Some(&cpu) = self.cpus.iter().find(|&&c| c >= ncpu) {
            return bad(format!(
                "--cpus: cpu {cpu} does not exist (this machine has cpus 0..={})",
                ncpu - 1
            ));
        }
        if self.socket_ops == SocketOps::Ring
            && matches!(
                self.method,
                MethodChoice::Epoll | MethodChoice::Blocking | MethodChoice::Std
            )
        {
            return bad("--socket-ops ring makes, sets up and closes sockets in io_uring: use --method uring (or auto)".into());
        }
        if self.method == MethodChoice::Blocking {
            if let Mode::Burst { .. } = self.mode {
                return bad("--method blocking keeps one connect in flight per thread, a burst needs many: use --method uring or epoll".into());
            }
            if self.concurrency != self.threads {
                return bad(format!(
                    "--method blocking keeps one connect in flight per thread, so --concurrency {} needs --threads {} (or use --method uring/epoll)",
                    self.concurrency, self.concurrency
                ));
            }
        }
        self.check_ports()
    }

    /// `--server-request` and `--serve-timeout` need the wait for the server's action.
    fn validate_serve(&self) -> Result<(), LoadgenError> {
        let bad = |s: &str| Err(LoadgenError::BadOption(s.into()));
        if self.server_request.is_some() && !self.wait_close {
            return bad("a server request needs wait_close (the answer is what is waited for); set it, as --server-request does");
        }
        if self.server_request.as_ref().is_some_and(|r| r.is_empty()) {
            return bad("--server-request is empty; give the request or drop it");
        }
        if self.serve_timeout.is_some() && !self.wait_close {
            return bad("--serve-timeout bounds the wait for the server's answer or close: add --wait-close (or --server-request), or drop it");
        }
        if self.output.served_hgrm.is_some() && !self.wait_close {
            return bad("--served-hgrm needs a served latency: add --wait-close (or --server-request), or drop it");
        }
        if self.serve_timeout == Some(Duration::ZERO) {
            return bad("--serve-timeout 0 gives up before the server can act; give e.g. --serve-timeout 5s");
        }
        Ok(())
    }

    /// How long a connection waits for the server's answer or close.
    pub fn serve_wait(&self) -> Duration {
        self.serve_timeout.unwrap_or(self.connect_timeout)
    }

    /// Connections open at once must fit in (sources × ephemeral ports).
    fn check_ports(&self) -> Result<(), LoadgenError> {
        let ports = local_port_range_size();
        let sources = self.sources.as_ref().map_or(1, |s| s.len());
        let available = ports.saturating_mul(sources);
        let (what, needed) = match self.mode {
            Mode::Burst { .. } => ("--connections", self.concurrency as u64),
            _ => ("--concurrency", self.concurrency as u64),
        };
        if needed > available {
            return Err(LoadgenError::PortsExhausted {
                what,
                needed,
                available,
                sources,
                ports,
            });
        }
        Ok(())
    }

    /// Connections each worker keeps in flight: `concurrency` split as evenly as possible.
    pub fn per_thread_slots(&self, thread: usize) -> usize {
        share(self.concurrency as u64, self.threads, thread) as usize
    }

    /// This worker's share of `--connections`, if given.
    pub fn per_thread_connections(&self, thread: usize) -> Option<u64> {
        self.connections.map(|n| share(n, self.threads, thread))
    }
}

/// `total` split over `parts`, part `i`'s share (the first `total % parts` get one more).
pub(crate) fn share(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

/// Parses IP:PORT, or resolves HOST:PORT (e.g. localhost:8080) to its first address.
fn parse_target(value: &str) -> Result<SocketAddr, LoadgenError> {
    let bad = |reason: String| LoadgenError::BadTarget {
        value: value.to_string(),
        reason,
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(bad("port 0 cannot be connected to".into()));
        }
        return Ok(addr);
    }
    if !value.contains(':') {
        return Err(bad("no port".into()));
    }
    let mut addrs = value
        .to_socket_addrs()
        .map_err(|e| bad(format!("cannot resolve: {e}")))?;
    match addrs.next() {
        Some(a) if a.port() != 0 => Ok(a),
        Some(_) => Err(bad("port 0 cannot be connected to".into())),
        None => Err(bad("resolves to no address".into())),
    }
}

/// Size of net.ipv4.ip_local_port_range (applies to IPv6 too); 28232 if unreadable.
fn local_port_range_size() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u64>());
            match (it.next(), it.next()) {
                (Some(Ok(lo)), Some(Ok(hi))) if hi >= lo => Some(hi - lo + 1),
                _ => None,
            }
        })
        .unwrap_or(28232)
}

/// The mode, and the flags that belong to one mode only.
fn mode_from_cli(cli: &Cli) -> Result<Mode, LoadgenError> {
    let bad = |m: &str| Err(LoadgenError::BadOption(m.into()));
    if cli.rate.is_some() && cli.mode != ModeArg::Rate {
        return bad("--rate applies only to --mode rate; add --mode rate or drop --rate");
    }
    if cli.rounds != 1 && cli.mode != ModeArg::Burst {
        return bad("--rounds applies only to --mode burst");
    }
    if cli.sync_stdio && cli.mode != ModeArg::Burst {
        return bad("--sync-stdio applies only to --mode burst");
    }
    if cli.sync_stdio && cli.remote {
        return bad("--remote and --sync-stdio both read stdin: give one of them");
    }
    Ok(match cli.mode {
        ModeArg::Closed => Mode::Closed,
        ModeArg::Rate => {
            let rate = cli.rate.ok_or_else(|| {
                LoadgenError::BadOption(
                    "--mode rate needs --rate R (connections per second), e.g. --rate 1000".into(),
                )
            })?;
            Mode::Rate { rate_per_s: rate }
        }
        ModeArg::Burst => Mode::Burst { rounds: cli.rounds },
    })
}

/// Connects in flight and how long to run, with each mode's defaults.
fn load_from_cli(cli: &Cli) -> Result<(usize, Option<Duration>), LoadgenError> {
    let concurrency = match (cli.mode, cli.concurrency) {
        (ModeArg::Burst, Some(_)) => {
            return Err(LoadgenError::BadOption(
                "--concurrency does not apply to --mode burst: all --connections N connects are in flight at once".into(),
            ))
        }
        (ModeArg::Burst, None) => cli.connections.unwrap_or(0) as usize,
        (_, Some(c)) => c,
        (ModeArg::Closed, None) => DEFAULT_CLOSED_PER_THREAD * cli.threads,
        (ModeArg::Rate, None) => DEFAULT_RATE_CONCURRENCY.max(cli.threads),
    };
    let duration = match (cli.mode, cli.duration, cli.connections) {
        (ModeArg::Burst, Some(_), _) => {
            return Err(LoadgenError::BadOption(
                "--duration does not apply to --mode burst; use --connections N, --rounds K and --connect-timeout".into(),
            ))
        }
        (ModeArg::Burst, None, _) => None,
        (_, Some(d), _) => Some(d),
        (_, None, Some(_)) => None,
        (_, None, None) => Some(DEFAULT_DURATION),
    };
    Ok((concurrency, duration))
}

/// How to connect; `--ring-setup` only with a method that may use io_uring.
fn method_from_cli(cli: &Cli) -> Result<MethodChoice, LoadgenError> {
    let method = match cli.method {
        MethodArg::Auto => MethodChoice::Auto,
        MethodArg::Uring => MethodChoice::Uring,
        MethodArg::Std => MethodChoice::Std,
        MethodArg::Epoll => MethodChoice::Epoll,
        MethodArg::Blocking => MethodChoice::Blocking,
    };
    if cli.ring_setup.is_some() && !matches!(method, MethodChoice::Auto | MethodChoice::Uring) {
        return Err(LoadgenError::BadOption(
            "--ring-setup applies only to io_uring connects: use --method uring (or auto)".into(),
        ));
    }
    Ok(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `loadgen ARGS` parsed and validated (clap itself must accept them).
    pub(super) fn cfg(args: &[&str]) -> Result<Config, LoadgenError> {
        let mut v = vec!["loadgen"];
        v.extend_from_slice(args);
        Config::from_args(v).expect("clap accepts")
    }

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(10u64, 3usize), (1, 4), (4096, 2), (7, 7)] {
            let sum: u64 = (0..parts).map(|i| share(total, parts, i)).sum();
            assert_eq!(sum, total);
        }
    }

    #[test]
    fn validates() {
        assert!(cfg(&["--target", "127.0.0.1:80"]).is_ok());
        assert!(matches!(
            cfg(&["--target", "127.0.0.1"]),
            Err(LoadgenError::BadTarget { .. })
        ));
        assert!(matches!(
            cfg(&["--target", "127.0.0.1:80", "--mode", "rate", "--rate", "0"]),
            Err(LoadgenError::BadRate(_))
        ));
        assert!(matches!(
            cfg(&[
                "--target",
                "127.0.0.1:80",
                "--sources",
                "127.0.0.9-127.0.0.2"
            ]),
            Err(LoadgenError::BadSources { .. })
        ));
        assert!(matches!(
            cfg(&[
                "--target",
                "127.0.0.1:80",
                "--mode",
                "burst",
                "--connections",
                "10000000"
            ]),
            Err(LoadgenError::PortsExhausted { .. })
        ));
        assert!(cfg(&["--target", "127.0.0.1:80", "--mode", "burst"]).is_err());
    }
}
