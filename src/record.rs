//! What an acceptor records per accepted connection, as plain data.
//!
//! Engines call [`Recorder::accepted`] on the hot path and [`Recorder::error`] on
//! failures; reporters read the fields afterwards. Nothing here formats output.
//! Recording costs two vDSO clock reads (taken by the engine), one histogram
//! increment and, when peers are kept for the end-to-end join, one `Vec` push.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::hist::new_histogram;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// One accepted connection, kept when the run joins server and client records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer address the engine decoded.
    pub peer: SocketAddr,
    /// CLOCK_MONOTONIC ns when the engine observed the accept's completion.
    pub accepted_ns: u64,
    /// CLOCK_MONOTONIC ns when the decoded peer `SocketAddr` was in hand.
    pub decoded_ns: u64,
}

/// Why an accept failed, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceptError {
    /// EMFILE: the process is out of file descriptors (the engine backs off).
    Emfile,
    /// ENFILE: the system is out of file descriptors (the engine backs off).
    Enfile,
    /// ECONNABORTED: the connection was reset while still in the accept queue.
    ConnAborted,
    /// EAGAIN/EWOULDBLOCK: nothing to accept (retried).
    Again,
    /// EINTR: interrupted by a signal (retried).
    Interrupted,
    /// ENOBUFS/ENOMEM: kernel memory pressure (the engine backs off).
    NoMemory,
    /// Any other errno (its number is kept in `other_errnos`).
    Other,
}

impl AcceptError {
    /// Classifies a positive errno.
    pub fn from_errno(errno: i32) -> Self {
        match errno {
            libc::EMFILE => Self::Emfile,
            libc::ENFILE => Self::Enfile,
            libc::ECONNABORTED => Self::ConnAborted,
            libc::EAGAIN => Self::Again,
            libc::EINTR => Self::Interrupted,
            libc::ENOBUFS | libc::ENOMEM => Self::NoMemory,
            _ => Self::Other,
        }
    }

    /// True when the engine should sleep before accepting again: resource exhaustion,
    /// where retrying at once would spin the CPU and could not succeed, and any errno
    /// outside the known list (EPERM from a seccomp filter or an LSM, EPROTO, …), which
    /// may repeat on every call just the same.
    pub fn needs_backoff(self) -> bool {
        matches!(
            self,
            Self::Emfile | Self::Enfile | Self::NoMemory | Self::Other
        )
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Emfile => "emfile",
            Self::Enfile => "enfile",
            Self::ConnAborted => "conn_aborted",
            Self::Again => "again",
            Self::Interrupted => "interrupted",
            Self::NoMemory => "no_memory",
            Self::Other => "other",
        }
    }
}

/// The instant an engine's work ended ([`Recorder::mark_done`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Done {
    /// The acceptor thread's CPU clock then, s.
    pub cpu_s: f64,
    /// CLOCK_MONOTONIC ns then.
    pub ns: u64,
    /// Connections closed by then.
    closed: u64,
    /// The thread's use of the kernel then.
    pub usage: crate::kernel::perf::ThreadUsage,
}

/// When an acceptor's application stopped ([`crate::engine::Stall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallMark {
    /// CLOCK_MONOTONIC ns when the pause began.
    pub start_ns: u64,
    /// CLOCK_MONOTONIC ns when it ended (the application resumed).
    pub end_ns: u64,
    /// TcpExt ListenOverflows counted in the listener's namespace meanwhile (SYNs,
    /// and final ACKs, that met a full accept queue); None when unreadable.
    pub overflows: Option<u64>,
}

impl StallMark {
    /// The pause of several acceptors taken as one: from the first start to the last
    /// end, their overflows summed only when they did not overlap (one namespace's
    /// counter, read by each, would otherwise count twice): the larger one then.
    pub fn union(self, other: StallMark) -> StallMark {
        let overlap = self.start_ns < other.end_ns && other.start_ns < self.end_ns;
        StallMark {
            start_ns: self.start_ns.min(other.start_ns),
            end_ns: self.end_ns.max(other.end_ns),
            overflows: match (self.overflows, other.overflows) {
                (Some(a), Some(b)) if overlap => Some(a.max(b)),
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            },
        }
    }
}

/// Observer called with each decoded peer (the `--print-peers` use). Runs on the hot
/// path, so only attach one when the user asked for it.
pub type PeerObserver = Box<dyn FnMut(&SocketAddr) + Send>;

/// Everything one acceptor run recorded.
pub struct Recorder {
    /// Connections accepted (each one was closed after its peer was decoded).
    pub accepted: u64,
    /// Accept errors by kind.
    pub errors: BTreeMap<AcceptError, u64>,
    /// Errnos behind `AcceptError::Other`, errno → count.
    pub other_errnos: BTreeMap<i32, u64>,
    /// Times the engine slept because of fd or memory exhaustion.
    pub backoffs: u64,
    /// Server-internal peer-extraction latency: accept completion observed → peer decoded, ns.
    pub peer_extract_ns: Histogram<u64>,
    /// CLOCK_MONOTONIC ns of the first accept completion, 0 if none.
    pub first_accept_ns: u64,
    /// CLOCK_MONOTONIC ns of the last accept completion, 0 if none.
    pub last_accept_ns: u64,
    /// CLOCK_MONOTONIC ns when the last peer was held (decoded), 0 if none. For most
    /// engines a few ns after `last_accept_ns`; for `uring-linked` one completion later.
    pub last_decoded_ns: u64,
    /// Accepted descriptors (or direct slots) whose close has completed: every accepted
    /// connection, recorded or failed, is closed exactly once.
    pub closed: u64,
    /// CLOCK_MONOTONIC ns when the last close completed, 0 if none. A connection is done
    /// when it is closed: with `DEFER_TASKRUN` `uring-linked`'s linked closes complete
    /// mostly after its last peer is held, so this, not `last_decoded_ns`, ends a window.
    pub last_closed_ns: u64,
    /// Where the engine's work ended once it was told to stop (see [`Recorder::mark_done`]).
    done: Option<Done>,
    /// The instant the engine was released (see [`Recorder::mark_release`]).
    release: Option<Done>,
    /// Per-connection records, kept only when `keep_peers` was asked for.
    pub peers: Vec<PeerRecord>,
    /// Multishot re-arms (completions that lacked IORING_CQE_F_MORE), 0 for other engines.
    pub rearms: u64,
    /// Connections the kernel took off the accept queue and then destroyed, so that no
    /// engine could ever have them: an accept into a direct descriptor that completed
    /// with ENFILE (dequeued, no free table entry, closed). Also counted as ENFILE
    /// errors. `uring-linked --direct` arms no accept without a free entry, so 0.
    pub lost: u64,
    /// `uring` with DONTWAIT accepts: completions with EAGAIN (the queue was empty; the
    /// slot re-armed with POLL_FIRST). Not errors.
    pub accept_eagain: u64,
    /// `uring`: accept completions that carried IORING_CQE_F_SOCK_NONEMPTY (more
    /// connections were queued when this one was taken; 6.10+).
    pub sock_nonempty: u64,
    /// Futile wake-ups: an accept that was woken but found the queue empty (another
    /// acceptor took the connection). Counted only by engines that can see one (`std`:
    /// EAGAIN well before its receive timeout); the others retry inside the kernel or
    /// the runtime, and leave this 0.
    pub futile_wakeups: u64,
    /// When the application stopped (sweep mode `stall`), if it did.
    pub stall: Option<StallMark>,
    /// The errno of the last failed accept, 0 after a successful one.
    last_errno: i32,
    /// How many accepts in a row failed with `last_errno`.
    same_errno_run: u64,
    keep_peers: bool,
    observer: Option<PeerObserver>,
    /// perf counters on this thread (system calls, io_uring enters), if counting.
    counters: Option<crate::kernel::perf::ThreadCounters>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Recorder {
    /// A recorder; with `keep_peers` every accepted connection is also kept in `peers`.
    pub fn new(keep_peers: bool) -> Self {
        Self {
            accepted: 0,
            errors: BTreeMap::new(),
            other_errnos: BTreeMap::new(),
            backoffs: 0,
            peer_extract_ns: new_histogram(),
            first_accept_ns: 0,
            last_accept_ns: 0,
            last_decoded_ns: 0,
            closed: 0,
            last_closed_ns: 0,
            done: None,
            release: None,
            peers: if keep_peers {
                Vec::with_capacity(1 << 16)
            } else {
                Vec::new()
            },
            rearms: 0,
            lost: 0,
            accept_eagain: 0,
            sock_nonempty: 0,
            futile_wakeups: 0,
            stall: None,
            last_errno: 0,
            same_errno_run: 0,
            keep_peers,
            observer: None,
            counters: None,
        }
    }

    /// Calls `observer` with every decoded peer, in accept order.
    pub fn with_observer(mut self, observer: PeerObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Records one accepted connection whose peer was decoded.
    #[inline]
    pub fn accepted(&mut self, peer: SocketAddr, accepted_ns: u64, decoded_ns: u64) {
        self.accepted += 1;
        self.last_errno = 0;
        self.same_errno_run = 0;
        if self.first_accept_ns == 0 {
            self.first_accept_ns = accepted_ns;
        }
        self.last_accept_ns = accepted_ns;
        self.last_decoded_ns = self.last_decoded_ns.max(decoded_ns);
        // saturating_record clamps instead of failing on an out-of-range value.
        self.peer_extract_ns
            .saturating_record(decoded_ns.saturating_sub(accepted_ns).max(1));
        if self.keep_peers {
            self.peers.push(PeerRecord {
                peer,
                accepted_ns,
                decoded_ns,
            });
        }
        if let Some(observer) = self.observer.as_mut() {
            observer(&peer);
        }
    }

    /// Records that the close of one accepted connection completed at `now_ns`
    /// (CLOCK_MONOTONIC): after `close(2)` returned, or when an in-ring close's CQE was
    /// reaped.
    #[inline]
    pub fn close_done(&mut self, now_ns: u64) {
        self.closed += 1;
        self.last_closed_ns = self.last_closed_ns.max(now_ns);
    }

    /// Marks the end of the engine's work: called once its limits were reached and
    /// every close it had in flight has completed, before it tears anything down
    /// (cancelling armed accepts, dropping a runtime). Reads the thread's CPU clock
    /// (one system call, never per connection), so a window's CPU ends where its last
    /// close does. Called again, it moves the mark only if a close completed since
    /// (a connection that raced the stop).
    pub fn mark_done(&mut self) {
        if self.done.is_some_and(|d| d.closed == self.closed) {
            return;
        }
        let usage = crate::kernel::perf::ThreadUsage::end(self.counters.as_mut());
        self.done = Some(Done {
            cpu_s: common::affinity::thread_cpu_total_s(),
            ns: common::clock::mono_ns(),
            closed: self.closed,
            usage,
        });
    }

    /// Marks the engine's release: called immediately before its first accept call or
    /// submit, after whatever it prepares per run (a runtime, a registration, a socket
    /// option), so that a window starts at the same point of every engine's work. Reads
    /// the thread's CPU clock once.
    pub fn mark_release(&mut self) {
        let cpu_s = common::affinity::thread_cpu_total_s();
        let ns = common::clock::mono_ns();
        self.release = Some(Done {
            cpu_s,
            ns,
            closed: self.closed,
            usage: crate::kernel::perf::ThreadUsage::start(self.counters.as_mut()),
        });
    }

    /// Counts this thread's system calls and io_uring enters from now on (perf, see
    /// [`crate::kernel::perf`]); must be called on the acceptor's own thread. Err: why
    /// perf cannot count here (the marks still carry getrusage's figures).
    pub fn count_kernel(&mut self, ids: crate::kernel::perf::Ids) -> Result<(), String> {
        self.counters = Some(crate::kernel::perf::ThreadCounters::open(ids)?);
        Ok(())
    }

    /// This thread's use of the kernel now, as a window's start (for a window the
    /// engine opened without a release mark).
    pub fn usage_now(&mut self) -> crate::kernel::perf::ThreadUsage {
        crate::kernel::perf::ThreadUsage::start(self.counters.as_mut())
    }

    /// This thread's use of the kernel now, as a window's end.
    pub fn usage_end(&mut self) -> crate::kernel::perf::ThreadUsage {
        crate::kernel::perf::ThreadUsage::end(self.counters.as_mut())
    }

    /// Takes the mark [`Recorder::mark_release`] left (None if the engine left none).
    pub fn take_release(&mut self) -> Option<Done> {
        self.release.take()
    }

    /// Takes the mark [`Recorder::mark_done`] left (None if the engine left none).
    pub fn take_done(&mut self) -> Option<Done> {
        self.done.take()
    }

    /// Records a failed accept (positive errno) and returns its kind.
    #[inline]
    pub fn error(&mut self, errno: i32) -> AcceptError {
        let kind = AcceptError::from_errno(errno);
        if errno == self.last_errno {
            self.same_errno_run += 1;
        } else {
            self.last_errno = errno;
            self.same_errno_run = 1;
        }
        *self.errors.entry(kind).or_insert(0) += 1;
        if kind == AcceptError::Other {
            *self.other_errnos.entry(errno).or_insert(0) += 1;
        }
        kind
    }

    /// How many accepts in a row, up to the last one, failed with `errno` (0 when the
    /// last accept succeeded or failed with another errno).
    pub fn consecutive_errors(&self, errno: i32) -> u64 {
        if errno == self.last_errno {
            self.same_errno_run
        } else {
            0
        }
    }

    /// Adds another acceptor's records to these (several acceptors of one run, merged
    /// when the run ends): counts summed, histograms added, peers appended.
    pub fn absorb(&mut self, other: Recorder) {
        self.accepted += other.accepted;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        for (k, v) in other.other_errnos {
            *self.other_errnos.entry(k).or_insert(0) += v;
        }
        self.backoffs += other.backoffs;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.peer_extract_ns.add(&other.peer_extract_ns);
        if other.first_accept_ns != 0
            && (self.first_accept_ns == 0 || other.first_accept_ns < self.first_accept_ns)
        {
            self.first_accept_ns = other.first_accept_ns;
        }
        self.last_accept_ns = self.last_accept_ns.max(other.last_accept_ns);
        self.last_decoded_ns = self.last_decoded_ns.max(other.last_decoded_ns);
        self.closed += other.closed;
        self.last_closed_ns = self.last_closed_ns.max(other.last_closed_ns);
        self.peers.extend(other.peers);
        self.rearms += other.rearms;
        self.lost += other.lost;
        self.accept_eagain += other.accept_eagain;
        self.sock_nonempty += other.sock_nonempty;
        self.futile_wakeups += other.futile_wakeups;
        self.stall = match (self.stall, other.stall) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        };
    }

    /// Total errors of every kind.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Accepts per second between the first and the last accept completion
    /// (idle time before and after does not dilute it); 0 with fewer than 2 accepts.
    pub fn active_accepts_per_s(&self) -> f64 {
        let span_ns = self.last_accept_ns.saturating_sub(self.first_accept_ns);
        if self.accepted < 2 || span_ns == 0 {
            return 0.0;
        }
        (self.accepted - 1) as f64 / (span_ns as f64 * 1e-9)
    }
}
