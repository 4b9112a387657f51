//! io_uring connects: IORING_OP_CONNECT (and IORING_OP_RECV for --wait-close), many in
//! flight per thread, submitted in batches with one io_uring_enter per loop turn, on a
//! ring set up with `--ring-setup` (default/coop/defer, falling back where refused).
//!
//! `--socket-ops ring` keeps the rest of the socket's life in the ring too:
//! IORING_OP_SOCKET (5.19) makes it, SO_LINGER {1,0} is set by a uring_cmd
//! `SOCKET_URING_OP_SETSOCKOPT` (6.7) linked ahead of the connect, and the close is an
//! IORING_OP_CLOSE — hard-linked behind the connect when nothing needs the socket
//! after it (no records, no wait-close, not a burst), else queued when the worker is
//! done with it. The setsockopt asks for no CQE on success (`IOSQE_CQE_SKIP_SUCCESS`,
//! 5.17); a failed one's CQE is reported (Op::SockOpt) ahead of its connect's
//! -ECANCELED. Closes do post CQEs, and the driver waits for every one before its ring
//! goes: a DEFER_TASKRUN ring runs a linked close only when asked for completions, and
//! tearing the ring down cancels it, leaving the descriptor open.
//!
//! `user_data` = token << 3 | tag: connect, read, cancel (its completion is ignored:
//! the cancelled operation's own completion, -ECANCELED, is what matters), socket,
//! setsockopt, close. Needs Linux 5.11 (IORING_FEAT_EXT_ARG for timed waits); connect
//! itself is 5.5.

use std::os::fd::RawFd;

use common::ring::RingSetup;
use common::sockcmd::{setsockopt_sqe, SockTarget};
use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::{ns_until, Completion, Driver, Op};
use crate::config::SocketOps;
use crate::error::LoadgenError;

const TAG_CONNECT: u64 = 0;
const TAG_READ: u64 = 1;
const TAG_CANCEL: u64 = 2;
const TAG_SOCKET: u64 = 3;
const TAG_SOCKOPT: u64 = 4;
const TAG_CLOSE: u64 = 5;
const TAG_BITS: u32 = 3;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// IORING_ENTER_GETEVENTS: a DEFER_TASKRUN ring runs completions only when asked.
const ENTER_GETEVENTS: u32 = 1;

/// How the driver's ring is set up and what it does in the ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingChoice {
    /// The set-up flags asked for.
    pub setup: RingSetup,
    /// Socket, SO_LINGER and close by system call or in the ring.
    pub socket_ops: SocketOps,
    /// The sockets need SO_LINGER {1,0} (RST close).
    pub linger0: bool,
}

pub(crate) struct UringDriver {
    ring: IoUring,
    /// Boxed so its address is stable for the ring's lifetime (the kernel copies it at
    /// submission, but it must be valid until then).
    target: Box<crate::sock::RawAddr>,
    /// Discard buffer for wait-close reads; contents are never looked at. Leaked on drop
    /// if reads are still in flight (see Drop).
    scratch: Box<[u8; 256]>,
    /// Operations submitted (or queued) whose completion has not been reaped.
    in_flight: usize,
    /// IORING_OP_CLOSEs queued whose completion has not been reaped.
    closes_pending: usize,
    /// Operations that could not be queued, reported as completions at the next wait.
    errors: Vec<Completion>,
    /// The ring's set-up as applied (e.g. "defer"), with any fallback's reason.
    applied: String,
    /// A DEFER_TASKRUN ring: every enter asks for completions (GETEVENTS).
    defer: bool,
    /// Sockets are made, set up and closed in the ring.
    ring_ops: bool,
    linger0: bool,
}

impl UringDriver {
    /// Sets up a ring for `slots` operations in flight; errors say why io_uring cannot be used.
    pub fn new(
        target: crate::sock::RawAddr,
        slots: usize,
        wait_close: bool,
        choice: RingChoice,
    ) -> Result<Self, String> {
        let ring_ops = choice.socket_ops == SocketOps::Ring;
        // Per slot and loop turn at most: setsockopt + connect + close (ring ops), or an
        // operation and its cancel.
        let per_slot = if ring_ops { 3 } else { 2 };
        let sq = (slots.max(1) as u32 * per_slot)
            .next_power_of_two()
            .clamp(8, 4096);
        // Every slot can have an operation and a cancel in flight (failed setsockopt
        // and close CQEs too, with ring ops).
        let cq = ((slots.max(1) as u32) * (per_slot + 1) + 16)
            .next_power_of_two()
            .clamp(2 * sq, 65536);
        let (ring, applied) = common::ring::setup(choice.setup, sq, cq)
            .map_err(|e| format!("io_uring_setup failed ({e}); kernel.io_uring_disabled or a seccomp filter may forbid it"))?;
        let defer = applied.starts_with(RingSetup::Defer.name());
        if !ring.params().is_feature_ext_arg() {
            return Err("io_uring lacks IORING_FEAT_EXT_ARG (needs Linux 5.11)".into());
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| format!("io_uring probe failed: {e}"))?;
        let mut needed = vec![
            (opcode::Connect::CODE, "IORING_OP_CONNECT (Linux 5.5)"),
            (
                opcode::AsyncCancel::CODE,
                "IORING_OP_ASYNC_CANCEL (Linux 5.5)",
            ),
        ];
        if wait_close {
            needed.push((opcode::Recv::CODE, "IORING_OP_RECV (Linux 5.6)"));
        }
        if ring_ops {
            needed.push((opcode::Socket::CODE, "IORING_OP_SOCKET (Linux 5.19)"));
            needed.push((opcode::Close::CODE, "IORING_OP_CLOSE (Linux 5.6)"));
            if choice.linger0 {
                needed.push((
                    opcode::UringCmd16::CODE,
                    "IORING_OP_URING_CMD (Linux 5.19; socket commands 6.7)",
                ));
            }
            if !ring.params().is_feature_skip_cqe_on_success() {
                return Err("io_uring lacks IOSQE_CQE_SKIP_SUCCESS (needs Linux 5.17)".into());
            }
        }
        for (code, name) in needed {
            if !probe.is_supported(code) {
                return Err(format!("io_uring does not support {name}"));
            }
        }
        let mut d = UringDriver {
            ring,
            target: Box::new(target),
            scratch: Box::new([0u8; 256]),
            in_flight: 0,
            closes_pending: 0,
            errors: Vec::new(),
            applied,
            defer,
            ring_ops,
            linger0: choice.linger0,
        };
        if ring_ops && choice.linger0 {
            d.check_setsockopt()?;
        }
        Ok(d)
    }

    /// What the ring's set-up applied, e.g. "defer" or "default (coop refused: …)".
    pub fn ring_setup_applied(&self) -> &str {
        &self.applied
    }

    /// Runs one in-ring SO_LINGER on a throwaway socket: the opcode probe cannot tell
    /// whether uring_cmd knows socket commands (6.7).
    fn check_setsockopt(&mut self) -> Result<(), String> {
        // SAFETY: plain system call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(format!("socket(): {}", std::io::Error::last_os_error()));
        }
        let e = linger_sqe(fd).user_data(TAG_SOCKOPT);
        // SAFETY: the entry points only at the static LINGER0.
        let pushed = unsafe { self.ring.submission().push(&e) }.is_ok();
        let result = if pushed {
            self.ring.submit_and_wait(1).ok();
            self.ring.completion().next().map(|c| c.result())
        } else {
            None
        };
        crate::sock::close(fd);
        match result {
            Some(0) => Ok(()),
            Some(r) => Err(format!(
                "io_uring cannot set socket options (uring_cmd SOCKET_URING_OP_SETSOCKOPT: {}); it needs Linux 6.7",
                std::io::Error::from_raw_os_error(-r)
            )),
            None => Err("io_uring: the SO_LINGER check got no completion".into()),
        }
    }

    /// Queues one SQE, submitting first if the queue is full.
    fn push(&mut self, entry: squeue::Entry) -> Result<(), i32> {
        self.push_all(&[entry])
    }

    /// Queues SQEs as one piece (a link chain is never split), submitting first if the
    /// queue is full.
    fn push_all(&mut self, entries: &[squeue::Entry]) -> Result<(), i32> {
        for _ in 0..64 {
            // SAFETY: every entry pushed here points only at memory owned by self (target,
            // scratch) or at the static LINGER0, which stays alive until the completion is
            // reaped or is leaked in Drop.
            let pushed = unsafe { self.ring.submission().push_multiple(entries) };
            if pushed.is_ok() {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if common::ring::is_transient_enter_error(&e) => {
                    // CQ backlog: completions must be reaped before more can be submitted.
                    return Err(libc::EBUSY);
                }
                Err(e) => return Err(e.raw_os_error().unwrap_or(libc::EIO)),
            }
        }
        Err(libc::EBUSY)
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        for cqe in self.ring.completion() {
            let ud = cqe.user_data();
            let op = match ud & TAG_MASK {
                TAG_CONNECT => Op::Connect,
                TAG_READ => Op::Read,
                TAG_SOCKET => Op::Socket,
                // Only failures of these post a CQE (SKIP_SUCCESS), and none was counted.
                TAG_SOCKOPT => {
                    out.push(Completion {
                        token: ud >> TAG_BITS,
                        op: Op::SockOpt,
                        result: cqe.result(),
                    });
                    continue;
                }
                TAG_CLOSE => {
                    self.closes_pending = self.closes_pending.saturating_sub(1);
                    continue;
                }
                _ => {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    continue;
                }
            };
            self.in_flight = self.in_flight.saturating_sub(1);
            out.push(Completion {
                token: ud >> TAG_BITS,
                op,
                result: cqe.result(),
            });
        }
    }
}

impl Driver for UringDriver {
    fn start_connect(&mut self, token: u64, fd: RawFd) {
        let entry = opcode::Connect::new(types::Fd(fd), self.target.as_ptr(), self.target.len)
            .build()
            .user_data(token << TAG_BITS | TAG_CONNECT);
        match self.push(entry) {
            Ok(()) => self.in_flight += 1,
            // Reported at the next wait as this connect's outcome (EBUSY: no room in the ring).
            Err(e) => self.deferred_error(token, Op::Connect, e),
        }
    }

    fn start_read(&mut self, token: u64, fd: RawFd) {
        let entry = opcode::Recv::new(
            types::Fd(fd),
            self.scratch.as_mut_ptr(),
            self.scratch.len() as u32,
        )
        .build()
        .user_data(token << TAG_BITS | TAG_READ);
        match self.push(entry) {
            Ok(()) => self.in_flight += 1,
            Err(e) => self.deferred_error(token, Op::Read, e),
        }
    }

    fn start_socket(&mut self, token: u64, family: libc::c_int) {
        let entry = opcode::Socket::new(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
            .build()
            .user_data(token << TAG_BITS | TAG_SOCKET);
        match self.push(entry) {
            Ok(()) => self.in_flight += 1,
            Err(e) => self.deferred_error(token, Op::Socket, e),
        }
    }

    fn start_connect_in_ring(&mut self, token: u64, fd: RawFd, close_after: bool) {
        let nop = opcode::Nop::new().build();
        let mut chain = [nop.clone(), nop.clone(), nop];
        let mut n = 0;
        if self.linger0 {
            chain[n] = linger_sqe(fd)
                .flags(squeue::Flags::IO_LINK | squeue::Flags::SKIP_SUCCESS)
                .user_data(token << TAG_BITS | TAG_SOCKOPT);
            n += 1;
        }
        let mut connect =
            opcode::Connect::new(types::Fd(fd), self.target.as_ptr(), self.target.len)
                .build()
                .user_data(token << TAG_BITS | TAG_CONNECT);
        if close_after {
            // A hard link: the close runs whatever the connect's outcome.
            connect = connect.flags(squeue::Flags::IO_HARDLINK);
        }
        chain[n] = connect;
        n += 1;
        if close_after {
            chain[n] = opcode::Close::new(types::Fd(fd))
                .build()
                .user_data(token << TAG_BITS | TAG_CLOSE);
            n += 1;
        }
        match self.push_all(&chain[..n]) {
            Ok(()) => {
                self.in_flight += 1;
                self.closes_pending += usize::from(close_after);
            }
            Err(e) => {
                if close_after {
                    // The ring will not close it: do it here.
                    crate::sock::close(fd);
                }
                self.deferred_error(token, Op::Connect, e)
            }
        }
    }

    fn close(&mut self, fd: RawFd) {
        if !self.ring_ops {
            crate::sock::close(fd);
            return;
        }
        let entry = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(TAG_CLOSE);
        match self.push(entry) {
            Ok(()) => self.closes_pending += 1,
            Err(_) => crate::sock::close(fd),
        }
    }

    fn flush_closes(&mut self) {
        let give_up = crate::clock::mono_ns() + 2_000_000_000;
        let mut reaped = Vec::new();
        while self.closes_pending > 0 {
            let now = crate::clock::mono_ns();
            if now >= give_up {
                break;
            }
            let mut batch = Vec::new();
            if self
                .wait(Some((now + 20_000_000).min(give_up)), &mut batch)
                .is_err()
            {
                break;
            }
            reaped.append(&mut batch);
        }
        // Whatever else completed meanwhile is reported at the next wait.
        self.errors.append(&mut reaped);
    }

    fn cancel(&mut self, token: u64, op: Op) -> bool {
        let tag = match op {
            Op::Connect | Op::SockOpt => TAG_CONNECT,
            Op::Read => TAG_READ,
            Op::Socket => TAG_SOCKET,
        };
        let entry = opcode::AsyncCancel::new(token << TAG_BITS | tag)
            .build()
            .user_data(token << TAG_BITS | TAG_CANCEL);
        if self.push(entry).is_ok() {
            self.in_flight += 1;
        }
        // The operation itself is still in flight whether or not the cancel got queued.
        true
    }

    fn wait(
        &mut self,
        deadline_ns: Option<u64>,
        out: &mut Vec<Completion>,
    ) -> Result<(), LoadgenError> {
        out.append(&mut self.errors);
        let want = if !out.is_empty() { 0 } else { 1 };
        let r = match deadline_ns {
            _ if want == 0 => self.submit_now(),
            None => self.ring.submit_and_wait(1),
            Some(d) => {
                let ns = ns_until(d);
                if ns == 0 {
                    self.submit_now()
                } else {
                    let ts = types::Timespec::new()
                        .sec(ns / 1_000_000_000)
                        .nsec((ns % 1_000_000_000) as u32);
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
            }
        };
        if let Err(e) = r {
            if !common::ring::is_transient_enter_error(&e) {
                return Err(LoadgenError::io("io_uring_enter", e));
            }
        }
        self.reap(out);
        Ok(())
    }

    fn nonblocking_sockets(&self) -> bool {
        false
    }
}

/// The in-ring SO_LINGER {1,0} of `fd` (no flags, no user_data yet).
fn linger_sqe(fd: RawFd) -> squeue::Entry {
    setsockopt_sqe(
        SockTarget::Fd(fd),
        libc::SOL_SOCKET as u32,
        libc::SO_LINGER as u32,
        (&crate::sock::LINGER0 as *const libc::linger).cast::<u8>(),
        std::mem::size_of::<libc::linger>() as u32,
    )
}

impl UringDriver {
    /// Submits what is queued without waiting; a DEFER_TASKRUN ring also runs the
    /// completions that are ready (it runs none unless asked).
    fn submit_now(&mut self) -> std::io::Result<usize> {
        if !self.defer {
            return self.ring.submit();
        }
        let len = self.ring.submission().len() as u32;
        // SAFETY: no argument is passed; GETEVENTS with min_complete 0 never blocks.
        unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(len, 0, ENTER_GETEVENTS, None)
        }
    }

    fn deferred_error(&mut self, token: u64, op: Op, errno: i32) {
        self.errors.push(Completion {
            token,
            op,
            result: -errno,
        });
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        // Every close queued runs before the ring goes (see the module notes); bounded.
        self.flush_closes();
        if self.in_flight > 0 {
            // Operations still in flight may write into `scratch` until the ring's teardown
            // has cancelled them; leak it rather than let the kernel write into freed memory.
            let scratch = std::mem::replace(&mut self.scratch, Box::new([0u8; 256]));
            std::mem::forget(scratch);
        }
    }
}
