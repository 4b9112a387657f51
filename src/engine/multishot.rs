//! `multishot`: one io_uring multishot accept (5.19) that posts a CQE per connection.
//!
//! The kernel ends a multishot accept on an error or when it cannot post a CQE; a
//! CQE without `IORING_CQE_F_MORE` means "no longer armed", and the engine re-arms
//! and counts it (`Recorder::rearms`). Multishot accept takes no sockaddr buffer
//! (a shared one would be overwritten by every connection), so the peer comes from
//! one system call per fd: `getsockopt(SO_PEERNAME)`, which is `getpeername(2)`
//! without its connected-state check — getpeername fails with ENOTCONN once the
//! client reset the connection, which was 99% of connections with a closed-loop
//! client that closes with RST (see `peer::peer_of_accepted`). A burst can post many CQEs at once: the CQ is sized
//! 4096, overflows into the kernel's backlog are flushed and counted, and dropped
//! CQEs are recorded as errors. On stop the accept is cancelled and its final CQE
//! reaped before the ring is dropped (see `uring` for why that matters).

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::clock::mono_ns;
use io_uring::{cqueue, opcode, types, CompletionQueue, SubmissionQueue, Submitter};

use super::ring::{
    account_overflow, push, run_on_ring, wait, KeptRing, RingRun, RingSetup, RingSize, OP_ACCEPT,
    OP_CANCEL,
};
use super::{
    back_off, fatal_accept, on_accept_error, simulate_work, Acceptor, AfterError, EngineCounters,
    EngineError, EngineKind, EngineOptions, Limits,
};
use crate::listener::Listener;
use crate::peer;
use crate::record::Recorder;

/// SQ entries: one accept and one cancel are all we ever queue.
const SQ_ENTRIES: u32 = 256;
/// Fewest CQ entries: room for a burst of accept CQEs between two reaps.
const CQ_ENTRIES_MIN: u32 = 4096;

/// CQ entries for a listener whose queue holds `backlog + 1`: twice that, so a full
/// queue accepted in one go by the kernel never overflows the CQ (an overflow ends
/// the multishot accept and costs a flush and a re-arm — the C reference sizes its
/// CQ 16384 for a 4096 backlog).
fn cq_entries(backlog: u32) -> u32 {
    ((backlog.saturating_add(1)).saturating_mul(2))
        .next_power_of_two()
        .clamp(CQ_ENTRIES_MIN, 65536)
}

/// io_uring multishot accept, peer via `getpeername`.
pub struct MultishotAcceptor {
    accept_delay: Option<Duration>,
    counters: EngineCounters,
    /// Kept between runs, like the `uring` engine's ring.
    ring: KeptRing,
}

impl MultishotAcceptor {
    /// The engine with `opts` (`inflight` does not apply: one multishot accept).
    pub fn new(opts: &EngineOptions) -> Self {
        Self {
            accept_delay: opts.accept_delay,
            counters: EngineCounters::default(),
            ring: KeptRing::new(opts.ring_setup.unwrap_or(RingSetup::Default)),
        }
    }
}

impl Acceptor for MultishotAcceptor {
    fn kind(&self) -> EngineKind {
        EngineKind::Multishot
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
            EngineKind::Multishot,
            "clearing O_NONBLOCK on the listener",
        ))?;
        let mut run = MultishotRun {
            fd: listener.as_raw_fd(),
            ipv6: listener.local_addr.is_ipv6(),
            armed: false,
            accept_delay: self.accept_delay,
            counters: &mut self.counters,
            seen_dropped: 0,
        };
        // Multishot accept writes into no user memory, so dropping the ring is safe
        // even if the cancel gave up (the port would then stay busy a little longer).
        let size = RingSize {
            sq: SQ_ENTRIES,
            cq: cq_entries(listener.backlog_effective),
            files: 0,
        };
        let (result, stopped) = run_on_ring(
            &mut self.ring,
            EngineKind::Multishot,
            size,
            &mut run,
            limits,
            rec,
        )?;
        result.and(stopped)
    }

    fn counters(&self) -> EngineCounters {
        self.counters
    }

    fn ring_setup_applied(&self) -> Option<String> {
        self.ring.applied.clone()
    }
}

struct MultishotRun<'a> {
    fd: i32,
    /// The listener's family: accepted sockets have it too.
    ipv6: bool,
    armed: bool,
    accept_delay: Option<Duration>,
    counters: &'a mut EngineCounters,
    seen_dropped: u32,
}

/// What one accept CQE meant for the loop.
enum Outcome {
    Ok,
    Backoff,
    Fatal(i32),
}

impl RingRun for MultishotRun<'_> {
    fn accept_loop(
        &mut self,
        submitter: &Submitter<'_>,
        sq: &mut SubmissionQueue<'_>,
        cq: &mut CompletionQueue<'_>,
        limits: &Limits,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        MultishotRun::accept_loop(self, submitter, sq, cq, limits, rec)
    }

    const CANCELLING: &'static str = "cancelling the armed multishot accept";

    fn begin_stop(&mut self) {
        if self.armed {
            self.counters.cancels += 1;
        }
    }

    /// Connections posted before the accept's final CQE (no F_MORE) are recorded and
    /// closed, never lost.
    fn reap_stopping(
        &mut self,
        _submitter: &Submitter<'_>,
        sq: &mut SubmissionQueue<'_>,
        cq: &mut CompletionQueue<'_>,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        cq.sync();
        for cqe in &mut *cq {
            if cqe.user_data() == OP_ACCEPT {
                // Errors are counted; the loop is over either way.
                let _ = self.on_cqe(cqe.result(), cqe.flags(), rec);
            }
        }
        cq.sync();
        account_overflow(sq, cq, &mut self.seen_dropped, self.counters, rec);
        Ok(())
    }

    fn settled(&self) -> bool {
        !self.armed
    }

    fn push_cancels(
        &mut self,
        submitter: &Submitter<'_>,
        sq: &mut SubmissionQueue<'_>,
    ) -> Result<(), EngineError> {
        let sqe = opcode::AsyncCancel::new(OP_ACCEPT)
            .build()
            .user_data(OP_CANCEL);
        // SAFETY: a cancel carries no buffers, only the target's user_data.
        unsafe { push(EngineKind::Multishot, submitter, sq, &sqe) }
    }
}

impl MultishotRun<'_> {
    fn accept_loop(
        &mut self,
        submitter: &Submitter<'_>,
        sq: &mut SubmissionQueue<'_>,
        cq: &mut CompletionQueue<'_>,
        limits: &Limits,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        rec.mark_release();
        self.arm(submitter, sq)?;
        let ts = types::Timespec::from(Limits::POLL_INTERVAL);
        let args = types::SubmitArgs::new().timespec(&ts);
        while !limits.reached(rec.accepted) {
            wait(EngineKind::Multishot, submitter, sq, cq, &args)?;
            let mut backoff = false;
            let mut fatal = None;
            for cqe in &mut *cq {
                if cqe.user_data() != OP_ACCEPT {
                    continue;
                }
                match self.on_cqe(cqe.result(), cqe.flags(), rec) {
                    Outcome::Ok => {}
                    Outcome::Backoff => backoff = true,
                    Outcome::Fatal(errno) => {
                        fatal = Some(errno);
                        break;
                    }
                }
            }
            cq.sync();
            account_overflow(sq, cq, &mut self.seen_dropped, self.counters, rec);
            if let Some(errno) = fatal {
                return Err(fatal_accept(EngineKind::Multishot, errno));
            }
            if backoff {
                back_off(rec);
            }
            if !self.armed {
                rec.rearms += 1;
                self.arm(submitter, sq)?;
            }
        }
        Ok(())
    }

    /// Handles one accept CQE: a connection is recorded and closed; an error is
    /// counted; a CQE without F_MORE leaves the accept disarmed.
    #[inline]
    fn on_cqe(&mut self, res: i32, flags: u32, rec: &mut Recorder) -> Outcome {
        if !cqueue::more(flags) {
            self.armed = false;
        }
        if res >= 0 {
            let accepted_ns = mono_ns();
            match peer::peer_of_accepted(res, self.ipv6) {
                Ok(p) => rec.accepted(p, accepted_ns, mono_ns()),
                Err(e) => {
                    rec.error(e.raw_os_error().unwrap_or(libc::EAFNOSUPPORT));
                }
            }
            // SAFETY: `res` is the descriptor this accept created; nothing else owns it.
            unsafe { libc::close(res) };
            rec.close_done(mono_ns());
            simulate_work(self.accept_delay);
            return Outcome::Ok;
        }
        if res == -libc::ECANCELED {
            return Outcome::Ok;
        }
        match on_accept_error(rec, -res) {
            AfterError::Retry => Outcome::Ok,
            AfterError::Backoff => Outcome::Backoff,
            AfterError::Fatal => Outcome::Fatal(-res),
        }
    }

    fn arm(
        &mut self,
        submitter: &Submitter<'_>,
        sq: &mut SubmissionQueue<'_>,
    ) -> Result<(), EngineError> {
        let sqe = opcode::AcceptMulti::new(types::Fd(self.fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(OP_ACCEPT);
        // SAFETY: multishot accept passes no buffers; the listener fd is held by the
        // caller's `Listener` for the whole run, and the kernel holds its own reference.
        unsafe { push(EngineKind::Multishot, submitter, sq, &sqe)? };
        self.armed = true;
        Ok(())
    }
}
