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

use common::clock::mono_ns;
use io_uring::{cqueue, opcode, types};

use super::ring::{
    Reap, RingAcceptor, RingEngine, RingRun, RingSetup, RingSize, Submit, Tally, OP_ACCEPT,
};
use super::{on_accept_error, AfterError, EngineError, EngineKind, EngineOptions};
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
pub(super) fn cq_entries(backlog: u32) -> u32 {
    ((backlog.saturating_add(1)).saturating_mul(2))
        .next_power_of_two()
        .clamp(CQ_ENTRIES_MIN, 65536)
}

/// io_uring multishot accept, peer via `getsockopt(SO_PEERNAME)`.
pub type MultishotAcceptor = RingAcceptor<Multishot>;

impl MultishotAcceptor {
    /// The engine with `opts` (`inflight` does not apply: one multishot accept).
    pub fn new(opts: &EngineOptions) -> Self {
        RingAcceptor::with(
            Multishot {
                work: super::Work::of(opts),
            },
            opts.ring_setup.unwrap_or(RingSetup::Default),
        )
    }
}

/// `multishot`'s own part of the ring skeleton.
pub struct Multishot {
    work: super::Work,
}

impl RingEngine for Multishot {
    const KIND: EngineKind = EngineKind::Multishot;
    type Run = MultishotRun;

    /// Multishot accept writes into no user memory, so there is nothing to leak if a
    /// cancel gave up (the port would then stay busy a little longer).
    fn prepare(&mut self, listener: &Listener) -> (RingSize, MultishotRun) {
        let size = RingSize {
            sq: SQ_ENTRIES,
            cq: cq_entries(listener.backlog_effective),
            files: 0,
        };
        let run = MultishotRun {
            fd: listener.as_raw_fd(),
            ipv6: listener.local_addr.is_ipv6(),
            armed: false,
            work: self.work.clone(),
            tally: Tally::default(),
        };
        (size, run)
    }
}

/// State of one `multishot` run.
pub struct MultishotRun {
    fd: i32,
    /// The listener's family: accepted sockets have it too.
    ipv6: bool,
    armed: bool,
    work: super::Work,
    tally: Tally,
}

/// What one accept CQE meant for the loop.
enum Outcome {
    Ok,
    Backoff,
    Fatal(i32),
}

impl RingRun for MultishotRun {
    const CANCELLING: &'static str = "cancelling the armed multishot accept";

    fn arm(&mut self, sub: &mut Submit<'_, '_>) -> Result<(), EngineError> {
        let sqe = opcode::AcceptMulti::new(types::Fd(self.fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(OP_ACCEPT);
        // SAFETY: multishot accept passes no buffers; the listener fd is held by the
        // caller's `Listener` for the whole run, and the kernel holds its own reference.
        unsafe { sub.push(EngineKind::Multishot, &sqe)? };
        self.armed = true;
        Ok(())
    }

    /// Connections posted before the accept's final CQE (no F_MORE) are recorded and
    /// closed, never lost. A fatal errno leaves the rest of the queue to the stop.
    fn on_cqe(&mut self, cqe: &cqueue::Entry, cx: &mut Reap) -> Result<bool, EngineError> {
        if cqe.user_data() != OP_ACCEPT {
            return Ok(true);
        }
        Ok(match self.on_accept(cqe.result(), cqe.flags(), cx.rec) {
            Outcome::Ok => true,
            Outcome::Backoff => {
                cx.turn.backoff = true;
                true
            }
            Outcome::Fatal(errno) if !cx.stopping => {
                cx.turn.fatal = Some(errno);
                false
            }
            Outcome::Fatal(_) => true,
        })
    }

    fn armed(&self) -> bool {
        self.armed
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }
}

impl MultishotRun {
    /// Handles one accept CQE: a connection is recorded and closed; an error is
    /// counted; a CQE without F_MORE leaves the accept disarmed.
    #[inline]
    fn on_accept(&mut self, res: i32, flags: u32, rec: &mut Recorder) -> Outcome {
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
            self.work.after_connection(rec);
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
}
