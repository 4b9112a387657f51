//! Command-line arguments (clap derive) and nothing else. [`crate::config`] turns
//! them into validated configs; nothing below the command layer sees clap.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::{EngineKind, RingSetup};

/// Measures how Linux accepts TCP connections. With no command: the default sweep on loopback.
#[derive(Debug, Parser)]
#[command(
    name = "acceptbench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: `sweep` with its defaults).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// What this kernel supports and how it is set up.
    Probe(ProbeArgs),
    /// The classic server, instrumented: accept, decode the peer, close.
    Listen(ListenArgs),
    /// Engines × backlogs × modes, written to results/<run-id>/.
    Sweep(SweepArgs),
    /// Runs from different kernels, runs or machines side by side, with ratios and noise.
    Compare(CompareArgs),
    /// PNG and SVG charts of one or more runs.
    Plot(PlotArgs),
    /// Merge HdrHistogram V2 interval logs (.hlog) from several loadgen processes or hosts.
    Merge(MergeArgs),
    /// Run the bundled load generator (same flags as the `loadgen` binary).
    #[command(disable_help_flag = true)]
    Loadgen {
        /// loadgen's arguments, passed through.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

/// `acceptbench probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `acceptbench listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Engine: std, uring, multishot, uring-linked, tokio-uring, tokio.
    #[arg(long, default_value = "std")]
    pub engine: EngineKind,
    /// Address to listen on (IPv4 or IPv6, e.g. 0.0.0.0:8080 or [::1]:8080).
    #[arg(long, default_value = "0.0.0.0:8080", value_parser = parse_addr)]
    pub addr: SocketAddr,
    /// listen(2) backlog; the kernel clamps it to net.core.somaxconn.
    #[arg(long, default_value = "128", value_parser = clap::value_parser!(u32).range(1..))]
    pub backlog: u32,
    /// Stop after this many accepted connections.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Stop after this long (e.g. 10s, 500ms).
    #[arg(long, value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// Print each peer as ip:port when it is accepted.
    #[arg(long)]
    pub print_peers: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// io_uring single-shot accepts kept in flight (engine `uring`).
    #[arg(long, default_value = "8", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub inflight: u32,
    /// Simulated work per accepted connection (e.g. 100us), to make the acceptor slower on purpose.
    #[arg(long, value_parser = parse_duration)]
    pub accept_delay: Option<Duration>,
    /// Set SO_REUSEPORT on the listener.
    #[arg(long)]
    pub reuse_port: bool,
    /// Pin the acceptor to this CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// io_uring set-up flags (ring engines): default, coop (COOP_TASKRUN, 5.19) or defer
    /// (SINGLE_ISSUER|DEFER_TASKRUN, 6.1). Default: defer for uring-linked, default for
    /// the others; a flag the kernel refuses falls back, and the summary says so.
    #[arg(long)]
    pub ring_setup: Option<RingSetup>,
    /// Accept into io_uring direct descriptors (engine uring-linked; Linux 5.19).
    #[arg(long)]
    pub direct: bool,
}

/// `acceptbench sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Engines, comma-separated (default: every engine; unsupported ones are recorded as skipped).
    #[arg(long)]
    pub engines: Option<String>,
    /// Backlogs, comma-separated.
    #[arg(long, default_value = "16,128,1024,4096")]
    pub backlogs: String,
    /// Modes, comma-separated: closed, rate, drain, burst, overload.
    #[arg(long, default_value = "closed,drain")]
    pub modes: String,
    /// Measured time per run.
    #[arg(long, default_value = "1s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub duration: Duration,
    /// Warm-up before each closed/rate run (connections made then are not measured).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Repetitions of every (engine, backlog, mode).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Connection rate for mode `rate` (conn/s).
    #[arg(long, default_value = "10000", value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// Output directory; a run directory <UTC time>-<kernel>-<host> is made inside it.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// io_uring single-shot accepts in flight for engine `uring`.
    #[arg(long, default_value = "8", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub inflight: u32,
    /// Connects in flight per loadgen thread in mode `closed` (1 = the classic blocking client).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// loadgen threads.
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// CPU for the acceptor.
    #[arg(long, default_value = "0")]
    pub server_cpu: usize,
    /// CPUs for loadgen, comma-separated (default: every CPU but the acceptor's).
    #[arg(long)]
    pub client_cpus: Option<String>,
    /// Do not draw plots into the run directory.
    #[arg(long)]
    pub no_plots: bool,
    /// Connects per burst in mode `burst` (default: 4·backlog+16).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst_size: Option<u32>,
    /// Mode `burst`: the acceptor stays paused until the accept queue has been non-empty and unchanged this long (at most 10 s).
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    pub pause: Duration,
    /// Client connect timeout in burst/overload (SYN retransmits come at about 1 s, 3 s, 7 s).
    #[arg(long, default_value = "4s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub connect_timeout: Duration,
    /// Work per accepted connection in mode `overload`, to make the acceptor slower on purpose.
    #[arg(long, default_value = "200us", value_parser = parse_duration)]
    pub accept_delay: Duration,
    /// Overflow runs: set net.ipv4.tcp_abort_on_overflow=1 (private network namespace, root).
    #[arg(long)]
    pub abort_on_overflow: bool,
    /// Overflow runs: net.ipv4.tcp_syncookies 0, 1 or 2 (private network namespace, root).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub syncookies: Option<u8>,
    /// Overflow runs: net.core.somaxconn (private network namespace, root).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub somaxconn: Option<u32>,
}

/// A humantime duration (`10s`, `500ms`, `2m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write durations like 10s, 500ms or 2m)"))
}

/// A humantime duration above zero.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    if s.trim().starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("the duration must be above zero".into());
    }
    Ok(d)
}

/// A socket address `ip:port`, IPv6 in brackets.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an address: write ip:port, e.g. 0.0.0.0:8080 or [::1]:8080")
    })
}

/// `acceptbench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run directories (results/<run-id>); the first is the reference for ratios.
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<PathBuf>,
    /// Metrics (summary.csv columns), comma-separated.
    #[arg(
        long,
        default_value = "accepts_per_s,acceptor_cpu_us_per_accept,peer_p99_ns"
    )]
    pub metric: String,
    /// Output format: text, markdown or csv.
    #[arg(long, default_value = "text")]
    pub format: String,
}

/// `acceptbench plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Run directories; with several, one series per run (labelled by kernel).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where to write the charts (default: <first run>/plots).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// SVG only (small enough to commit; PNG charts are ~10× larger).
    #[arg(long)]
    pub svg_only: bool,
}

/// `acceptbench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Interval logs to merge.
    #[arg(required = true)]
    pub hlogs: Vec<PathBuf>,
    /// The merged percentile distribution (.hgrm); a merged .hlog is written beside it.
    #[arg(long)]
    pub out: PathBuf,
}
