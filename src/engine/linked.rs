//! `uring-linked`: the whole "accept, read the peer, close" in the ring (Linux 6.7).
//!
//! One multishot accept (5.19) posts a CQE per connection; for each one the engine
//! queues an `IORING_OP_URING_CMD` `SOCKET_URING_OP_GETSOCKOPT(SOL_SOCKET,
//! SO_PEERNAME)` into a per-connection slot, linked (`IOSQE_IO_LINK`) to an
//! `IORING_OP_CLOSE` of the fd, and everything queued in a loop turn goes to the
//! kernel with the next wait: one `io_uring_enter` per turn, no per-connection system
//! call. The peer is held when the getsockopt's CQE arrives; that is when the
//! connection is recorded (accept CQE seen → peer decoded). `SO_PEERNAME` wants an
//! optlen no larger than the family's sockaddr (16 for IPv4, 28 for IPv6; more gives
//! EINVAL) and, unlike getpeername, works on a connection the client already reset.
//!
//! Since 6.19 the ring also has `SOCKET_URING_OP_GETSOCKNAME`, with its peer flag the
//! in-ring getpeername, the call programs use for this; [`PeerOp`] chooses (`auto`:
//! getsockname where the probe found it). It is getpeername in full: on a connection
//! the client already reset it fails with ENOTCONN, and the engine then reads the
//! peer as after any failed in-ring read (below), counted in `peer_op_errors`.
//!
//! With `direct` the accepts allocate direct descriptors (`IORING_FILE_INDEX_ALLOC`)
//! in a registered sparse table, the getsockopt runs on the fixed file and the close
//! is `close_direct`: no fd table entry at all. The kernel takes a connection off the
//! accept queue *before* it looks for a free table entry, and when it finds none it
//! fails the accept with ENFILE and closes that connection (seen on 6.18): unlike an
//! fd-table EMFILE, which fails before dequeuing, a full direct table destroys a
//! connection the client believes established. So with `direct` the engine never asks
//! for more than the table can hold: it arms single-shot accepts, each taking exactly
//! one connection, no more of them than free entries (table entries − descriptors
//! held − accepts armed) and at most [`DIRECT_ARMED_MAX`], and arms more as closes
//! free entries. A small table slows
//! the acceptor (connections wait in the accept queue) but loses nothing. It does not
//! use a multishot accept here: between two reaps one takes as many connections as
//! the CQ has room for (6.0+; on 5.19 its CQEs may even overflow, unbounded), more
//! than a table within `RLIMIT_NOFILE` can promise to hold. Should an accept still
//! fail with ENFILE (nothing else allocates in the table, so it should not), the
//! connection it destroyed is counted as lost ([`Recorder::lost`]) besides the ENFILE
//! error. The table is sized so that a full
//! accept queue fits.
//!
//! A slot is reused only after both CQEs (getsockopt and close) arrived. A failed
//! getsockopt cancels its linked close (-ECANCELED): the peer is then read with a
//! system call (not possible on a direct descriptor: counted as an error) and the fd
//! closed with close(2) (a direct one with a new in-ring close). With every slot busy
//! a connection's peer is read with a system call (without `direct`) or it waits for a
//! slot (with `direct`); it is never lost. The ring is set up `defer` by default
//! (`SINGLE_ISSUER|DEFER_TASKRUN`, 6.1), falling back when refused.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;

use common::clock::mono_ns;
use io_uring::{cqueue, opcode, squeue, types};

use super::peer_slots::PeerSlots;
use super::ring::{
    Reap, RingAcceptor, RingEngine, RingRun, RingSetup, RingSize, Submit, Tally, IDX_MASK,
    OP_ACCEPT, OP_CANCEL, OP_CLOSE, OP_MASK, OP_PEER,
};
use super::{on_accept_error, AfterError, EngineError, EngineKind, EngineOptions, PeerOp};
use crate::listener::Listener;
use crate::peer;
use crate::record::Recorder;
use crate::sockcmd::{getsockname_sqe, getsockopt_sqe, SockTarget};

const ENGINE: EngineKind = EngineKind::UringLinked;

/// Most single-shot accepts `direct` keeps armed at once (fewer when the table has fewer
/// free entries). Arming one per free entry of a default table (thousands) cost 3.9×
/// std's CPU per accept in drain and 5.5× in closed loop; 64 costs what the multishot
/// accept did before (about 1.2× and 1.1×; `sweep --engines std,uring-linked --direct
/// --modes drain,closed --backlogs 4096 --repeat 6`, 6.18, medians of per-round ratios).
const DIRECT_ARMED_MAX: u32 = 64;

/// Slots (and direct-table entries) for a listener with `backlog`: a full accept queue
/// (backlog+1 entries) always fits.
fn slot_count(backlog: u32) -> u32 {
    (backlog.saturating_add(1))
        .checked_next_power_of_two()
        .unwrap_or(65536)
        .clamp(64, 65536)
}

/// SQ and CQ entries for `n` slots. Per connection: one accept CQE, then one
/// getsockopt and one close (2 SQEs, 2 CQEs); n slots bound what is in flight.
/// Overflow is still handled.
fn ring_entries(n: u32) -> (u32, u32) {
    let sq = (2 * n).clamp(256, 4096);
    (sq, (4 * n).clamp(2 * sq, 65536))
}

/// CQ entries of the ring a listener with `backlog` gets.
pub(super) fn cq_entries(backlog: u32) -> u32 {
    ring_entries(slot_count(backlog)).1
}

/// The direct-descriptor table of a listener with `backlog`: `files` entries if given,
/// else enough for a full accept queue ([`slot_count`]) — within `RLIMIT_NOFILE`, which
/// is the kernel's cap on a registered file table (a larger one fails with EMFILE).
/// Returns the entries and, when the limit made the table smaller than asked, the limit.
pub fn direct_table(backlog: u32, files: Option<u32>) -> (u32, Option<u64>) {
    let want = files.unwrap_or_else(|| slot_count(backlog));
    let limit = crate::kernel::rlimit_nofile().0;
    if u64::from(want) > limit {
        (limit.max(1) as u32, Some(limit))
    } else {
        (want, None)
    }
}

/// What a user should know before `uring-linked --direct` runs on a listener with
/// `backlog`: the table it gets when RLIMIT_NOFILE caps it below a full accept queue
/// (it then works within the table: never more accepts armed than free entries, the
/// rest of the queue waiting for closes). None when the table holds the whole queue.
pub fn direct_table_note(opts: &EngineOptions, backlog: u32) -> Option<String> {
    if !opts.direct {
        return None;
    }
    let (entries, capped) = direct_table(backlog, opts.direct_files);
    let limit = capped?;
    (u64::from(entries) < u64::from(backlog) + 1).then(|| {
        format!(
            "--direct: the direct descriptor table has {entries} entries, fewer than a full accept queue ({} connections at backlog {backlog}), because the kernel caps a registered table at RLIMIT_NOFILE ({limit}); the engine keeps no more accepts armed than free entries, so at most {entries} connections are held at once and the rest wait in the accept queue until closes free entries (slower, nothing lost). Raise the limit (ulimit -n {}) or drop --direct",
            u64::from(backlog) + 1,
            slot_count(backlog)
        )
    })
}

/// Multishot accept + in-ring getsockopt(SO_PEERNAME) linked to close.
pub type UringLinkedAcceptor = RingAcceptor<Linked>;

impl UringLinkedAcceptor {
    /// The engine with `opts` (`ring_setup` defaults to `defer`).
    pub fn new(opts: &EngineOptions) -> Self {
        RingAcceptor::with(
            Linked {
                work: super::Work::of(opts),
                direct: opts.direct,
                direct_files: opts.direct_files.map(|n| n.clamp(1, 65536)),
                peer_op: opts
                    .peer_op
                    .resolve(crate::kernel::probe::probe_uring_cached()),
                #[cfg(test)]
                force_slots: None,
                #[cfg(test)]
                force_optlen: None,
            },
            opts.ring_setup.unwrap_or(RingSetup::Defer),
        )
    }
}

/// `uring-linked`'s own part of the ring skeleton.
pub struct Linked {
    work: super::Work,
    direct: bool,
    pub(super) direct_files: Option<u32>,
    /// The in-ring peer read, resolved (never `auto`).
    peer_op: PeerOp,
    /// Tests: slots per run instead of the backlog-derived count.
    #[cfg(test)]
    pub(super) force_slots: Option<u32>,
    /// Tests: the getsockopt's optlen (a too-long one makes the kernel fail it: EINVAL).
    #[cfg(test)]
    pub(super) force_optlen: Option<u32>,
}

impl RingEngine for Linked {
    const KIND: EngineKind = ENGINE;
    type Run = LinkedRun;

    fn prepare(&mut self, listener: &Listener) -> (RingSize, LinkedRun) {
        let n = slot_count(listener.backlog_effective);
        #[cfg(test)]
        let n = self.force_slots.unwrap_or(n);
        let files = if self.direct {
            direct_table(listener.backlog_effective, self.direct_files).0
        } else {
            0
        };
        let (sq, cq) = ring_entries(n);
        let size = RingSize { sq, cq, files };
        let ipv6 = listener.local_addr.is_ipv6();
        #[allow(unused_mut)]
        let mut run = LinkedRun {
            fd: listener.as_raw_fd(),
            ipv6,
            direct: self.direct,
            peer_op: self.peer_op,
            optlen: if ipv6 {
                std::mem::size_of::<libc::sockaddr_in6>()
            } else {
                std::mem::size_of::<libc::sockaddr_in>()
            } as u32,
            slots: PeerSlots::new(n as usize),
            waiting: VecDeque::new(),
            table: files,
            held: 0,
            armed_one: 0,
            armed: false,
            backoff: false,
            fatal: None,
            work: self.work.clone(),
            tally: Tally::default(),
        };
        #[cfg(test)]
        if let Some(len) = self.force_optlen {
            run.optlen = len;
        }
        (size, run)
    }
}

/// State of one `uring-linked` run.
pub struct LinkedRun {
    fd: i32,
    ipv6: bool,
    direct: bool,
    /// The in-ring peer read (getsockname or getsockopt).
    peer_op: PeerOp,
    /// SO_PEERNAME's optlen: the family's sockaddr size.
    optlen: u32,
    slots: PeerSlots,
    /// Direct descriptors accepted while every slot was busy: (index, accepted_ns).
    waiting: VecDeque<(i32, u64)>,
    /// Direct-descriptor table entries (0 without `direct`).
    table: u32,
    /// Direct descriptors the kernel installed for us whose close has not completed:
    /// entries in use.
    held: u32,
    /// Single-shot accepts armed (`direct` only), each of which may take one entry.
    armed_one: u32,
    /// The multishot accept is armed (without `direct`).
    armed: bool,
    /// An accept failed for lack of fds/table entries/memory: sleep before re-arming.
    backoff: bool,
    fatal: Option<i32>,
    work: super::Work,
    tally: Tally,
}

impl RingRun for LinkedRun {
    const CANCELLING: &'static str =
        "cancelling the armed accepts and reaping their peer reads and closes";

    fn arm(&mut self, sub: &mut Submit<'_, '_>) -> Result<(), EngineError> {
        if self.direct {
            return self.arm_direct(sub);
        }
        let sqe = opcode::AcceptMulti::new(types::Fd(self.fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(OP_ACCEPT);
        // SAFETY: multishot accept passes no buffers; the listener fd is held by the
        // caller's `Listener` for the whole run, and the kernel holds its own reference.
        unsafe { sub.push(ENGINE, &sqe)? };
        self.armed = true;
        Ok(())
    }

    /// Handles every CQE in the queue and starts the peer reads of connections that
    /// waited for a slot. Connections accepted while stopping are recorded and closed,
    /// never lost; every getsockopt and close in flight is reaped.
    fn on_cqe(&mut self, cqe: &cqueue::Entry, cx: &mut Reap) -> Result<bool, EngineError> {
        let ud = cqe.user_data();
        let i = (ud & IDX_MASK) as u32;
        match ud & OP_MASK {
            OP_ACCEPT => self.on_accept(cqe.result(), cqe.flags(), cx.sub, cx.rec)?,
            OP_PEER => self.on_peer(i, cqe.result(), cx.sub, cx.rec)?,
            OP_CLOSE => self.on_close(i, cqe.result(), cx.sub, cx.rec)?,
            _ => {}
        }
        Ok(true)
    }

    /// Starts the peer reads of connections that waited for a slot; hands the turn
    /// what the accepts asked for.
    fn after_reap(&mut self, cx: &mut Reap) -> Result<(), EngineError> {
        while self.slots.busy() < self.slots.state.len() {
            let Some((idx, accepted_ns)) = self.waiting.pop_front() else {
                break;
            };
            self.start_peer(idx, accepted_ns, cx.sub, cx.rec)?;
        }
        cx.turn.backoff |= std::mem::take(&mut self.backoff);
        cx.turn.fatal = cx.turn.fatal.or(self.fatal.take());
        Ok(())
    }

    /// With `direct`: as many single-shot accepts as entries are free (never counted as
    /// re-arms: each ends with its connection by design). Else the multishot accept.
    fn rearm(&mut self, sub: &mut Submit<'_, '_>, rec: &mut Recorder) -> Result<(), EngineError> {
        if self.direct {
            return self.arm_direct(sub);
        }
        if !self.armed {
            rec.rearms += 1;
            self.arm(sub)?;
        }
        Ok(())
    }

    fn armed(&self) -> bool {
        self.armed || self.armed_one > 0
    }

    /// Cancels every armed accept: the multishot one, or all single-shot ones at once
    /// (`IORING_ASYNC_CANCEL_ALL` on their shared `user_data`, 5.19 like `direct`).
    fn push_cancels(&mut self, sub: &mut Submit<'_, '_>) -> Result<(), EngineError> {
        if !self.armed() {
            return Ok(());
        }
        let sqe = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(OP_ACCEPT).all())
            .build()
            .user_data(OP_CANCEL);
        // SAFETY: a cancel carries no buffers, only the match criteria.
        unsafe { sub.push(ENGINE, &sqe) }
    }

    fn work_pending(&self) -> bool {
        self.slots.busy() > 0 || !self.waiting.is_empty()
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }

    /// A getsockopt the stop could not wait for may still write into its slot.
    fn leak_buffers(&mut self) {
        self.slots.leak();
    }
}

impl LinkedRun {
    /// Arms single-shot accepts into direct descriptors, one per table entry that is
    /// neither held nor promised to an armed accept, at most [`DIRECT_ARMED_MAX`]: the
    /// kernel is never asked to accept a connection it could not install (and would
    /// destroy).
    fn arm_direct(&mut self, sub: &mut Submit<'_, '_>) -> Result<(), EngineError> {
        let free = self
            .table
            .saturating_sub(self.held)
            .saturating_sub(self.armed_one);
        let cap = (self.slots.state.len() as u32).min(DIRECT_ARMED_MAX);
        let room = cap.saturating_sub(self.armed_one);
        for _ in 0..free.min(room) {
            // The kernel refuses SOCK_CLOEXEC on a direct accept (there is no fd to
            // mark); the peer is read in the ring, so no sockaddr buffer is passed.
            let sqe = opcode::Accept::new(
                types::Fd(self.fd),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
            .file_index(Some(types::DestinationSlot::auto_target()))
            .build()
            .user_data(OP_ACCEPT);
            // SAFETY: the accept passes no buffers (null address and length); the
            // listener fd is held by the caller's `Listener` for the whole run.
            unsafe { sub.push(ENGINE, &sqe)? };
            self.armed_one += 1;
        }
        Ok(())
    }

    fn on_accept(
        &mut self,
        res: i32,
        flags: u32,
        sub: &mut Submit<'_, '_>,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        if self.direct {
            self.armed_one = self.armed_one.saturating_sub(1);
        } else if !cqueue::more(flags) {
            self.armed = false;
        }
        if res >= 0 {
            if self.direct {
                self.held += 1;
            }
            self.start_peer(res, mono_ns(), sub, rec)?;
            self.work.after_connection(rec);
        } else if res != -libc::ECANCELED {
            if self.direct && res == -libc::ENFILE {
                // The kernel dequeued a connection, found no free entry and closed it.
                rec.lost += 1;
            }
            match on_accept_error(rec, -res) {
                AfterError::Retry => {}
                AfterError::Backoff => self.backoff = true,
                AfterError::Fatal => self.fatal = Some(-res),
            }
        }
        Ok(())
    }

    /// Queues the peer read (getsockname(peer) or getsockopt(SO_PEERNAME)) of accepted
    /// `file`, linked to its close.
    fn start_peer(
        &mut self,
        file: i32,
        accepted_ns: u64,
        sub: &mut Submit<'_, '_>,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let Some((i, optval, addrlen)) = self.slots.take(file, accepted_ns) else {
            self.tally.counters.peer_syscall_fallbacks += 1;
            if self.direct {
                // No system call can reach a direct descriptor: wait for a slot.
                self.waiting.push_back((file, accepted_ns));
            } else {
                self.peer_by_syscall(file, accepted_ns, rec);
                // SAFETY: `file` is the descriptor this accept created; nothing else owns it.
                unsafe { libc::close(file) };
                rec.close_done(mono_ns());
            }
            return Ok(());
        };
        let (target, close) = if self.direct {
            let idx = file as u32;
            (
                SockTarget::Fixed(idx),
                opcode::Close::new(types::Fixed(idx)),
            )
        } else {
            (SockTarget::Fd(file), opcode::Close::new(types::Fd(file)))
        };
        let get = if self.peer_op == PeerOp::Getsockname {
            getsockname_sqe(target, true, optval, addrlen)
        } else {
            let level = libc::SOL_SOCKET as u32;
            getsockopt_sqe(target, level, libc::SO_PEERNAME as u32, optval, self.optlen)
        };
        let get = get
            .flags(squeue::Flags::IO_LINK)
            .user_data(OP_PEER | u64::from(i));
        let close = close.build().user_data(OP_CLOSE | u64::from(i));
        // SAFETY: optval is slot i's buffer (optlen, and the length `take` wrote at
        // addrlen, ≤ sizeof(sockaddr_storage)) and addrlen slot i's length, both in the
        // arena, which is neither moved nor freed while an operation is in flight: the
        // slot is reused only after this peer read's and this close's CQEs were reaped,
        // the arena is dropped only after `cancel_and_reap` saw every slot free, and it
        // is leaked if that gave up. The close carries no buffer.
        unsafe { sub.push_all(ENGINE, &[get, close]) }
    }

    fn peer_by_syscall(&mut self, fd: i32, accepted_ns: u64, rec: &mut Recorder) {
        match peer::peer_of_accepted(fd, self.ipv6) {
            Ok(p) => rec.accepted(p, accepted_ns, mono_ns()),
            Err(e) => {
                rec.error(e.raw_os_error().unwrap_or(libc::EAFNOSUPPORT));
            }
        }
    }

    fn on_peer(
        &mut self,
        i: u32,
        res: i32,
        sub: &mut Submit<'_, '_>,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let Some(st) = self.slots.state.get_mut(i as usize) else {
            return Ok(());
        };
        st.peer_pending = false;
        let (file, accepted_ns) = (st.file, st.accepted_ns);
        if res >= 0 {
            // getsockopt's result is the length it wrote; getsockname's is 0, with the
            // length written back into the slot's.
            let peer = if self.peer_op == PeerOp::Getsockname {
                self.slots.peer_named(i)
            } else {
                self.slots.peer(i, res as u32)
            };
            match peer {
                Some(p) => rec.accepted(p, accepted_ns, mono_ns()),
                None => {
                    // The close already ran (or runs): the fd cannot be asked again.
                    self.tally.counters.peer_op_errors += 1;
                    rec.error(libc::EAFNOSUPPORT);
                }
            }
        } else {
            // A failed getsockopt cancelled its linked close: the fd is still open.
            self.tally.counters.peer_op_errors += 1;
            if self.direct {
                rec.error(-res);
            } else {
                self.peer_by_syscall(file, accepted_ns, rec);
            }
        }
        if self.slots.state[i as usize].close_needed {
            self.close_now(i, sub, rec)?;
        }
        self.slots.release_if_done(i);
        Ok(())
    }

    fn on_close(
        &mut self,
        i: u32,
        res: i32,
        sub: &mut Submit<'_, '_>,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let Some(st) = self.slots.state.get_mut(i as usize) else {
            return Ok(());
        };
        st.close_pending = false;
        if res == -libc::ECANCELED {
            // Its getsockopt failed: close once the peer was read by other means.
            st.close_needed = true;
            if !st.peer_pending {
                self.close_now(i, sub, rec)?;
            }
        } else {
            // The close ran (a failed one too: the kernel drops the descriptor either way).
            if res < 0 {
                self.tally.counters.close_errors += 1;
            }
            if self.direct {
                self.held = self.held.saturating_sub(1);
            }
            rec.close_done(mono_ns());
        }
        self.slots.release_if_done(i);
        Ok(())
    }

    /// Closes slot `i`'s connection outside the cancelled link: close(2), or an in-ring
    /// close for a direct descriptor (its CQE frees the slot).
    fn close_now(
        &mut self,
        i: u32,
        sub: &mut Submit<'_, '_>,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let st = &mut self.slots.state[i as usize];
        st.close_needed = false;
        if self.direct {
            st.close_pending = true;
            let sqe = opcode::Close::new(types::Fixed(st.file as u32))
                .build()
                .user_data(OP_CLOSE | u64::from(i));
            // SAFETY: a close carries no buffers.
            unsafe { sub.push(ENGINE, &sqe) }
        } else {
            // SAFETY: the fd is this connection's, its in-ring close was cancelled, and
            // nothing else owns it.
            unsafe { libc::close(st.file) };
            rec.close_done(mono_ns());
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "linked_tests.rs"]
mod linked_tests;

#[cfg(test)]
mod tests {
    use super::slot_count;

    #[test]
    fn slots_hold_a_full_accept_queue() {
        assert_eq!(slot_count(1), 64);
        assert_eq!(slot_count(128), 256);
        assert_eq!(slot_count(4095), 4096);
        assert_eq!(slot_count(4096), 8192);
        assert_eq!(slot_count(u32::MAX), 65536);
    }
}
