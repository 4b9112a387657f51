//! Acceptor engines: seven ways to run accept → decode peer → record → close.
//!
//! Every engine implements [`Acceptor`] over the same listening socket (built by
//! [`crate::listener`] with an explicit backlog). An engine owns its accept loop and
//! its kernel resources (ring, runtime) and nothing else: it never formats output,
//! never creates the listener, and never decides the run's length itself — the
//! [`Limits`] say when to stop.

use ::std::fmt;
use ::std::str::FromStr;
use ::std::sync::atomic::{AtomicBool, Ordering};
use ::std::sync::Arc;
use ::std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::kernel::probe;
use crate::listener::Listener;
use crate::record::Recorder;

mod accept_flags;
mod compio;
mod linked;
mod multishot;
mod peer_op;
mod peer_slots;
mod ring;
mod std;
mod support;
mod tokio;
mod tokio_uring;
mod uring;

pub use self::accept_flags::{AcceptFlags, UnknownAcceptFlags};
pub use self::compio::CompioAcceptor;
pub use self::linked::{direct_table_note, UringLinkedAcceptor};
pub use self::multishot::MultishotAcceptor;
pub use self::peer_op::{PeerOp, UnknownPeerOp};
pub use self::ring::{RingSetup, UnknownRingSetup};
pub use self::std::StdAcceptor;
pub use self::support::{
    accept_flags_unsupported, engine_support, getsockname_unsupported, unsupported_reason,
    EngineSupport,
};
pub use self::tokio::TokioAcceptor;
pub use self::tokio_uring::TokioUringAcceptor;
pub use self::uring::UringAcceptor;

/// The engines, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EngineKind {
    /// Blocking `accept()` loop: the classic pattern and the baseline.
    #[serde(rename = "std")]
    Std,
    /// io_uring single-shot `IORING_OP_ACCEPT`, several in flight, peer from the CQE's sockaddr.
    #[serde(rename = "uring")]
    Uring,
    /// io_uring multishot accept, re-armed when a CQE lacks `F_MORE`, peer via `getpeername`.
    #[serde(rename = "multishot")]
    Multishot,
    /// io_uring multishot accept; per connection a uring_cmd `GETSOCKOPT(SO_PEERNAME)`
    /// linked to `IORING_OP_CLOSE`, all in the ring (Linux 6.7).
    #[serde(rename = "uring-linked")]
    UringLinked,
    /// `tokio_uring::net::TcpListener::accept`.
    #[serde(rename = "tokio-uring")]
    TokioUring,
    /// tokio (epoll) `TcpListener::accept`.
    #[serde(rename = "tokio")]
    Tokio,
    /// `compio::net::TcpListener::accept`: compio's io_uring runtime (single-shot
    /// accept, `POLL_FIRST` when the last completion said the queue was empty).
    #[serde(rename = "compio")]
    Compio,
}

impl EngineKind {
    /// Every engine, baseline first.
    pub const ALL: [EngineKind; 7] = [
        EngineKind::Std,
        EngineKind::Uring,
        EngineKind::Multishot,
        EngineKind::UringLinked,
        EngineKind::TokioUring,
        EngineKind::Tokio,
        EngineKind::Compio,
    ];

    /// The engine's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Std => "std",
            EngineKind::Uring => "uring",
            EngineKind::Multishot => "multishot",
            EngineKind::UringLinked => "uring-linked",
            EngineKind::TokioUring => "tokio-uring",
            EngineKind::Tokio => "tokio",
            EngineKind::Compio => "compio",
        }
    }

    /// True when the engine sees a futile wake-up (woken, nothing to accept) and counts
    /// it in [`Recorder::futile_wakeups`]: only `std`. The io_uring engines retry inside
    /// the kernel (a completion is posted only for a connection) and tokio retries
    /// `EAGAIN` inside its accept future, so theirs are invisible to the application.
    pub fn counts_futile_wakeups(self) -> bool {
        self == EngineKind::Std
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown engine {0:?}: use one of std, uring, multishot, uring-linked, tokio-uring, tokio, compio")]
pub struct UnknownEngine(pub String);

impl FromStr for EngineKind {
    type Err = UnknownEngine;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownEngine(s.to_string()))
    }
}

/// How an engine is set up (the same for every run of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// io_uring single-shot accepts kept in flight (`uring` only), at least 1.
    pub inflight: usize,
    /// Work simulated per accepted connection before the next accept (overload studies).
    pub accept_delay: Option<Duration>,
    /// io_uring set-up flags (ring engines only); `None` is the engine's default:
    /// `defer` for `uring-linked`, `default` for `uring` and `multishot`.
    pub ring_setup: Option<RingSetup>,
    /// Accept into direct descriptors (a registered sparse file table) instead of the
    /// process's fd table (`uring-linked` only).
    pub direct: bool,
    /// With `direct`: the size of the direct-descriptor table; `None` sizes it from the
    /// listener's backlog (next power of two above backlog+1, within 64..=65536), so a
    /// full accept queue always fits. A smaller table slows the acceptor (no more
    /// accepts are armed than entries are free) but loses nothing.
    pub direct_files: Option<u32>,
    /// Stop the application once for a while, mid-run (sweep mode `stall`).
    pub stall: Option<Stall>,
    /// How `uring` arms its accepts: the 6.10 accept flags and the SOCK_NONEMPTY hint
    /// (`uring` only; `none` is every kernel's plain accept).
    pub accept_flags: AcceptFlags,
    /// How `uring-linked` reads the peer in the ring: getsockopt(SO_PEERNAME) (6.7) or
    /// getsockname with the peer flag (6.19); `auto` takes the newer where the probe
    /// found it.
    pub peer_op: PeerOp,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            inflight: 8,
            accept_delay: None,
            ring_setup: None,
            direct: false,
            direct_files: None,
            stall: None,
            accept_flags: AcceptFlags::Plain,
            peer_op: PeerOp::Auto,
        }
    }
}

/// A stop request shared between the engine and whoever runs it (Ctrl-C, a sweep).
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag that is not raised.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks every holder to stop.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    /// True once `raise` was called.
    #[inline]
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    /// The shared atomic, for signal handlers that need a plain `Arc<AtomicBool>`.
    pub fn as_atomic(&self) -> &Arc<AtomicBool> {
        &self.0
    }
}

/// When an engine run ends: whichever comes first.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Stop after this many accepted connections. With several accepts in flight a few
    /// more may complete while the rest are cancelled; they are recorded, never dropped.
    pub count: Option<u64>,
    /// Stop at this instant.
    pub deadline: Option<Instant>,
    /// Stop when raised.
    pub stop: StopFlag,
}

impl Limits {
    /// How often an idle engine wakes to look at `stop` and `deadline`.
    pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

    /// True when the run must end, given `accepted` connections so far.
    #[inline]
    pub fn reached(&self, accepted: u64) -> bool {
        self.count.is_some_and(|c| accepted >= c)
            || self.stop.is_raised()
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// What an engine cannot do here.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The running kernel lacks something the engine needs.
    #[error("engine {engine} is unsupported on this kernel: {reason}")]
    Unsupported {
        /// The engine.
        engine: EngineKind,
        /// What is missing and which Linux version has it.
        reason: String,
    },
    /// An option the engine cannot work with.
    #[error("engine {engine}: {reason}")]
    InvalidOption {
        /// The engine.
        engine: EngineKind,
        /// Which option, its value and the accepted range.
        reason: String,
    },
    /// Accept failed with the same errno outside the known list so many times in a
    /// row that retrying is pointless (EPERM from a seccomp filter or an LSM policy).
    #[error("engine {engine}: accept on the listener failed {count} times in a row with {}; stopping the run: this errno does not go away by retrying — check seccomp filters, LSM (SELinux, AppArmor) policy and firewall rules applied to this process", describe_errno(*errno))]
    AcceptKeepsFailing {
        /// The engine.
        engine: EngineKind,
        /// The positive errno.
        errno: i32,
        /// Consecutive failures seen before stopping.
        count: u64,
    },
    /// The direct-descriptor table could not be registered (support was checked
    /// before: 5.19). The kernel caps it at RLIMIT_NOFILE.
    #[error("engine {engine}: registering a direct descriptor table of {entries} entries failed ({source}); the kernel caps that table at RLIMIT_NOFILE, now {limit}: raise it (ulimit -n) or drop --direct")]
    DirectTable {
        /// The engine.
        engine: EngineKind,
        /// Entries asked for.
        entries: u32,
        /// RLIMIT_NOFILE's soft limit.
        limit: u64,
        /// The error.
        source: ::std::io::Error,
    },
    /// A system call failed in a way the engine cannot count and go on from.
    #[error("engine {engine}: {what}: {source}")]
    Io {
        /// The engine.
        engine: EngineKind,
        /// What it was doing.
        what: &'static str,
        /// The error.
        source: ::std::io::Error,
    },
}

/// Engine-internal events worth reporting beside the [`Recorder`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineCounters {
    /// Times the io_uring CQ overflowed into the kernel's backlog and had to be
    /// flushed (`IORING_SQ_CQ_OVERFLOW`); nothing is lost, but it costs time.
    pub cq_overflows: u64,
    /// CQEs the kernel dropped (`cq.overflow()`); each is also counted as an
    /// `EOVERFLOW` error in the recorder. Should be 0 on any kernel ≥ 5.5.
    pub cqes_dropped: u64,
    /// Times a stop found accepts still armed and cancelled them (io_uring engines).
    pub cancels: u64,
    /// `uring-linked`: in-ring `GETSOCKOPT(SO_PEERNAME)` that failed; the peer was
    /// then read with a system call (or, for a direct descriptor, counted as lost).
    #[serde(default)]
    pub peer_op_errors: u64,
    /// `uring-linked`: connections whose peer was read with a system call because
    /// every ring slot was busy (never lost, only slower).
    #[serde(default)]
    pub peer_syscall_fallbacks: u64,
    /// `uring-linked`: in-ring closes that failed (the fd was then closed with close(2)).
    #[serde(default)]
    pub close_errors: u64,
}

impl EngineCounters {
    /// Adds one run's counters to these.
    pub fn add(&mut self, other: &EngineCounters) {
        self.cq_overflows += other.cq_overflows;
        self.cqes_dropped += other.cqes_dropped;
        self.cancels += other.cancels;
        self.peer_op_errors += other.peer_op_errors;
        self.peer_syscall_fallbacks += other.peer_syscall_fallbacks;
        self.close_errors += other.close_errors;
    }
}

/// Largest `inflight` the `uring` engine accepts (each slot is ~136 bytes and one SQE).
pub const MAX_INFLIGHT: usize = 4096;

impl EngineError {
    /// For `map_err`: wraps an I/O error of `engine` doing `what`.
    pub fn io(engine: EngineKind, what: &'static str) -> impl FnOnce(::std::io::Error) -> Self {
        move |source| EngineError::Io {
            engine,
            what,
            source,
        }
    }
}

/// One way of accepting connections.
pub trait Acceptor: Send {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// Accepts on `listener` until `limits` says stop: each connection's peer is decoded,
    /// recorded into `rec`, and the connection closed. On return no operation of this
    /// engine is still armed on the listener (io_uring accepts are cancelled and their
    /// cancellation awaited), so the caller may close and re-bind the port at once.
    fn run(
        &mut self,
        listener: &Listener,
        limits: &Limits,
        rec: &mut Recorder,
    ) -> Result<(), EngineError>;

    /// Engine-internal counters accumulated over every `run` so far.
    fn counters(&self) -> EngineCounters {
        EngineCounters::default()
    }

    /// The io_uring set-up flags the engine's ring actually has, with the reason for
    /// any fallback (e.g. `"default (defer refused: EINVAL, needs Linux 6.1)"`);
    /// `None` for engines without a ring of their own, or before the first run.
    fn ring_setup_applied(&self) -> Option<String> {
        None
    }
}

/// Builds an engine after checking that this kernel supports it (the io_uring probe
/// runs once per process) and that `opts` make sense for it.
pub fn build(kind: EngineKind, opts: &EngineOptions) -> Result<Box<dyn Acceptor>, EngineError> {
    if let Some(reason) = support::unsupported_reason(
        kind,
        probe::probe_uring_cached(),
        crate::kernel::release_version(&crate::kernel::uname().release),
    ) {
        return Err(EngineError::Unsupported {
            engine: kind,
            reason,
        });
    }
    if kind == EngineKind::Uring && !(1..=MAX_INFLIGHT).contains(&opts.inflight) {
        return Err(EngineError::InvalidOption {
            engine: kind,
            reason: format!(
                "inflight must be between 1 and {MAX_INFLIGHT} (got {})",
                opts.inflight
            ),
        });
    }
    if opts.direct && kind != EngineKind::UringLinked {
        return Err(EngineError::InvalidOption {
            engine: kind,
            reason: "direct descriptors (--direct) apply to engine uring-linked only".into(),
        });
    }
    if opts.accept_flags.needs_6_10() {
        if kind != EngineKind::Uring {
            return Err(EngineError::InvalidOption {
                engine: kind,
                reason: format!(
                    "accept flags ({}) apply to engine uring only",
                    opts.accept_flags
                ),
            });
        }
        if let Some(reason) = support::accept_flags_unsupported(probe::probe_uring_cached()) {
            return Err(EngineError::Unsupported {
                engine: kind,
                reason: format!("accept flags {}: {reason}", opts.accept_flags),
            });
        }
    }
    if opts.peer_op != PeerOp::Auto && kind != EngineKind::UringLinked {
        return Err(EngineError::InvalidOption {
            engine: kind,
            reason: format!(
                "--peer-op {} applies to engine uring-linked only",
                opts.peer_op
            ),
        });
    }
    if opts.peer_op == PeerOp::Getsockname {
        if let Some(reason) = support::getsockname_unsupported(probe::probe_uring_cached()) {
            return Err(EngineError::Unsupported {
                engine: kind,
                reason: format!("--peer-op getsockname: {reason}"),
            });
        }
    }
    if opts.direct {
        let p = probe::probe_uring_cached();
        if !p.direct_descriptors {
            return Err(EngineError::Unsupported {
                engine: kind,
                reason: "--direct needs Linux 5.19 (registered sparse file table, IORING_FILE_INDEX_ALLOC)".into(),
            });
        }
    }
    Ok(match kind {
        EngineKind::Std => Box::new(StdAcceptor::new(opts)),
        EngineKind::Uring => Box::new(UringAcceptor::new(opts)),
        EngineKind::Multishot => Box::new(MultishotAcceptor::new(opts)),
        EngineKind::UringLinked => Box::new(UringLinkedAcceptor::new(opts)),
        EngineKind::TokioUring => Box::new(TokioUringAcceptor::new(opts)),
        EngineKind::Tokio => Box::new(TokioAcceptor::new(opts)),
        EngineKind::Compio => Box::new(CompioAcceptor::new(opts)),
    })
}

/// Runs `acceptor` once on `listener` with nothing to accept (count 0), so that its
/// one-time set-up — ring, registered tables, runtime — is done, and fails, before any
/// client is served: a server sets those up before its first accept. A connection
/// already queued that an armed accept takes meanwhile is recorded in `rec`, never
/// lost.
pub fn set_up(
    acceptor: &mut dyn Acceptor,
    listener: &Listener,
    rec: &mut Recorder,
) -> Result<(), EngineError> {
    let nothing = Limits {
        count: Some(0),
        deadline: Some(Instant::now() + Duration::from_secs(5)),
        stop: StopFlag::new(),
    };
    acceptor.run(listener, &nothing, rec)
}

/// The runtime engines' start (tokio, tokio-uring): the listener's O_NONBLOCK as the
/// runtime needs it — set on the shared file description, so on the dup too; the
/// guard puts back the mode found — and a dup of its fd for the runtime to own.
pub(crate) fn runtime_listener(
    listener: &Listener,
    engine: EngineKind,
    nonblocking: bool,
) -> Result<(crate::listener::BlockingModeGuard<'_>, socket2::Socket), EngineError> {
    let mode = listener
        .set_blocking_mode(nonblocking)
        .map_err(EngineError::io(engine, "setting the listener's O_NONBLOCK"))?;
    let dup = listener
        .socket()
        .try_clone()
        .map_err(EngineError::io(engine, "dup of the listener fd"))?;
    Ok((mode, dup))
}

/// The runtime engines' connection: its peer recorded, the stream dropped (closed with
/// close(2)), the close recorded, then the application's work (and pause).
pub(crate) fn accepted_stream<S>(
    rec: &mut Recorder,
    stream: S,
    peer: ::std::net::SocketAddr,
    accepted_ns: u64,
    work: &mut Work,
) {
    rec.accepted(
        crate::peer::unmap_v4(peer),
        accepted_ns,
        common::clock::mono_ns(),
    );
    drop(stream);
    rec.close_done(common::clock::mono_ns());
    work.after_connection(rec);
}

/// How long an engine sleeps after an accept failed for lack of fds or memory:
/// retrying at once cannot succeed and would spin the CPU; the queued connections
/// stay in the accept queue meanwhile (accept fails before dequeuing one).
pub(crate) const BACKOFF: Duration = Duration::from_millis(1);

/// What an engine does after a failed accept (positive errno), already recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterError {
    /// Accept again at once (ECONNABORTED, EINTR, a per-connection failure).
    Retry,
    /// Sleep [`BACKOFF`] first (EMFILE, ENFILE, ENOMEM, ENOBUFS).
    Backoff,
    /// The listener itself is unusable (not listening, closed, not a socket): stop.
    Fatal,
}

/// Consecutive accepts failing with one errno outside the known list after which the
/// run stops ([`EngineError::AcceptKeepsFailing`]). Each is followed by a [`BACKOFF`]
/// sleep, so this is about a second of trying. Known transient errnos (EMFILE, ENFILE,
/// ENOMEM, ENOBUFS, ECONNABORTED, EINTR) never stop a run: they end when fds, memory
/// or the peer come back.
pub const MAX_SAME_ERRNO: u64 = 1000;

/// Errnos that mean the listener itself is unusable: the run stops at the first one.
fn listener_unusable(errno: i32) -> bool {
    matches!(
        errno,
        libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT
    )
}

/// Records `errno` in `rec` and says how to go on.
#[inline]
pub(crate) fn on_accept_error(rec: &mut Recorder, errno: i32) -> AfterError {
    let kind = rec.error(errno);
    if listener_unusable(errno)
        || (kind == crate::record::AcceptError::Other
            && rec.consecutive_errors(errno) >= MAX_SAME_ERRNO)
    {
        AfterError::Fatal
    } else if kind.needs_backoff() {
        AfterError::Backoff
    } else {
        AfterError::Retry
    }
}

/// Sleeps [`BACKOFF`] and counts it.
pub(crate) fn back_off(rec: &mut Recorder) {
    rec.backoffs += 1;
    ::std::thread::sleep(BACKOFF);
}

/// Simulated per-connection work (`accept_delay`): busy-waits, like CPU-bound request
/// handling would, so the acceptor's rate is exactly bounded by 1/delay and the
/// timing does not depend on timer slack.
#[inline]
fn simulate_work(delay: Option<Duration>) {
    if let Some(d) = delay {
        let end = Instant::now() + d;
        while Instant::now() < end {
            ::std::hint::spin_loop();
        }
    }
}

/// A pause of the application, armed from outside (the sweep arms it once its client
/// has started) and taken by the acceptor once, after the first connection it finishes
/// at or past the armed instant — as a GC pause or a blocked event loop hits a server
/// between two requests. The acceptor thread sleeps (`nanosleep`): the application
/// stops, and whatever the engine has armed in the kernel goes on as it would.
#[derive(Debug, Clone)]
pub struct Stall {
    /// CLOCK_MONOTONIC ns from which the pause is due; 0 until armed.
    at_ns: Arc<::std::sync::atomic::AtomicU64>,
    /// How long the application stops.
    pub duration: Duration,
}

impl Stall {
    /// A pause of `duration`, not armed yet.
    pub fn new(duration: Duration) -> Stall {
        Stall {
            at_ns: Arc::default(),
            duration,
        }
    }

    /// Makes the pause due from `at_ns` (CLOCK_MONOTONIC) on, for every acceptor
    /// holding a clone of this value.
    pub fn arm_at(&self, at_ns: u64) {
        self.at_ns.store(at_ns.max(1), Ordering::Release);
    }

    #[inline]
    fn due(&self, now_ns: u64) -> bool {
        let at = self.at_ns.load(Ordering::Acquire);
        at != 0 && now_ns >= at
    }

    /// Stops the calling thread for `duration` and records when, with the
    /// ListenOverflows the namespace counted meanwhile (read on this thread: its
    /// network namespace is the listener's).
    fn take(&self, rec: &mut Recorder) {
        let overflows = || {
            crate::kernel::netstat::read_tcpext()
                .ok()
                .and_then(|c| c.get("ListenOverflows").copied())
        };
        let before = overflows();
        let start_ns = common::clock::mono_ns();
        ::std::thread::sleep(self.duration);
        let end_ns = common::clock::mono_ns();
        let after = overflows();
        rec.stall = Some(crate::record::StallMark {
            start_ns,
            end_ns,
            overflows: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
        });
    }
}

impl PartialEq for Stall {
    fn eq(&self, other: &Stall) -> bool {
        Arc::ptr_eq(&self.at_ns, &other.at_ns) && self.duration == other.duration
    }
}

impl Eq for Stall {}

/// How many connections an engine's armed operations take out of the accept queue
/// while its application is stopped ([`Stall`]): the stall model's assumption, which
/// every stall run checks against what it measured. An io_uring accept armed on a
/// ring with the default set-up runs as task work the kernel forces on the stopped
/// thread (`TWA_SIGNAL` interrupts its sleep), so it goes on accepting: a multishot
/// accept until its CQ is full (then it ends), single-shot accepts once each — `uring`
/// re-arms the slot of the connection it was handling only after the pause, so q−1.
/// With `COOP_TASKRUN` or `DEFER_TASKRUN` that work waits for the application's next
/// `io_uring_enter`: nothing moves. std, tokio and tokio-uring have nothing armed
/// while they handle a connection (tokio-uring arms its next accept afterwards).
pub fn armed_in_stall(
    kind: EngineKind,
    inflight: usize,
    ring_setup_applied: &str,
    backlog_effective: u32,
) -> u32 {
    let default_ring =
        !(ring_setup_applied.starts_with("coop") || ring_setup_applied.starts_with("defer"));
    match kind {
        EngineKind::Std | EngineKind::Tokio | EngineKind::TokioUring | EngineKind::Compio => 0,
        _ if !default_ring => 0,
        EngineKind::Uring => inflight.saturating_sub(1) as u32,
        EngineKind::Multishot => multishot::cq_entries(backlog_effective),
        EngineKind::UringLinked => linked::cq_entries(backlog_effective),
    }
}

/// What the application does after each connection it has closed: the simulated work
/// (`accept_delay`) and, once, the [`Stall`]. Each run of an engine has its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Work {
    delay: Option<Duration>,
    stall: Option<Stall>,
    stalled: bool,
}

impl Work {
    /// The work `opts` ask for.
    pub(crate) fn of(opts: &EngineOptions) -> Work {
        Work {
            delay: opts.accept_delay,
            stall: opts.stall.clone(),
            stalled: false,
        }
    }

    /// After a connection: its work, then the pause if it is due and not yet taken.
    #[inline]
    pub(crate) fn after_connection(&mut self, rec: &mut Recorder) {
        simulate_work(self.delay);
        if let Some(s) = self.stall.as_ref().filter(|_| !self.stalled) {
            if s.due(common::clock::mono_ns()) {
                self.stalled = true;
                s.take(rec);
            }
        }
    }
}

/// The error for a fatal accept errno: the listener is unusable, or (any other errno)
/// it failed [`MAX_SAME_ERRNO`] times in a row.
pub(crate) fn fatal_accept(engine: EngineKind, errno: i32) -> EngineError {
    if listener_unusable(errno) {
        EngineError::Io {
            engine,
            what: "accept on the listener",
            source: ::std::io::Error::from_raw_os_error(errno),
        }
    } else {
        EngineError::AcceptKeepsFailing {
            engine,
            errno,
            count: MAX_SAME_ERRNO,
        }
    }
}

/// `EPERM (Operation not permitted, errno 1)`: name, text and number of an errno.
pub fn describe_errno(errno: i32) -> String {
    let text = ::std::io::Error::from_raw_os_error(errno).to_string();
    let text = text
        .strip_suffix(&format!(" (os error {errno})"))
        .unwrap_or(&text);
    format!("{} ({text}, errno {errno})", errno_name(errno))
}

/// The symbolic name of an errno accept(2) can return (as in `errno(3)`), or `errno N`.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EPROTO => "EPROTO",
        libc::ENOSR => "ENOSR",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENONET => "ENONET",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ENOSYS => "ENOSYS",
        libc::EIO => "EIO",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOMEM => "ENOMEM",
        libc::ENOBUFS => "ENOBUFS",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EINTR => "EINTR",
        libc::EAGAIN => "EAGAIN",
        libc::EBADF => "EBADF",
        libc::EINVAL => "EINVAL",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EFAULT => "EFAULT",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

/// tokio / tokio-uring: counts a failed accept and, when it calls for a back-off,
/// sleeps on the runtime (never spinning). An error without an errno (a peer address
/// the library could not decode) counts as EAFNOSUPPORT.
pub(crate) async fn on_async_accept_error(
    engine: EngineKind,
    rec: &mut Recorder,
    e: &::std::io::Error,
) -> Result<(), EngineError> {
    let errno = e.raw_os_error().unwrap_or(libc::EAFNOSUPPORT);
    match on_accept_error(rec, errno) {
        AfterError::Retry => Ok(()),
        AfterError::Backoff => {
            rec.backoffs += 1;
            ::tokio::time::sleep(BACKOFF).await;
            Ok(())
        }
        AfterError::Fatal => Err(fatal_accept(engine, errno)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_errnos_back_off_and_stop_after_a_bounded_run() {
        let mut rec = Recorder::new(false);
        for _ in 1..MAX_SAME_ERRNO {
            assert_eq!(on_accept_error(&mut rec, libc::EPERM), AfterError::Backoff);
        }
        assert_eq!(on_accept_error(&mut rec, libc::EPERM), AfterError::Fatal);
        // Another errno, or an accepted connection, starts the count again.
        assert_eq!(on_accept_error(&mut rec, libc::EPROTO), AfterError::Backoff);
        rec.accepted("127.0.0.1:1".parse().unwrap(), 1, 2);
        assert_eq!(rec.consecutive_errors(libc::EPROTO), 0);
        assert_eq!(on_accept_error(&mut rec, libc::EPERM), AfterError::Backoff);
        // Known transient errnos never stop a run, however long they last.
        for _ in 0..2 * MAX_SAME_ERRNO {
            assert_eq!(on_accept_error(&mut rec, libc::EMFILE), AfterError::Backoff);
            assert_eq!(
                on_accept_error(&mut rec, libc::ECONNABORTED),
                AfterError::Retry
            );
        }
        assert_eq!(on_accept_error(&mut rec, libc::EBADF), AfterError::Fatal);
        let msg = fatal_accept(EngineKind::Std, libc::EPERM).to_string();
        assert!(
            msg.contains("EPERM (Operation not permitted, errno 1)"),
            "{msg}"
        );
    }
}
