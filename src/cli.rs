//! Command-line arguments (clap derive) and nothing else. [`crate::config`] turns
//! them into validated configs; nothing below the command layer sees clap.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::acceptors::{Sharing, SlowAcceptor};
use crate::engine::{AcceptFlags, EngineKind, PeerOp, RingSetup};
use crate::kinds::{CompareFormat, Mode, StallLoad};
use crate::parse::{parse_addr, parse_duration, parse_positive_duration};

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

/// Parses a command line (program name first) and names the flags written on it: the
/// long names of the subcommand's flags given on the command line rather than left at
/// their defaults, so that a flag with no effect where it is given can be refused.
pub fn parse<I, T>(argv: I) -> Result<(Cli, Vec<String>), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let given = match matches.subcommand() {
        Some((name, sub)) => command
            .find_subcommand(name)
            .map(|c| {
                c.get_arguments()
                    .filter(|a| {
                        sub.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine)
                    })
                    .filter_map(|a| a.get_long())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok((cli, given))
}

/// The subcommands.
// Parsed once per process and matched once: boxing the large sweep arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// What this kernel supports and how it is set up.
    Probe(ProbeArgs),
    /// The classic server, instrumented: accept, decode the peer, close.
    Listen(ListenArgs),
    /// Engines × backlogs × modes × rounds, written to results/<run-id>/.
    #[command(
        after_help = "Exit status: 0 every planned run was measured (or skipped: engine unsupported here); \
3 some runs failed (status failed in summary.csv, left out of cells.csv and every ratio); \
4 no run succeeded; 130 interrupted (Ctrl-C): what was measured is kept and marked incomplete; \
1 the sweep could not start (bad input, unwritable --out)."
    )]
    Sweep(SweepArgs),
    /// Runs from different kernels, runs or machines side by side, with ratios and noise.
    Compare(CompareArgs),
    /// PNG and SVG charts of one or more runs.
    Plot(PlotArgs),
    /// Merge HdrHistogram V2 interval logs (.hlog) from several loadgen processes or hosts.
    Merge(MergeArgs),
    /// Join one acceptor's records with loadgen records from any number of hosts into a
    /// results directory (summary.csv, hosts.csv, hgrm/, meta.json, README.md).
    #[command(
        after_help = "Exit status: 0 every connection matched; 3 some did not (the results are written, \
README.md and hosts.csv say where); 1 a file was unreadable or refused (another server, run or time window; \
truncated; another format version)."
    )]
    Join(JoinArgs),
    /// What this acceptbench is and its host's clock, as one JSON line (what a sweep
    /// asks of its ssh client hosts); with --clock, answers each stdin line with the
    /// wall clock (CLOCK_REALTIME ns) until the end of stdin.
    #[command(hide = true)]
    HostInfo(HostInfoArgs),
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

/// `acceptbench host-info`.
#[derive(Debug, Args)]
pub struct HostInfoArgs {
    /// After the JSON line, answer each stdin line with CLOCK_REALTIME ns.
    #[arg(long)]
    pub clock: bool,
}

/// `acceptbench listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Engine.
    #[arg(long, default_value = "std")]
    pub engine: EngineKind,
    /// Address to listen on (IPv4 or IPv6, e.g. 0.0.0.0:8080 or [::1]:8080). An IPv6
    /// address listens for IPv6 clients only (IPV6_V6ONLY): IPv4 clients are refused,
    /// unless --dual-stack.
    #[arg(long, default_value = "0.0.0.0:8080", value_parser = parse_addr)]
    pub addr: SocketAddr,
    /// With an IPv6 --addr such as [::]:8080: accept IPv4 clients too (IPV6_V6ONLY off);
    /// they are reported as plain IPv4 (127.0.0.1:port, not [::ffff:127.0.0.1]:port).
    #[arg(long)]
    pub dual_stack: bool,
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
    /// io_uring single-shot accepts kept in flight (engine `uring`). 1 by default: more
    /// armed accepts cost more CPU per connection on a closed loop (see docs/results.md).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub inflight: u32,
    /// How engine `uring` arms its accepts (Linux 6.10 for all but none): none,
    /// poll-first (IORING_ACCEPT_POLL_FIRST), dontwait (IORING_ACCEPT_DONTWAIT, POLL_FIRST
    /// after an EAGAIN), nonempty (netty's use of IORING_CQE_F_SOCK_NONEMPTY: DONTWAIT
    /// when more are queued, POLL_FIRST when not). Refused for other engines.
    #[arg(long, default_value = "none")]
    pub accept_flags: AcceptFlags,
    /// How engine `uring-linked` reads the peer in the ring: getsockname (6.19's
    /// SOCKET_URING_OP_GETSOCKNAME with the peer flag), getsockopt (SO_PEERNAME, 6.7), or
    /// auto (getsockname where the kernel has it). Refused for other engines.
    #[arg(long, default_value = "auto")]
    pub peer_op: PeerOp,
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
    /// Write one record per accepted connection (peer, accept-seen and peer-decoded
    /// times, with a clock anchor) for `acceptbench join`; format in src/serverrec.rs.
    #[arg(long, value_name = "FILE")]
    pub records: Option<PathBuf>,
    /// Run id stored in the --records header; `join` refuses client files of another run id.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Acceptor threads, each running its own instance of the engine.
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub acceptors: u32,
    /// How several acceptors share the port: shared (one listener) or reuseport (one
    /// SO_REUSEPORT listener per acceptor, each its own backlog).
    #[arg(long, default_value = "shared")]
    pub sharing: Sharing,
    /// Pin the acceptors round-robin over these CPUs, comma-separated (--cpu X is --cpus X).
    #[arg(long, value_delimiter = ',', conflicts_with = "cpu")]
    pub cpus: Option<Vec<usize>>,
    /// Acceptor I busy-waits DELAY per connection, the others run free (e.g. 0:2ms).
    #[arg(long)]
    pub slow_acceptor: Option<SlowAcceptor>,
    /// `kernel`: record the kernel's account of the port's connections around the
    /// whole run (tracepoints through perf; root) and print it beside listen's counts:
    /// children established on the server, client-only connections (clients on this
    /// host), SYN retransmits per connection, queue wait (with --records). Where it is
    /// not possible listen says why and goes on without it.
    #[arg(long, value_parser = ["kernel"])]
    pub trace: Option<String>,
    /// With --trace kernel: fail (exit 1) when the kernel's account cannot be recorded,
    /// instead of going on without it.
    #[arg(long)]
    pub trace_required: bool,
    /// With --trace kernel: write the per-connection timeline (CSV, one row per
    /// connection; `acceptbench plot timeline FILE` draws it).
    #[arg(long, value_name = "FILE")]
    pub trace_out: Option<PathBuf>,
}

/// `acceptbench sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Engines, comma-separated, each once: built-in ones and the NAMEs of --server
    /// (default: every built-in engine; unsupported ones are recorded as skipped).
    ///
    /// Built-in engines:
    ///   std: blocking accept() loop, the baseline;
    ///   uring: io_uring single-shot accepts (Linux 5.5);
    ///   multishot: io_uring multishot accept (Linux 5.19);
    ///   uring-linked: multishot accept, peer and close inside the ring (Linux 6.7);
    ///   tokio-uring: tokio-uring TcpListener::accept (Linux 5.10);
    ///   tokio: tokio (epoll) TcpListener::accept.
    #[arg(long, value_delimiter = ',', verbatim_doc_comment)]
    pub engines: Option<Vec<String>>,
    /// An external server measured as engine NAME: COMMAND (run with sh -c) with the
    /// placeholders {port}, {backlog} and {addr}, started per run; repeatable.
    #[arg(long, value_name = "NAME=COMMAND")]
    pub server: Vec<String>,
    /// A server already running, measured as engine NAME at ADDR:PORT (on this host);
    /// with pid=PID it can be paused (burst, drain, stall) and its CPU read; never
    /// started or stopped; repeatable.
    #[arg(long, value_name = "NAME=ADDR:PORT[,pid=PID]")]
    pub attach: Vec<String>,
    /// What loadgen sends server NAME once connected (escapes \r \n \xHH, or @FILE):
    /// its connections are served when the answer's first byte arrives (without one:
    /// when the server closes them); repeatable, one per server.
    #[arg(long, value_name = "NAME=BYTES|@FILE")]
    pub server_request: Vec<String>,
    /// The stall model's μ for server NAME, connections per second once resumed, used
    /// when the sweep has no drain run of it at that backlog (drain's rate comes
    /// first); repeatable, one per server.
    #[arg(long, value_name = "NAME=RATE")]
    pub stall_mu: Vec<String>,
    /// Backlogs, comma-separated, each once.
    #[arg(long, value_delimiter = ',', default_value = "128,4096", value_parser = clap::value_parser!(u32).range(1..))]
    pub backlogs: Vec<u32>,
    /// Modes, comma-separated, each once.
    #[arg(long, value_delimiter = ',', default_value = "closed,drain")]
    pub modes: Vec<Mode>,
    /// Measured time per run. The default sweep's 150 ms is two fills and drains of a
    /// 4096 queue; its intervals come from many short runs (--repeat 10), not long ones.
    #[arg(long, default_value = "150ms", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub duration: Duration,
    /// Warm-up before each closed/rate run (connections made then are not measured).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Rounds: every engine runs once per round, in an order rotated each round; 6 or
    /// more give 95% confidence intervals for medians and ratios (cells.csv); the default
    /// 10 give [x(2), x(9)] (97.9%), an interval no one slow or fast run can stretch, and
    /// keep the default sweep of seven engines within 90 s on a 2-vCPU machine.
    #[arg(long, default_value = "10", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Connection rate for mode `rate` (conn/s).
    #[arg(long, default_value = "10000", value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// Output directory; a run directory <UTC time>-<kernel>-<host> is made inside it.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// io_uring set-up flags for the ring engines (uring, multishot, uring-linked): default,
    /// coop (COOP_TASKRUN, 5.19) or defer (SINGLE_ISSUER|DEFER_TASKRUN, 6.1). Default: each
    /// engine's own (defer for uring-linked); what was applied is the column ring_setup.
    #[arg(long)]
    pub ring_setup: Option<RingSetup>,
    /// Engine uring-linked accepts into io_uring direct descriptors (Linux 5.19).
    #[arg(long)]
    pub direct: bool,
    /// io_uring single-shot accepts in flight for engine `uring`, comma-separated (a plan
    /// dimension: `--inflight 1,8` runs uring.q1 and uring.q8 side by side in every round).
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub inflight: Vec<u32>,
    /// How engine `uring` arms its accepts, comma-separated (a plan dimension inside each
    /// --inflight depth: `--accept-flags none,poll-first,dontwait,nonempty` runs uring.q1,
    /// uring.q1.pf, uring.q1.dw, uring.q1.ne). All but none need Linux 6.10 (older
    /// kernels skip those rows, saying why); refused without uring in --engines.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    pub accept_flags: Vec<AcceptFlags>,
    /// How engine `uring-linked` reads the peer in the ring, comma-separated (a plan
    /// dimension: `--peer-op getsockname,getsockopt` runs uring-linked.gsn and
    /// uring-linked side by side): getsockname (SOCKET_URING_OP_GETSOCKNAME with the
    /// peer flag, Linux 6.19), getsockopt (SO_PEERNAME, 6.7), auto (getsockname where
    /// the kernel has it). The row's peer_op says which ran; getsockname on an older
    /// kernel is refused. Refused without uring-linked in --engines.
    #[arg(long, value_delimiter = ',', default_value = "auto")]
    pub peer_op: Vec<PeerOp>,
    /// Connects in flight per loadgen thread in mode `closed` (1 = the classic blocking client).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// loadgen threads.
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// CPU for the acceptor (default: the first CPU this process may run on, see taskset).
    #[arg(long)]
    pub server_cpu: Option<usize>,
    /// CPUs for the acceptor threads, comma-separated; acceptors are pinned round-robin
    /// over them (default: every allowed CPU not given to loadgen, else --server-cpu).
    #[arg(long, value_delimiter = ',')]
    pub server_cpus: Option<Vec<usize>>,
    /// Acceptor threads per run, comma-separated (a plan dimension, e.g. 1,2).
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub acceptors: Vec<u32>,
    /// How several acceptors share the port, comma-separated: shared (one listener) and/or
    /// reuseport (one SO_REUSEPORT listener per acceptor, each its own backlog).
    #[arg(long, value_delimiter = ',', default_value = "shared")]
    pub sharing: Vec<Sharing>,
    /// Modes burst/overload: acceptor I busy-waits DELAY per connection and the others
    /// run free (no --accept-delay), e.g. 0:2ms.
    #[arg(long)]
    pub slow_acceptor: Option<SlowAcceptor>,
    /// CPUs for loadgen, comma-separated (default: every allowed CPU but the acceptor's).
    #[arg(long, value_delimiter = ',')]
    pub client_cpus: Option<Vec<usize>>,
    /// Do not draw plots into the run directory.
    #[arg(long)]
    pub no_plots: bool,
    /// `kernel`: record the kernel's account of every run's connections (tracepoints
    /// through perf; root): client-only connections, SYN retransmits per connection,
    /// handshake, queue wait and decode, in the kernel_* columns. Where it is not
    /// possible the runs go on without it and say why. `off,kernel`: every run twice
    /// per round, untraced and traced (`std+kt`), interleaved: the cost of tracing.
    #[arg(long, value_delimiter = ',', value_parser = ["off", "kernel"])]
    pub trace: Option<Vec<String>>,
    /// No line per run on stderr (the progress bar still shows on a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Print each finished row as one JSON object on stdout (same fields as summary.csv).
    #[arg(long)]
    pub json: bool,
    /// Count the acceptors' system calls and io_uring enters per accept (perf
    /// tracepoints; root). Off by default: while counted, every system call on the
    /// machine takes the traced path and costs more (meta.json machine says how much).
    #[arg(long)]
    pub count_syscalls: bool,
    /// Connects per burst in mode `burst` (default: 4·backlog+16).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst_size: Option<u32>,
    /// Mode `burst`: the acceptor stays paused until the accept queue has been non-empty and unchanged this long (at most 10 s).
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    pub pause: Duration,
    /// Client connect timeout in burst/overload (default 4s) and stall (default 8s; SYN
    /// retransmits come 1, 2, 3, 4, 5, 7 s after the first SYN on Linux 6.5+, 1, 3, 7 s before).
    #[arg(long, value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub connect_timeout: Option<Duration>,
    /// Work per accepted connection, to make the acceptor slower on purpose: mode
    /// `overload` (default 200us) and mode `stall` (default none: full speed).
    #[arg(long, value_parser = parse_duration)]
    pub accept_delay: Option<Duration>,
    /// Mode stall: how long the acceptor stops, comma-separated, each once (a plan
    /// dimension; default 100ms,500ms,2s). The acceptor thread sleeps, as in a GC pause
    /// or a blocked event loop; what its engine armed in the kernel keeps working.
    #[arg(long, value_delimiter = ',', value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub stall: Option<Vec<Duration>>,
    /// Mode stall: the clients, comma-separated, each once (a plan dimension; default
    /// rate:1000): rate:N is open loop at N connections/s (latency from each intended
    /// start), closed:C a closed loop with C connects in flight.
    #[arg(long, value_delimiter = ',')]
    pub stall_load: Option<Vec<StallLoad>>,
    /// Mode stall: clients arrive this long before the stall (what normal is).
    #[arg(long, value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub stall_at: Option<Duration>,
    /// Mode stall: clients keep arriving this long after the resume; recovery is judged
    /// within it ("not recovered within" it otherwise). At least 1s (the hold).
    #[arg(long, value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub stall_after: Option<Duration>,
    /// Overflow runs: set net.ipv4.tcp_abort_on_overflow=1 (private network namespace, root).
    #[arg(long)]
    pub abort_on_overflow: bool,
    /// Overflow runs: net.ipv4.tcp_syncookies 0, 1 or 2 (private network namespace, root).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub syncookies: Option<u8>,
    /// Overflow runs: net.core.somaxconn (private network namespace, root).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub somaxconn: Option<u32>,
    /// Modes closed and rate from other client "hosts": K (a number, root) makes per run
    /// a server network namespace and K client namespaces on a bridge, one loadgen in
    /// each (K times a loopback run's load; rows say netns=veth); a comma-separated list
    /// of ssh://[user@]host[:port][/path/to/acceptbench] (or @FILE, one per line) runs
    /// loadgen on those machines over OpenSSH (with --server-addr; see docs/hosts.md).
    #[arg(long, value_name = "K|ssh://…,…|@FILE")]
    pub client_hosts: Option<String>,
    /// With ssh client hosts: the address of this machine the clients connect to (the
    /// acceptor listens on it, a free port per run).
    #[arg(long)]
    pub server_addr: Option<std::net::IpAddr>,
    /// With ssh client hosts: copy this acceptbench binary to each host (scp, a
    /// temporary file removed at the end) instead of running the one installed there.
    #[arg(long, value_name = "PATH")]
    pub client_binary: Option<PathBuf>,
    /// With ssh client hosts: the ssh config file to use (ssh -F) instead of ~/.ssh/config.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// With ssh client hosts: an ssh option (ssh -o), repeatable, e.g. --ssh-option IdentityFile=~/.ssh/bench.
    #[arg(long, value_name = "OPTION")]
    pub ssh_option: Vec<String>,
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
        default_value = "accepts_per_s,peers_held_per_s,acceptor_cpu_us_per_accept,peer_p99_ns"
    )]
    pub metric: String,
    /// Output format.
    #[arg(long, default_value = "text")]
    pub format: CompareFormat,
}

/// `acceptbench plot`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PlotArgs {
    /// A chart of another input than a run directory.
    #[command(subcommand)]
    pub chart: Option<PlotChart>,
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

/// `acceptbench plot <chart>`.
#[derive(Debug, Subcommand)]
pub enum PlotChart {
    /// The per-connection timeline of a kernel trace (the CSV of `--trace kernel
    /// --trace-out FILE`): a line per connection, sorted by SYN sent, marks for the SYN,
    /// its retransmits, established, accepted and closed (at most 400, evenly sampled).
    Timeline {
        /// The timeline CSV.
        file: PathBuf,
        /// The chart to write (default: FILE with .svg; a .png name draws PNG).
        #[arg(long)]
        out: Option<PathBuf>,
    },
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

/// `acceptbench join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The acceptor's records (`acceptbench listen --records FILE`).
    #[arg(long, value_name = "FILE")]
    pub server: PathBuf,
    /// loadgen records (`loadgen --records FILE`), one per loadgen process or host.
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub client: Vec<PathBuf>,
    /// Output directory; a run directory <UTC time>-<kernel>-<host> is made inside it.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Engine name for the summary row (the acceptor's --engine).
    #[arg(long, default_value = "unknown")]
    pub engine: String,
    /// Backlog for the summary row (the acceptor's --backlog).
    #[arg(long, default_value = "0")]
    pub backlog: u32,
    /// Mode for the summary row (how loadgen paced: closed or rate).
    #[arg(long, default_value = "closed")]
    pub mode: String,
    /// How far apart (wall clock) a client's and the server's time windows may be and still
    /// count as one run: covers clock offsets between hosts.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub clock_tolerance: Duration,
}

// The value lists `--help` shows and clap checks. Implemented here, not derived on the
// types, so engines and configs stay free of clap.

impl ValueEnum for EngineKind {
    fn value_variants<'a>() -> &'a [Self] {
        &EngineKind::ALL
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            EngineKind::Std => "blocking accept() loop, the baseline",
            EngineKind::Uring => "io_uring single-shot accepts (Linux 5.5)",
            EngineKind::Multishot => "io_uring multishot accept (Linux 5.19)",
            EngineKind::UringLinked => {
                "multishot accept, peer and close inside the ring (Linux 6.7)"
            }
            EngineKind::TokioUring => "tokio-uring TcpListener::accept (Linux 5.10)",
            EngineKind::Tokio => "tokio (epoll) TcpListener::accept",
            EngineKind::Compio => "compio (io_uring) TcpListener::accept (Linux 5.11)",
        };
        Some(PossibleValue::new(self.name()).help(help))
    }
}

impl ValueEnum for Mode {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            Mode::Closed,
            Mode::Rate,
            Mode::Drain,
            Mode::Burst,
            Mode::Overload,
            Mode::Stall,
        ]
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            Mode::Closed => "closed loop at maximum rate",
            Mode::Rate => "open loop at --rate",
            Mode::Drain => "queue filled while the acceptor waits, then drained",
            Mode::Burst => "a burst against a paused acceptor (overflow)",
            Mode::Overload => "--rate above a slowed acceptor's capacity (overflow)",
            Mode::Stall => "the acceptor stops for --stall while clients keep arriving (--stall-load), then resumes",
        };
        Some(PossibleValue::new(self.name()).help(help))
    }
}

impl ValueEnum for Sharing {
    fn value_variants<'a>() -> &'a [Self] {
        &[Sharing::Shared, Sharing::Reuseport, Sharing::ReuseportCpu]
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            Sharing::Shared => "one listener, every acceptor on it",
            Sharing::Reuseport => "one SO_REUSEPORT listener per acceptor on the same port",
            Sharing::ReuseportCpu => {
                "reuseport, shard chosen by the CPU that processes the SYN (SO_ATTACH_REUSEPORT_CBPF)"
            }
        };
        Some(PossibleValue::new(self.name()).help(help))
    }
}

impl ValueEnum for CompareFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            CompareFormat::Text,
            CompareFormat::Markdown,
            CompareFormat::Csv,
        ]
    }
    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            CompareFormat::Text => PossibleValue::new("text").help("aligned text"),
            CompareFormat::Markdown => PossibleValue::new("markdown")
                .alias("md")
                .help("a Markdown table"),
            CompareFormat::Csv => PossibleValue::new("csv").help("CSV for scripts"),
        })
    }
}
