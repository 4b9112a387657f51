//! One row of `summary.csv`: one (engine, backlog, mode, repetition) run.
//! Columns carry their units in their names; results/README.md documents each.
//! Overflow columns (burst/overload) are empty for other modes.

use serde::{Deserialize, Serialize};

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Measured completely.
    Ok,
    /// Not run: the engine is unsupported here (see `note`).
    Skipped,
    /// Interrupted (Ctrl-C) part-way (see `note`); figures cover what was measured.
    Incomplete,
    /// The measurement failed (loadgen died, the queue did not drain, …; see `note`).
    /// Its figures are not a measurement: every aggregate leaves the row out.
    Failed,
}

impl Status {
    /// The name in summary.csv and reports.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Incomplete => "incomplete",
            Status::Failed => "failed",
        }
    }
}

/// One row of summary.csv.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SummaryRow {
    /// Engine name.
    pub engine: String,
    /// io_uring single-shot accepts kept in flight (engine uring only; its label is
    /// `uring.q<inflight>`); empty for the other engines.
    pub inflight: Option<u32>,
    /// How engine uring armed its accepts: none, poll-first, dontwait, nonempty (label
    /// suffixes none, `.pf`, `.dw`, `.ne`); empty for the other engines.
    pub accept_flags: String,
    /// How engine uring-linked read each peer in the ring: getsockname (6.19's
    /// SOCKET_URING_OP_GETSOCKNAME with the peer flag; label suffix `.gsn`) or getsockopt
    /// (SO_PEERNAME, 6.7; no suffix); empty for the other engines and in older files.
    pub peer_op: String,
    /// Backlog passed to listen(2).
    pub backlog: u32,
    /// Accept-queue limit the kernel applied (somaxconn clamp).
    pub backlog_effective: u32,
    /// Mode: closed, rate, drain, burst, overload, stall.
    pub mode: String,
    /// Acceptor threads, each running its own instance of the engine (0 in files
    /// written before the column existed: read it as 1).
    pub acceptors: u32,
    /// How the acceptors share the port: shared (one listener, one accept queue) or
    /// reuseport (one SO_REUSEPORT listener and queue per acceptor); empty in old files.
    pub sharing: String,
    /// CPU each acceptor was pinned to, comma-separated in acceptor order (e.g. "0,0":
    /// both acceptors shared CPU 0).
    pub acceptor_cpus: String,
    /// `--slow-acceptor` as applied to this run, `I:DELAY` (burst/overload only; empty otherwise).
    pub slow_acceptor: String,
    /// io_uring set-up flags the engine's ring actually had (`default`, `coop`, `defer`,
    /// with the reason for any fallback); empty for engines without a ring of their own.
    pub ring_setup: String,
    /// Repetition (round), from 1. Every engine runs once per round, in an order
    /// rotated each round; ratios to std compare rows of the same round.
    pub repetition: u32,
    /// Position of this run within its round, from 1.
    pub position: u32,
    /// ok, skipped, incomplete (interrupted) or failed.
    pub status: Option<Status>,
    /// Why skipped/incomplete; warnings such as unmatched connections.
    pub note: String,
    /// Wall time of the measured window, s.
    pub duration_s: f64,
    /// Connects the client attempted (warm-up included).
    pub attempted: u64,
    /// Connections the client saw established (warm-up included; latencies exclude warm-up).
    pub established: u64,
    /// Connections the acceptor accepted (warm-up included).
    pub accepted: u64,
    /// Connections joined client ↔ server by address and time.
    pub matched: u64,
    /// unmatched_client + unmatched_server + unknown_peer.
    pub unmatched: u64,
    /// Established by the client, never recorded by the acceptor.
    pub unmatched_client: u64,
    /// Recorded by the acceptor, no client connection left to match.
    pub unmatched_server: u64,
    /// Recorded by the acceptor with a peer address the client never used.
    pub unknown_peer: u64,
    /// Server accepts per second over the measured window, which ends when the last
    /// connection is done — the later of its last peer held and its last close
    /// completed: closed/rate from the start of loadgen's measured window (after
    /// warm-up); drain Σaccepted / Σ(release of the acceptor → its last close) over rounds.
    pub accepts_per_s: f64,
    /// The window accepts_per_s is over, s (drain: summed over rounds).
    pub accept_window_s: f64,
    /// Peers held per second: the same connections over the window that ends at the
    /// last peer held instead (how soon the application knew every client). Never the
    /// throughput: with DEFER_TASKRUN uring-linked's closes run after its last peer.
    pub peers_held_per_s: f64,
    /// The window peers_held_per_s is over, s (drain: summed over rounds).
    pub peer_window_s: f64,
    /// Client connections established per second.
    pub client_conns_per_s: f64,
    /// Acceptor thread CPU (user+sys) over the measured window (warm-up excluded), s
    /// (empty when it could not be read: an attached server without its PID).
    pub acceptor_cpu_s: Option<f64>,
    /// Acceptor CPU per connection accepted in the measured window, µs.
    pub acceptor_cpu_us_per_accept: Option<f64>,
    /// Acceptor user CPU over its timed runs (release → done, warm-up included), s:
    /// `getrusage(RUSAGE_THREAD)`, whose user/kernel split the kernel apportions by
    /// tick samples (HZ in meta.json machine).
    pub acceptor_user_s: Option<f64>,
    /// Acceptor kernel CPU over the same runs, s (as `acceptor_user_s`).
    pub acceptor_sys_s: Option<f64>,
    /// System calls the acceptor thread(s) entered per connection accepted over the
    /// same runs (perf, tracepoint raw_syscalls:sys_enter; the counting's own read taken
    /// out). Empty where perf cannot count: meta.json's notes say why.
    pub syscalls_per_accept: Option<f64>,
    /// io_uring_enter calls per connection accepted (tracepoint
    /// syscalls:sys_enter_io_uring_enter), as `syscalls_per_accept`.
    pub uring_enters_per_accept: Option<f64>,
    /// Voluntary context switches (the acceptor blocked) per connection accepted
    /// (getrusage).
    pub vol_cs_per_accept: Option<f64>,
    /// Involuntary context switches (the acceptor was preempted) per connection accepted.
    pub invol_cs_per_accept: Option<f64>,
    /// loadgen process CPU (user+sys), s.
    pub loadgen_cpu_s: f64,
    /// Accept errors of every kind.
    pub accept_errors: u64,
    /// Per acceptor, `;`-separated in acceptor order: `a<i>:n=<accepted>,p50=<µs>,p99=<µs>,cpu=<ms>,stalled=<count>`
    /// — connections it accepted (warm-up included), end-to-end peer latency p50/p99 of
    /// its connections (µs), its thread CPU over its run (ms), and its connections whose
    /// end-to-end latency reached 0.5 s (a dropped and retransmitted SYN, or — multishot —
    /// that long queued in the ring behind a slow acceptor; `syn_retry_stalls` counts the
    /// former on the client side). Parse: split on `;`, then `:`, `,` and `=`.
    pub per_acceptor: String,
    /// Fairness: fewest / most connections accepted by one acceptor (1 = even, 0 = one
    /// acceptor got none); empty with one acceptor.
    pub acceptor_fairness: Option<f64>,
    /// Futile wake-ups summed over the acceptors: an accept woken with nothing to take
    /// (another acceptor got the connection). Counted by std only (EAGAIN well before its
    /// receive timeout); empty for engines whose retries happen where the application
    /// cannot see them (io_uring retries in the kernel, tokio inside its accept future).
    pub futile_wakeups: Option<u64>,
    /// futile_wakeups / accepted.
    pub futile_per_accept: Option<f64>,
    /// Engine uring: accept completions carrying IORING_CQE_F_SOCK_NONEMPTY (more were
    /// queued when this one was taken; 6.10+) / accepted; empty for other engines.
    pub sock_nonempty_per_accept: Option<f64>,
    /// Engine uring: DONTWAIT accepts that found the queue empty (EAGAIN) / accepted;
    /// empty for other engines.
    pub accept_eagain_per_accept: Option<f64>,
    /// Client connect latency (rate: from the intended start), ns. Empty when no
    /// connection was timed (this and every latency column below: absent, never 0).
    pub connect_p50_ns: Option<u64>,
    /// Client connect latency p99, ns.
    pub connect_p99_ns: Option<u64>,
    /// Client connect latency p99.9, ns.
    pub connect_p999_ns: Option<u64>,
    /// Client connect latency max, ns.
    pub connect_max_ns: Option<u64>,
    /// End-to-end peer-extraction latency (client connect() → server holds the peer) p50, ns.
    pub peer_p50_ns: Option<u64>,
    /// End-to-end peer-extraction latency p99, ns.
    pub peer_p99_ns: Option<u64>,
    /// End-to-end peer-extraction latency p99.9, ns.
    pub peer_p999_ns: Option<u64>,
    /// End-to-end peer-extraction latency max, ns.
    pub peer_max_ns: Option<u64>,
    /// Server-internal peer extraction (accept completion → peer decoded) p50, ns.
    pub peer_internal_p50_ns: Option<u64>,
    /// Server-internal peer extraction p99, ns.
    pub peer_internal_p99_ns: Option<u64>,
    /// Established connections whose connect() waited for a SYN retransmit (took ≥ 0.5 s):
    /// the accept queue overflowed. Throughput and latency ratios of such rows are left empty.
    pub syn_retry_stalls: u64,
    /// accepts_per_s / std's in the same round (empty when either row is not ok or stalled).
    pub ratio_accepts_vs_std: Option<f64>,
    /// acceptor_cpu_us_per_accept / std's in the same round (empty when either row is not ok).
    pub ratio_cpu_vs_std: Option<f64>,
    /// peer_p99_ns / std's in the same round (empty when either row is not ok or stalled).
    pub ratio_peer_p99_vs_std: Option<f64>,
    /// `--trace off,kernel`, the traced run (`<engine>+kt`): its
    /// acceptor_cpu_us_per_accept / the same engine's untraced run in the same round
    /// (empty when either row is not ok): what tracing costs an accept.
    pub trace_ratio_cpu: Option<f64>,
    /// The same for accepts_per_s (empty also when either row is stalled).
    pub trace_ratio_accepts: Option<f64>,
    /// Connects refused (RST to the SYN).
    pub refused: u64,
    /// Connections reset.
    pub reset: u64,
    /// Connects that timed out.
    pub timeout: u64,
    /// Connects still unresolved at the end (burst).
    pub pending: u64,
    /// Other client errors (address exhaustion, other errnos).
    pub client_other_errors: u64,
    /// Deepest accept queue sampled (burst/overload): the deepest of any listener.
    pub queue_max: Option<u32>,
    /// Deepest queue per listener, `;`-separated in listener order (reuseport: one per
    /// shard, shard i served by acceptor i; shared: one value). Burst/overload only.
    pub queue_max_per_listener: Option<String>,
    /// Mean sampled accept-queue depth (burst/overload), summed over listeners.
    pub queue_mean: Option<f64>,
    /// Accept-queue limit (burst/overload).
    pub queue_limit: Option<u32>,
    /// TcpExt ListenOverflows delta.
    pub listen_overflows: Option<u64>,
    /// TcpExt ListenOverflows delta while the acceptor was paused (burst): connects the full queue turned away.
    pub listen_overflows_paused: Option<u64>,
    /// TcpExt ListenDrops delta.
    pub listen_drops: Option<u64>,
    /// TcpExt TCPReqQFullDrop delta.
    pub reqq_full_drop: Option<u64>,
    /// TcpExt TCPReqQFullDoCookies delta.
    pub reqq_full_do_cookies: Option<u64>,
    /// TcpExt SyncookiesSent delta.
    pub syncookies_sent: Option<u64>,
    /// Connect-latency modes from SYN retransmits, e.g. "1s:12;3s:4" (time:count).
    pub syn_retry_modes: Option<String>,
    /// Connections established without a SYN retransmit (connect latency < 0.5 s).
    pub established_immediately: Option<u64>,
    /// What the overflow did to clients: none, or +-joined syn-dropped (retried/unanswered SYNs), ack-dropped (client-only connections: established for the client, never accepted), reset.
    pub overflow_outcome: Option<String>,
    /// Time for the acceptor to drain what the queue held, ms.
    pub drain_ms: Option<f64>,
    /// ssh client hosts of the run (`--client-hosts ssh://…`), comma-separated; empty
    /// otherwise.
    pub client_hosts: String,
    /// Per ssh client host: `host:est=…,acc=…,matched=…` (established by it, accepted
    /// with its addresses, joined), `;`-separated; hosts.csv has the rest.
    pub per_host: String,
    /// How far apart the ssh client hosts started loadgen, ms, by their own clocks
    /// corrected by the offsets preflight estimated (± the largest uncertainty).
    pub host_start_spread_ms: Option<f64>,
    /// Mode stall: how long the acceptor was asked to stop, ms.
    pub stall_ms: Option<f64>,
    /// Mode stall: the clients (`rate:N` or `closed:C`); empty otherwise.
    pub stall_load: String,
    /// Mode stall: back to normal within the run (details in stall.csv).
    pub recovered: Option<bool>,
    /// Mode stall: from the resume until normal, ms.
    pub recover_ms: Option<f64>,
    /// Network namespace the run had: "private" (a fresh one, made for this run and gone
    /// with it; counters exact), "host", "veth" (`--client-hosts K`: client namespaces
    /// on a bridge) or "ssh" (`--client-hosts ssh://…`: client machines).
    pub netns: String,
    /// net.core.somaxconn as the run saw it (its own namespace).
    pub somaxconn: Option<u64>,
    /// net.ipv4.tcp_syncookies as the run saw it.
    pub tcp_syncookies: Option<u64>,
    /// net.ipv4.tcp_abort_on_overflow as the run saw it.
    pub tcp_abort_on_overflow: Option<u64>,
    /// `--trace kernel`: the kernel's account of the run's connections (tracepoints
    /// `sock:inet_sock_set_state`, `tcp:tcp_retransmit_skb`, … on the run's port): ok,
    /// incomplete (records lost: see kernel_lost_records and the notes), unavailable
    /// (not possible here: the notes say why); empty without --trace kernel; off for
    /// the untraced runs of a `--trace off,kernel` sweep (whose traced runs are labelled
    /// `<engine>+kt`).
    pub kernel_trace: String,
    /// Kernel: client sockets that sent a SYN to the run's port (`CLOSE→SYN_SENT`).
    pub kernel_syn_sent: Option<u64>,
    /// Kernel: of those, established on the client (`SYN_SENT→ESTABLISHED`).
    pub kernel_client_established: Option<u64>,
    /// Kernel: server children established (`SYN_RECV→ESTABLISHED`): connections that
    /// entered an accept queue.
    pub kernel_queued: Option<u64>,
    /// Kernel: client-only connections, established on the client with no server child
    /// (their final ACK met a full accept queue): the server never had them.
    pub kernel_client_only: Option<u64>,
    /// Kernel: client sockets that sent a SYN and were never established.
    pub kernel_never_established: Option<u64>,
    /// Kernel: server children that entered the accept queue and were never accepted
    /// (matched to the acceptor's accepts by client address and time).
    pub kernel_not_accepted: Option<u64>,
    /// Kernel: SYN retransmits (`tcp_retransmit_skb` in state SYN_SENT), all connections.
    pub kernel_syn_retransmits: Option<u64>,
    /// Kernel: how many connections needed each number of SYN retransmits,
    /// `retransmits:connections` `;`-joined (e.g. `0:3;2:17`).
    pub kernel_retransmits_per_connection: Option<String>,
    /// Kernel: each SYN retransmit wave, `nth:connections@median delay after the SYN`
    /// `;`-joined (e.g. `1:17@1.00s;2:17@2.02s`): the retry waves measured directly.
    pub kernel_syn_retransmit_waves: Option<String>,
    /// Kernel: handshake, the client's `connect()` called (loadgen's record) → server
    /// child established (`SYN_RECV→ESTABLISHED`: in the accept queue), median over the
    /// measured connections the join matched, ns.
    pub kernel_handshake_p50_ns: Option<u64>,
    /// Kernel: handshake, 99th percentile, ns.
    pub kernel_handshake_p99_ns: Option<u64>,
    /// Kernel: queue wait, server child established → accept returned (the engine's
    /// stamp), median over the same connections, ns; external servers: queue plus
    /// service, child established → served (the client saw it close or answer).
    pub kernel_queue_wait_p50_ns: Option<u64>,
    /// Kernel: queue wait (external: queue plus service), 99th percentile, ns.
    pub kernel_queue_wait_p99_ns: Option<u64>,
    /// Kernel: decode, accept returned → the decoded peer held (the engine's stamps),
    /// median over the same connections, ns; empty for external servers. Handshake +
    /// queue wait + decode = the connection's peer latency (`connect()` → peer held).
    pub kernel_decode_p50_ns: Option<u64>,
    /// Kernel: decode, 99th percentile, ns.
    pub kernel_decode_p99_ns: Option<u64>,
    /// Kernel: measured connections the join matched that the latency split covers
    /// (a server child in the kernel's account, stamps in order); the per-connection
    /// split of the first round's run of each cell is in `kernel/`.
    pub kernel_split_connections: Option<u64>,
    /// Kernel: trace records lost (a full ring: `PERF_RECORD_LOST`) or undecoded;
    /// non-zero makes kernel_trace `incomplete`.
    pub kernel_lost_records: Option<u64>,
}

impl SummaryRow {
    /// Appends `note` to the row's note (`; `-separated).
    pub fn add_note(&mut self, note: &str) {
        if self.note.is_empty() {
            self.note = note.to_string();
        } else {
            self.note = format!("{}; {note}", self.note);
        }
    }

    /// True for a row that counts as a measurement (status ok).
    pub fn is_ok(&self) -> bool {
        self.status == Some(Status::Ok)
    }

    /// Fills the tracing-cost ratios of this traced row against `untraced`, the same
    /// engine's run in the same round, as [`SummaryRow::set_ratios`] does against std.
    pub fn set_trace_ratios(&mut self, untraced: &SummaryRow) {
        let ratio = |a: f64, b: f64| (b > 0.0 && a > 0.0).then(|| a / b);
        let both_ok = self.is_ok() && untraced.is_ok();
        let unstalled = both_ok && self.syn_retry_stalls == 0 && untraced.syn_retry_stalls == 0;
        self.trace_ratio_cpu = match (
            self.acceptor_cpu_us_per_accept,
            untraced.acceptor_cpu_us_per_accept,
        ) {
            (Some(a), Some(b)) => ratio(a, b).filter(|_| both_ok),
            _ => None,
        };
        self.trace_ratio_accepts =
            ratio(self.accepts_per_s, untraced.accepts_per_s).filter(|_| unstalled);
    }

    /// Fills the ratio columns against `std`'s row of the same round. A ratio is left
    /// empty when either row is not ok (a failed run is absent, not zero); the
    /// throughput and latency ratios also when either row waited for SYN retransmits
    /// (then they compare retransmit timers, not engines).
    pub fn set_ratios(&mut self, std: &SummaryRow) {
        let ratio = |a: f64, b: f64| (b > 0.0 && a > 0.0).then(|| a / b);
        let both_ok = self.is_ok() && std.is_ok();
        let unstalled = both_ok && self.syn_retry_stalls == 0 && std.syn_retry_stalls == 0;
        self.ratio_accepts_vs_std =
            ratio(self.accepts_per_s, std.accepts_per_s).filter(|_| unstalled);
        self.ratio_cpu_vs_std = match (
            self.acceptor_cpu_us_per_accept,
            std.acceptor_cpu_us_per_accept,
        ) {
            (Some(a), Some(b)) => ratio(a, b).filter(|_| both_ok),
            _ => None,
        };
        self.ratio_peer_p99_vs_std = match (self.peer_p99_ns, std.peer_p99_ns) {
            (Some(a), Some(b)) => ratio(a as f64, b as f64).filter(|_| unstalled),
            _ => None,
        };
    }
}
