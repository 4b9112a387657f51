//! `uring`: io_uring single-shot `IORING_OP_ACCEPT`, `inflight` of them armed at once.
//!
//! Each armed accept owns one slot (a `sockaddr_storage` and its `socklen_t`) in an
//! arena allocated once per run whose memory never moves; `user_data` carries the
//! operation kind and the slot index. A completion gives the fd and the peer in its
//! slot; the fd is closed with plain `close(2)` (as the C reference does) and the slot
//! re-armed. On stop every armed accept is cancelled and its final CQE reaped before
//! the ring is dropped — a ring dropped with an armed accept is torn down
//! asynchronously, keeps the listener alive and makes an immediate re-bind of the
//! port fail with EADDRINUSE.
//!
//! How each accept is armed is the plan dimension [`AcceptFlags`] (the 6.10 flags
//! `POLL_FIRST` and `DONTWAIT` in `sqe->ioprio`, and the `SOCK_NONEMPTY` hint on
//! completions choosing the next one). A `DONTWAIT` accept that finds the queue empty
//! completes with `EAGAIN`: not an error, counted ([`Recorder::accept_eagain`]) and
//! re-armed at once with `POLL_FIRST`, so every slot stays armed as with plain accepts.
//! Completions carrying `SOCK_NONEMPTY` are counted whatever the flags
//! ([`Recorder::sock_nonempty`]).
//!
//! The skeleton (set-up flags, the kept ring, the stop, wait, overflow accounting) is
//! `ring`'s, shared with the other ring engines; this file fills in how accepts are
//! armed and what each completion does.

use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use common::clock::mono_ns;
use io_uring::{cqueue, opcode, types};

use super::ring::{
    Reap, RingAcceptor, RingEngine, RingRun, RingSetup, RingSize, Submit, Tally, IDX_MASK,
    OP_ACCEPT, OP_CANCEL, OP_MASK,
};
use super::{on_accept_error, AcceptFlags, AfterError, EngineError, EngineKind, EngineOptions};
use crate::listener::Listener;
use crate::peer;
use crate::record::Recorder;

/// io_uring single-shot accept, several in flight.
pub type UringAcceptor = RingAcceptor<Uring>;

impl UringAcceptor {
    /// The engine with `opts` (`inflight` accepts armed at once, at least 1).
    pub fn new(opts: &EngineOptions) -> Self {
        RingAcceptor::with(
            Uring {
                inflight: opts.inflight.clamp(1, super::MAX_INFLIGHT),
                flags: opts.accept_flags,
                work: super::Work::of(opts),
            },
            opts.ring_setup.unwrap_or(RingSetup::Default),
        )
    }
}

/// `uring`'s own part of the ring skeleton: how many accepts it keeps armed.
pub struct Uring {
    inflight: usize,
    flags: AcceptFlags,
    work: super::Work,
}

impl RingEngine for Uring {
    const KIND: EngineKind = EngineKind::Uring;
    type Run = UringRun;

    fn prepare(&mut self, listener: &Listener) -> (RingSize, UringRun) {
        let n = self.inflight;
        // Every slot has at most one accept and one cancel in flight: 2n SQEs and CQEs
        // bound everything, so neither queue can overflow.
        let entries = (2 * n).next_power_of_two().max(64) as u32;
        let size = RingSize {
            sq: entries,
            cq: 2 * entries,
            files: 0,
        };
        let run = UringRun {
            fd: listener.as_raw_fd(),
            ipv6: listener.local_addr.is_ipv6(),
            slots: SlotArena::new(n),
            armed: vec![false; n],
            armed_count: 0,
            flags: self.flags,
            next: vec![self.flags.first(); n],
            idle: Vec::with_capacity(n),
            work: self.work.clone(),
            tally: Tally::default(),
        };
        (size, run)
    }
}

/// One accept's output buffers.
#[repr(C)]
struct Slot {
    addr: libc::sockaddr_storage,
    len: libc::socklen_t,
}

/// `n` slots in one heap allocation that is never moved or resized while accepts
/// are armed; reached only through raw pointers so the kernel's writes never alias
/// a Rust reference that is alive.
struct SlotArena {
    ptr: NonNull<Slot>,
    len: usize,
}

// SAFETY: the arena is plain memory owned by one engine run; it is only touched by
// the thread running it (and by the kernel on that thread's ring).
unsafe impl Send for SlotArena {}

impl SlotArena {
    fn new(n: usize) -> Self {
        let slots: Box<[Slot]> = (0..n)
            .map(|_| Slot {
                // SAFETY: sockaddr_storage is plain data; all-zero is valid.
                addr: unsafe { std::mem::zeroed() },
                len: 0,
            })
            .collect();
        let len = slots.len();
        let raw = Box::into_raw(slots) as *mut Slot;
        // Box::into_raw never returns null; dangling-but-aligned for n == 0.
        let ptr = NonNull::new(raw).unwrap_or(NonNull::dangling());
        Self { ptr, len }
    }

    /// Resets slot `i`'s length and returns the pointers an accept writes through.
    /// Only call while slot `i` is not armed.
    #[inline]
    fn arm_ptrs(&mut self, i: usize) -> (*mut libc::sockaddr, *mut libc::socklen_t) {
        assert!(i < self.len);
        // SAFETY: i < len, and the slot is not armed, so nothing else writes it now.
        unsafe {
            let slot = self.ptr.as_ptr().add(i);
            (*slot).len = peer::SOCKADDR_STORAGE_LEN;
            (
                std::ptr::addr_of_mut!((*slot).addr).cast(),
                std::ptr::addr_of_mut!((*slot).len),
            )
        }
    }

    /// The peer in slot `i`. Only call after slot `i`'s accept completed.
    #[inline]
    fn peer(&self, i: usize) -> Option<std::net::SocketAddr> {
        assert!(i < self.len);
        // SAFETY: i < len; the accept that wrote the slot has completed (its CQE was
        // reaped), so the kernel no longer writes it while we read.
        let slot = unsafe { &*self.ptr.as_ptr().add(i) };
        peer::sockaddr_to_socketaddr(&slot.addr, slot.len)
    }

    /// Gives the memory up for good (an accept might still be armed on it).
    fn leak(&mut self) {
        self.len = 0;
    }
}

impl Drop for SlotArena {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: ptr/len came from Box::into_raw of a Box<[Slot]> of this length, and
        // `run` only lets the arena drop once no accept is armed on it.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            )));
        }
    }
}

/// State of one `uring` run.
pub struct UringRun {
    fd: i32,
    /// The listener's family (for the per-fd peer lookup fallback).
    ipv6: bool,
    slots: SlotArena,
    armed: Vec<bool>,
    armed_count: usize,
    /// How accepts are armed.
    flags: AcceptFlags,
    /// Per slot: the `ioprio` accept flags of its armed (or next) accept.
    next: Vec<u16>,
    /// Slots whose accept failed with fd/memory exhaustion, re-armed after a back-off.
    idle: Vec<usize>,
    work: super::Work,
    tally: Tally,
}

impl RingRun for UringRun {
    const CANCELLING: &'static str = "cancelling the armed accepts";

    fn arm(&mut self, sub: &mut Submit<'_, '_>) -> Result<(), EngineError> {
        for i in 0..self.armed.len() {
            self.arm_slot(sub, i)?;
        }
        Ok(())
    }

    /// A completed slot is re-armed at once (not while stopping); one whose accept
    /// failed for lack of fds or memory waits for the back-off ([`RingRun::rearm`]).
    /// A fatal errno leaves the rest of the queue to the stop, which records it.
    fn on_cqe(&mut self, cqe: &cqueue::Entry, cx: &mut Reap) -> Result<bool, EngineError> {
        let ud = cqe.user_data();
        if ud & OP_MASK != OP_ACCEPT {
            return Ok(true);
        }
        let i = (ud & IDX_MASK) as usize;
        self.disarmed(i);
        let res = cqe.result();
        if res >= 0 {
            let nonempty = cqueue::sock_nonempty(cqe.flags());
            cx.rec.sock_nonempty += u64::from(nonempty);
            self.set_next(i, self.flags.after_connection(nonempty));
            self.on_connection(res, i, cx.rec);
        } else if res == -libc::EAGAIN && self.next_at(i) & common::ring::ACCEPT_DONTWAIT != 0 {
            // A DONTWAIT accept found the queue empty: wait for the next connection.
            cx.rec.accept_eagain += 1;
            self.set_next(i, self.flags.after_empty());
        } else if cx.stopping {
            if res != -libc::ECANCELED {
                cx.rec.error(-res);
            }
            return Ok(true);
        } else if res != -libc::ECANCELED {
            // ECANCELED is not ours (we cancel only when stopping): re-armed below.
            match on_accept_error(cx.rec, -res) {
                AfterError::Retry => {}
                AfterError::Backoff => {
                    self.idle.push(i);
                    cx.turn.backoff = true;
                    return Ok(true);
                }
                AfterError::Fatal => {
                    cx.turn.fatal = Some(-res);
                    return Ok(false);
                }
            }
        }
        if !cx.stopping {
            self.arm_slot(cx.sub, i)?;
        }
        Ok(true)
    }

    fn rearm(&mut self, sub: &mut Submit<'_, '_>, _rec: &mut Recorder) -> Result<(), EngineError> {
        while let Some(i) = self.idle.pop() {
            self.arm_slot(sub, i)?;
        }
        Ok(())
    }

    fn armed(&self) -> bool {
        self.armed_count > 0
    }

    fn push_cancels(&mut self, sub: &mut Submit<'_, '_>) -> Result<(), EngineError> {
        for i in 0..self.armed.len() {
            if self.armed[i] {
                let sqe = opcode::AsyncCancel::new(OP_ACCEPT | i as u64)
                    .build()
                    .user_data(OP_CANCEL | i as u64);
                // SAFETY: a cancel carries no buffers, only the target's user_data.
                unsafe { sub.push(EngineKind::Uring, &sqe)? };
            }
        }
        Ok(())
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }

    fn leak_buffers(&mut self) {
        self.slots.leak();
    }
}

impl UringRun {
    /// Records and closes accepted `fd` whose peer is in slot `i`.
    #[inline]
    fn on_connection(&mut self, fd: i32, i: usize, rec: &mut Recorder) {
        let accepted_ns = mono_ns();
        let decoded = match self.slots.peer(i) {
            Some(p) => Ok(p),
            None => peer::peer_of_accepted(fd, self.ipv6),
        };
        match decoded {
            Ok(p) => rec.accepted(p, accepted_ns, mono_ns()),
            Err(e) => {
                rec.error(e.raw_os_error().unwrap_or(libc::EAFNOSUPPORT));
            }
        }
        // SAFETY: `fd` is the descriptor this accept created; nothing else owns it.
        unsafe { libc::close(fd) };
        rec.close_done(mono_ns());
        self.work.after_connection(rec);
    }

    fn next_at(&self, i: usize) -> u16 {
        self.next.get(i).copied().unwrap_or(0)
    }

    fn set_next(&mut self, i: usize, flags: u16) {
        if let Some(n) = self.next.get_mut(i) {
            *n = flags;
        }
    }

    fn arm_slot(&mut self, sub: &mut Submit<'_, '_>, i: usize) -> Result<(), EngineError> {
        let (addr, len) = self.slots.arm_ptrs(i);
        let sqe = opcode::Accept::new(types::Fd(self.fd), addr, len)
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(OP_ACCEPT | i as u64);
        // The 6.10 flags (checked by `build` against the probe) go in `ioprio`.
        let sqe = match self.next_at(i) {
            0 => sqe,
            flags => common::ring::with_accept_flags(sqe, flags),
        };
        // SAFETY: the slot's buffers live in the arena, which is neither moved nor freed
        // until this accept's final CQE was reaped (`cancel_and_reap`), or leaked.
        unsafe { sub.push(EngineKind::Uring, &sqe)? };
        self.armed[i] = true;
        self.armed_count += 1;
        Ok(())
    }

    #[inline]
    fn disarmed(&mut self, i: usize) {
        if std::mem::replace(&mut self.armed[i], false) {
            self.armed_count -= 1;
        }
    }
}
