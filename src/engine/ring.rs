//! The skeleton of the ring engines (`uring`, `multishot`, `uring-linked`): one
//! [`RingAcceptor`] that each fills in with what differs — how it sizes its ring and
//! what state a run keeps ([`RingEngine`]), how it arms accepts and what it does per
//! completion ([`RingRun`]). Everything else is here once: the blocking listener, ring
//! set-up with the [`RingSetup`] flags and their fallback, the ring kept between runs
//! ([`KeptRing`]), the cancel-and-reap stop, buffers leaked when a stop gives up,
//! counters, pushing SQEs, waiting with a timeout, CQ overflow accounting. It owns no
//! accept logic and records nothing itself.

use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use io_uring::squeue::Entry;
use io_uring::{cqueue, opcode, types, CompletionQueue, IoUring, SubmissionQueue, Submitter};

use super::{Acceptor, EngineCounters, EngineError, EngineKind, Limits};
use crate::listener::Listener;
use crate::record::Recorder;

/// `user_data` layout: operation kind in the high 32 bits, slot index in the low 32.
pub(super) const OP_ACCEPT: u64 = 1 << 32;
/// `user_data` kind of an `IORING_OP_ASYNC_CANCEL`.
pub(super) const OP_CANCEL: u64 = 2 << 32;
/// `user_data` kind of a `SOCKET_URING_OP_GETSOCKOPT` uring_cmd (`uring-linked`).
pub(super) const OP_PEER: u64 = 3 << 32;
/// `user_data` kind of an `IORING_OP_CLOSE` (`uring-linked`).
pub(super) const OP_CLOSE: u64 = 4 << 32;
/// The operation-kind half of `user_data`.
pub(super) const OP_MASK: u64 = 0xffff_ffff << 32;
/// The slot-index half of `user_data`.
pub(super) const IDX_MASK: u64 = 0xffff_ffff;

/// How long a stop waits for cancelled accepts before giving up (never reached on a
/// healthy kernel: cancelling a poll-armed accept completes at once).
pub(super) const CANCEL_GIVE_UP: Duration = Duration::from_secs(5);

pub use common::ring::{RingSetup, UnknownRingSetup};

/// Makes a ring with `sq` entries and a CQ of `cq` entries and the `want`ed flags,
/// falling back where the kernel refuses them ([`common::ring::setup`]). Returns the
/// ring and what was applied.
pub(super) fn setup_ring(
    engine: EngineKind,
    want: RingSetup,
    sq: u32,
    cq: u32,
) -> Result<(IoUring, String), EngineError> {
    common::ring::setup(want, sq, cq).map_err(EngineError::io(engine, "io_uring_setup"))
}

/// What a run needs of its ring: a kept ring smaller than this is made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingSize {
    /// SQ entries.
    pub sq: u32,
    /// CQ entries.
    pub cq: u32,
    /// Registered (sparse) direct-descriptor table entries; 0 for none.
    pub files: u32,
}

impl RingSize {
    fn covers(&self, other: &RingSize) -> bool {
        self.sq >= other.sq && self.cq >= other.cq && self.files >= other.files
    }
}

/// An engine's ring, kept between runs (a server sets its ring up once), with the
/// thread that made it: a `SINGLE_ISSUER` ring may only be used from that thread
/// (others get EEXIST), so a run on another thread makes a new ring.
pub(super) struct KeptRing {
    /// The flags asked for.
    pub want: RingSetup,
    ring: Option<(IoUring, ThreadId, RingSize)>,
    /// What the last set-up applied (see [`setup_ring`]).
    pub applied: Option<String>,
}

impl KeptRing {
    /// No ring yet; it is made on the first run with `want`.
    pub fn new(want: RingSetup) -> Self {
        Self {
            want,
            ring: None,
            applied: None,
        }
    }

    /// The kept ring if it was made on this thread and is big enough, else a new one.
    fn take_or_setup(
        &mut self,
        engine: EngineKind,
        size: RingSize,
    ) -> Result<(IoUring, RingSize), EngineError> {
        let me = thread::current().id();
        if let Some((ring, owner, have)) = self.ring.take() {
            if owner == me && have.covers(&size) {
                return Ok((ring, have));
            }
        }
        let (ring, applied) = setup_ring(engine, self.want, size.sq, size.cq)?;
        if size.files > 0 {
            ring.submitter()
                .register_files_sparse(size.files)
                .map_err(|source| EngineError::DirectTable {
                    engine,
                    entries: size.files,
                    limit: crate::kernel::rlimit_nofile().0,
                    source,
                })?;
        }
        self.applied = Some(applied);
        Ok((ring, size))
    }
}

/// What a ring engine is between runs: its options, and how one run is prepared.
pub trait RingEngine: Send {
    /// Which engine.
    const KIND: EngineKind;
    /// One run's state (its buffers, what is armed), made fresh for every run.
    type Run: RingRun;
    /// The ring a run on `listener` needs, and its state.
    fn prepare(&mut self, listener: &Listener) -> (RingSize, Self::Run);
}

/// A ring engine: `E` filled into the skeleton.
pub struct RingAcceptor<E: RingEngine> {
    /// The engine's own part.
    pub(super) engine: E,
    counters: EngineCounters,
    /// Kept between runs (a server sets its ring up once): nothing is armed on it
    /// once `run` returned successfully, so the next run starts from a clean ring.
    ring: KeptRing,
}

impl<E: RingEngine> RingAcceptor<E> {
    /// The engine `engine` on a ring set up with `setup` (made on the first run).
    pub(super) fn with(engine: E, setup: RingSetup) -> Self {
        Self {
            engine,
            counters: EngineCounters::default(),
            ring: KeptRing::new(setup),
        }
    }
}

impl<E: RingEngine> Acceptor for RingAcceptor<E> {
    fn kind(&self) -> EngineKind {
        E::KIND
    }

    fn run(
        &mut self,
        listener: &Listener,
        limits: &Limits,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        // An armed io_uring accept waits for a connection whatever O_NONBLOCK says (seen
        // on 6.18 with single-shot and multishot accepts), but every engine runs on the
        // same footing: a blocking listener, with the mode it found put back on return.
        let _mode = listener.set_blocking_mode(false).map_err(EngineError::io(
            E::KIND,
            "clearing O_NONBLOCK on the listener",
        ))?;
        let (size, mut run) = self.engine.prepare(listener);
        let (result, stopped) = run_on_ring(&mut self.ring, E::KIND, size, &mut run, limits, rec)?;
        self.counters.add(&run.tally().counters);
        if stopped.is_err() {
            // The ring is gone but an operation the stop could not wait for may still
            // write into the run's buffers during the kernel's teardown: never free them.
            run.leak_buffers();
        }
        result.and(stopped)
    }

    fn counters(&self) -> EngineCounters {
        self.counters
    }

    fn ring_setup_applied(&self) -> Option<String> {
        self.ring.applied.clone()
    }
}

/// What one loop turn's reaping asks of the skeleton.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turn {
    /// An accept failed for lack of fds, table entries or memory: sleep before re-arming.
    pub backoff: bool,
    /// An accept failed with this errno in a way that ends the run.
    pub fatal: Option<i32>,
}

/// What a run counts beside the recorder, and the CQ drops it has accounted for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// The run's engine counters.
    pub counters: EngineCounters,
    /// The ring's dropped-CQE count already accounted for ([`account_overflow`]).
    pub seen_dropped: u32,
}

/// One ring engine's run: how it arms accepts and what it does per completion — all
/// that differs between the ring engines. The skeleton ([`RingAcceptor`]) runs the
/// loop (release, arm, wait, reap, overflow, back-off, re-arm) and the stop (cancel,
/// reap until settled, mark the window's end).
pub trait RingRun {
    /// What the give-up error says was being cancelled.
    const CANCELLING: &'static str;

    /// Arms the accepts when the run starts.
    fn arm(&mut self, sub: &mut Submit<'_, '_>) -> Result<(), EngineError>;

    /// Handles one completion: a connection is recorded and closed, never lost; an
    /// error counted, and what it asks of the turn set in `cx.turn`. While
    /// `cx.stopping` nothing is re-armed. Returns false to leave the rest of the queue
    /// to the stop (a fatal errno).
    fn on_cqe(&mut self, cqe: &cqueue::Entry, cx: &mut Reap) -> Result<bool, EngineError>;

    /// After the queue was read: work that waited for room (default: none).
    fn after_reap(&mut self, _cx: &mut Reap) -> Result<(), EngineError> {
        Ok(())
    }

    /// After a turn (and its back-off): re-arms what is no longer armed. By default
    /// the one multishot accept, counting the re-arm (a completion lacked `F_MORE`).
    fn rearm(&mut self, sub: &mut Submit<'_, '_>, rec: &mut Recorder) -> Result<(), EngineError> {
        if !self.armed() {
            rec.rearms += 1;
            self.arm(sub)?;
        }
        Ok(())
    }

    /// True while an accept of this run is armed in the ring.
    fn armed(&self) -> bool;

    /// True while connections of this run still have work in flight in the ring (a peer
    /// read or a close not yet completed). Engines that close with close(2) have none.
    fn work_pending(&self) -> bool {
        false
    }

    /// Queues a cancel for every accept still armed: by default the one multishot
    /// accept (`user_data` [`OP_ACCEPT`]).
    fn push_cancels(&mut self, sub: &mut Submit<'_, '_>) -> Result<(), EngineError> {
        if !self.armed() {
            return Ok(());
        }
        let sqe = opcode::AsyncCancel::new(OP_ACCEPT)
            .build()
            .user_data(OP_CANCEL);
        // SAFETY: a cancel carries no buffers, only the target's user_data.
        unsafe { sub.push(EngineKind::Multishot, &sqe) }
    }

    /// What this run counted.
    fn tally(&mut self) -> &mut Tally;

    /// Gives up the run's buffers for good (the stop could not wait for every
    /// operation that writes into them). Runs whose operations write into no user
    /// memory have nothing to leak.
    fn leak_buffers(&mut self) {}
}

/// What a completion handler works with ([`RingRun::on_cqe`]).
pub struct Reap<'s, 'r, 'a> {
    /// The ring's submission side (re-arming, linked operations).
    pub sub: &'s mut Submit<'r, 'a>,
    /// The run's records.
    pub rec: &'s mut Recorder,
    /// The run is being cancelled: record and close, never re-arm.
    pub stopping: bool,
    /// What this turn asks of the loop.
    pub turn: Turn,
}

/// Reads every CQE in the queue through `run`'s handler.
fn reap<R: RingRun>(
    run: &mut R,
    ring: &mut Ring<'_, '_>,
    rec: &mut Recorder,
    stopping: bool,
) -> Result<Turn, EngineError> {
    let mut cx = Reap {
        sub: &mut ring.sub,
        rec,
        stopping,
        turn: Turn::default(),
    };
    ring.cq.sync();
    for cqe in &mut ring.cq {
        if !run.on_cqe(&cqe, &mut cx)? {
            break;
        }
    }
    ring.cq.sync();
    run.after_reap(&mut cx)?;
    Ok(cx.turn)
}

/// The accept loop every ring engine runs: released, armed, then wait → reap →
/// overflow accounting → back-off → re-arm until the limits say stop.
fn accept_loop<R: RingRun>(
    engine: EngineKind,
    run: &mut R,
    ring: &mut Ring<'_, '_>,
    limits: &Limits,
    rec: &mut Recorder,
) -> Result<(), EngineError> {
    rec.mark_release();
    run.arm(&mut ring.sub)?;
    let ts = types::Timespec::from(Limits::POLL_INTERVAL);
    let args = types::SubmitArgs::new().timespec(&ts);
    while !limits.reached(rec.accepted) {
        ring.wait(engine, &args)?;
        let turn = reap(run, ring, rec, false)?;
        ring.account_overflow(run.tally(), rec);
        if let Some(errno) = turn.fatal {
            return Err(super::fatal_accept(engine, errno));
        }
        if turn.backoff {
            super::back_off(rec);
        }
        run.rearm(&mut ring.sub, rec)?;
    }
    Ok(())
}

/// Cancels whatever `run` left armed and reaps until it has settled — nothing armed,
/// every operation's final CQE arrived — or [`CANCEL_GIVE_UP`] passed. A wait that brings
/// no CQE sends the cancels again (one can miss an accept running in an io-wq worker
/// and come back -EALREADY).
fn cancel_and_reap<R: RingRun>(
    engine: EngineKind,
    run: &mut R,
    ring: &mut Ring<'_, '_>,
    rec: &mut Recorder,
) -> Result<(), EngineError> {
    let give_up = Instant::now() + CANCEL_GIVE_UP;
    let ts = types::Timespec::from(Limits::POLL_INTERVAL);
    let args = types::SubmitArgs::new().timespec(&ts);
    let mut cancel_due = true;
    if run.armed() {
        run.tally().counters.cancels += 1;
    }
    loop {
        // Errors met while stopping are counted; the run is over either way.
        reap(run, ring, rec, true)?;
        ring.account_overflow(run.tally(), rec);
        if !run.work_pending() {
            // The last close has completed: the window's CPU ends here, before the
            // cancel's own round trip (moved on if a connection raced the cancel).
            rec.mark_done();
        }
        if !run.armed() && !run.work_pending() {
            return Ok(());
        }
        if Instant::now() >= give_up {
            return Err(EngineError::Io {
                engine,
                what: R::CANCELLING,
                source: std::io::Error::from_raw_os_error(libc::ETIME),
            });
        }
        if cancel_due {
            run.push_cancels(&mut ring.sub)?;
            cancel_due = false;
        }
        ring.wait(engine, &args)?;
        if CompletionQueue::is_empty(&ring.cq) {
            cancel_due = true;
        }
    }
}

/// The accept loop's result and the cancellation's.
pub(super) type LoopAndCancel = (Result<(), EngineError>, Result<(), EngineError>);

/// Runs `run` on the engine's kept ring (made on first use, or again when the kept one
/// belongs to another thread or is smaller than `size`): the accept loop, then the
/// cancellation of whatever it left armed. The ring is kept for the next run only when
/// the cancellation completed, so every run starts with nothing armed; otherwise it is
/// dropped here. Returns the loop's result and the cancellation's.
fn run_on_ring(
    kept: &mut KeptRing,
    engine: EngineKind,
    size: RingSize,
    run: &mut impl RingRun,
    limits: &Limits,
    rec: &mut Recorder,
) -> Result<LoopAndCancel, EngineError> {
    let (mut ring, have) = kept.take_or_setup(engine, size)?;
    let (result, stopped) = {
        let (submitter, sq, cq) = ring.split();
        let mut split = Ring {
            sub: Submit {
                submitter: &submitter,
                sq,
            },
            cq,
        };
        let result = accept_loop(engine, run, &mut split, limits, rec);
        let stopped = cancel_and_reap(engine, run, &mut split, rec);
        (result, stopped)
    };
    if stopped.is_ok() {
        kept.ring = Some((ring, thread::current().id(), have));
    }
    Ok((result, stopped))
}

/// The submission side of a split ring: what arming accepts and queueing operations
/// need.
pub struct Submit<'r, 'a> {
    submitter: &'r Submitter<'a>,
    sq: SubmissionQueue<'a>,
}

/// A split ring: its submission side and its completion queue, as a run works on it.
pub struct Ring<'r, 'a> {
    /// Submissions.
    pub sub: Submit<'r, 'a>,
    /// Completions.
    pub cq: CompletionQueue<'a>,
}

impl Submit<'_, '_> {
    /// Pushes `sqe`, submitting first if the SQ is full.
    ///
    /// # Safety
    /// Whatever memory `sqe` points at must stay valid until its CQE is reaped.
    #[inline]
    pub unsafe fn push(&mut self, engine: EngineKind, sqe: &Entry) -> Result<(), EngineError> {
        // SAFETY: forwarded to the caller.
        unsafe { self.push_all(engine, std::slice::from_ref(sqe)) }
    }

    /// Pushes `sqes` as one run of adjacent entries (submitting first if they do not all
    /// fit), so an `IOSQE_IO_LINK` chain among them is never split by a submission: a
    /// chain cut at the end of a submission would let the next entry run unlinked.
    ///
    /// # Safety
    /// Whatever memory the entries point at must stay valid until their CQEs are reaped.
    pub unsafe fn push_all(
        &mut self,
        engine: EngineKind,
        sqes: &[Entry],
    ) -> Result<(), EngineError> {
        for _ in 0..64 {
            // SAFETY: forwarded to the caller; push_multiple pushes all or none.
            if unsafe { self.sq.push_multiple(sqes) }.is_ok() {
                return Ok(());
            }
            self.sq.sync();
            match self.submitter.submit() {
                Ok(_) => {}
                Err(e) if common::ring::is_transient_enter_error(&e) => {
                    std::thread::yield_now();
                }
                Err(source) => {
                    return Err(EngineError::Io {
                        engine,
                        what: "io_uring_enter (submit)",
                        source,
                    })
                }
            }
            self.sq.sync();
        }
        Err(EngineError::Io {
            engine,
            what: "io_uring SQ stays full",
            source: std::io::Error::from_raw_os_error(libc::EBUSY),
        })
    }
}

impl Ring<'_, '_> {
    /// Submits what is queued and waits for at least one CQE or `args`' timeout
    /// (`IORING_FEAT_EXT_ARG`, 5.11). A timeout, a signal, and a CQ backlog that must be
    /// reaped first (EBUSY) are normal returns; the caller reaps and checks its limits.
    #[inline]
    fn wait(
        &mut self,
        engine: EngineKind,
        args: &types::SubmitArgs<'_, '_>,
    ) -> Result<(), EngineError> {
        self.sub.sq.sync();
        // Publish the CQ head we consumed so the kernel sees the free space.
        self.cq.sync();
        let want = if CompletionQueue::is_empty(&self.cq) {
            1
        } else {
            0
        };
        match self.sub.submitter.submit_with_args(want, args) {
            Ok(_) => {}
            Err(e) if common::ring::is_transient_enter_error(&e) => {}
            Err(source) => {
                return Err(EngineError::Io {
                    engine,
                    what: "io_uring_enter (wait)",
                    source,
                })
            }
        }
        self.sub.sq.sync();
        self.cq.sync();
        Ok(())
    }

    /// Counts CQ overflows (flushed by the next `io_uring_enter`, which the io-uring
    /// crate does with GETEVENTS whenever the flag is up) and CQEs the kernel dropped
    /// (each one recorded as an `EOVERFLOW` accept error: its connection can no longer
    /// be found) into `tally`, which knows the drops already accounted for.
    #[inline]
    fn account_overflow(&mut self, tally: &mut Tally, rec: &mut Recorder) {
        if self.sub.sq.cq_overflow() {
            tally.counters.cq_overflows += 1;
        }
        let dropped = self.cq.overflow();
        if dropped != tally.seen_dropped {
            let new = dropped.wrapping_sub(tally.seen_dropped);
            for _ in 0..new {
                rec.error(libc::EOVERFLOW);
            }
            tally.counters.cqes_dropped += u64::from(new);
            tally.seen_dropped = dropped;
        }
    }
}
