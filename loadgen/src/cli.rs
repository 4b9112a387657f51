//! Command-line flags (clap derive) and nothing else: `Config::from_cli` turns them into a
//! validated `Config` once; the rest of loadgen never sees clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// How connections are paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// C connectors, each connecting again as soon as its previous connection is done.
    Closed,
    /// Open loop: --rate connections/s on a fixed schedule; latency from the intended start.
    Rate,
    /// --connections non-blocking connects at once, outcomes awaited up to --connect-timeout.
    Burst,
}

/// Which system interface issues the connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// blocking when one connect per thread is in flight (closed/rate), else uring (epoll if io_uring is unavailable).
    Auto,
    /// io_uring IORING_OP_CONNECT, many in flight per thread (falls back to epoll if unavailable).
    Uring,
    /// epoll when more than one connect is in flight per thread, blocking otherwise.
    Std,
    /// Non-blocking connect + epoll.
    Epoll,
    /// Blocking connect, one in flight per thread.
    Blocking,
}

/// How sockets are made, set up and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SocketOpsArg {
    /// ring where the connects go through io_uring and the kernel can, else syscall (the report says which and why).
    Auto,
    /// socket(), setsockopt() and close() system calls.
    Syscall,
    /// In the io_uring ring: IORING_OP_SOCKET (5.19), SO_LINGER by uring_cmd (6.7) linked to the connect, IORING_OP_CLOSE (linked behind the connect when nothing needs the socket after it); --method uring.
    Ring,
}

/// loadgen: open TCP connections to a listener and measure what the client sees.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
pub struct Cli {
    /// Listener to connect to, IP:PORT (e.g. 127.0.0.1:8080, [::1]:8080).
    #[arg(long, value_name = "ADDR")]
    pub target: String,
    /// Pacing: closed (max rate), rate (fixed schedule), burst (N at once).
    #[arg(long, value_enum, default_value = "closed")]
    pub mode: ModeArg,
    /// Total connections in flight across all threads (closed: connectors; rate: cap). Default: closed 16 per thread, rate 4096.
    #[arg(long, value_name = "C")]
    pub concurrency: Option<usize>,
    /// Connections per second (rate mode).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Stop after N attempts (after warm-up); in burst mode the burst size per round.
    #[arg(long, value_name = "N")]
    pub connections: Option<u64>,
    /// Measured run time, e.g. 10s (default 10s in closed/rate mode unless --connections is given).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    pub duration: Option<Duration>,
    /// Warm-up before measuring, e.g. 1s: real connections, left out of counts and histograms, flagged in --records.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "W")]
    pub warmup: Option<Duration>,
    /// Worker threads.
    #[arg(long, default_value_t = 1, value_name = "T")]
    pub threads: usize,
    /// CPUs to pin workers to, comma-separated; thread i runs on cpus[i % len].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub cpus: Vec<usize>,
    /// Source addresses, one or an inclusive range: 127.0.0.2-127.0.0.9, ::1, fd00::1-fd00::8.
    #[arg(long, value_name = "RANGE")]
    pub sources: Option<String>,
    /// Give up on a connect after this long (burst: outcomes still unknown then are "pending").
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s", value_name = "D")]
    pub connect_timeout: Duration,
    /// Close with FIN (default: SO_LINGER {1,0}, close sends RST, no TIME_WAIT).
    #[arg(long)]
    pub graceful_close: bool,
    /// After connecting, wait for the server's action: its close (a server that accepts
    /// and closes) or, with --server-request, the first byte of its answer; then read
    /// until it closes. Counts served, client-only (nothing by --serve-timeout) and reset.
    /// In a burst each connection waits so instead of being held: the round ends when
    /// every one is served or its wait is over.
    #[arg(long)]
    pub wait_close: bool,
    /// Bytes sent once connected, implies --wait-close: escapes \r \n \t \0 \\ \xHH
    /// (e.g. 'GET / HTTP/1.0\r\n\r\n'), or @FILE for a file's bytes.
    #[arg(long, value_name = "BYTES|@FILE")]
    pub server_request: Option<String>,
    /// How long to wait for the server's answer or close (default: --connect-timeout).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "D")]
    pub serve_timeout: Option<Duration>,
    /// Connect method.
    #[arg(long, value_enum, default_value = "auto")]
    pub method: MethodArg,
    /// io_uring set-up of the connect ring: default, coop (COOP_TASKRUN, 5.19) or defer (SINGLE_ISSUER|DEFER_TASKRUN, 6.1); a refused one falls back and the report says so. Default: defer.
    #[arg(long, value_name = "SETUP")]
    pub ring_setup: Option<common::ring::RingSetup>,
    /// Make, set up and close sockets by system call or in the io_uring ring.
    #[arg(long, value_enum, default_value = "auto")]
    pub socket_ops: SocketOpsArg,
    /// Burst rounds.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub rounds: u32,
    /// Burst: after each round print `round <i> established <n> pending <p>` and wait for "next"/"stop" on stdin.
    #[arg(long)]
    pub sync_stdio: bool,
    /// Driven by a sweep over ssh: print `ready pid <PID>` and wait for `go` on stdin
    /// before starting; a `stop` line, or the end of stdin (the session is gone), stops
    /// the run early (it still reports what it measured).
    #[arg(long)]
    pub remote: bool,
    /// Burst: close (RST) each round's connections as soon as its outcomes are known,
    /// before reporting the round. They stay in the server's accept queue, so the
    /// server still accepts them, and its close() no longer does the client's work
    /// on loopback.
    #[arg(long)]
    pub close_early: bool,
    /// Print the report as one JSON object (the last stdout line).
    #[arg(long)]
    pub json: bool,
    /// Write connect latency as HdrHistogram percentile distribution (microseconds).
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write served latency (connect() → the server's first byte or close; needs
    /// --wait-close or --server-request) as HdrHistogram percentile distribution (microseconds).
    #[arg(long, value_name = "FILE")]
    pub served_hgrm: Option<PathBuf>,
    /// Write connect latency as an HdrHistogram V2 interval log, one interval per second (nanoseconds).
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// Write per-connection records (binary, see loadgen::record).
    #[arg(long, value_name = "FILE")]
    pub records: Option<PathBuf>,
    /// Run id stored in the --records header (up to 48 bytes); `acceptbench join` refuses
    /// client files whose run id differs from the server's.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// No human summary and no progress line.
    #[arg(long)]
    pub quiet: bool,
    /// `kernel`: record the kernel's account of the target port's connections around
    /// the run (tracepoints through perf; root; this host only): client sockets
    /// established, how many had a server child (when the server runs on this host),
    /// SYN retransmits per connection, client-only connections. Where it is not
    /// possible loadgen says why and goes on without it.
    #[arg(long, value_parser = ["kernel"], value_name = "WHAT")]
    pub trace: Option<String>,
    /// With --trace kernel: fail (exit 1) when the kernel's account cannot be recorded.
    #[arg(long, requires = "trace")]
    pub trace_required: bool,
    /// With --trace kernel: write the per-connection timeline (CSV).
    #[arg(long, value_name = "FILE", requires = "trace")]
    pub trace_out: Option<PathBuf>,
}
