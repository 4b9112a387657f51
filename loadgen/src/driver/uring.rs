//! io_uring connects: IORING_OP_CONNECT (and IORING_OP_RECV for --wait-close), many in
//! flight per thread, submitted in batches with one io_uring_enter per loop turn.
//!
//! `user_data` = token << 2 | tag, tag 0 connect, 1 read, 2 cancel (its completion is
//! ignored: the cancelled operation's own completion, -ECANCELED, is what matters).
//! Needs Linux 5.11 (IORING_FEAT_EXT_ARG for timed waits); connect itself is 5.5.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types, IoUring, Probe};

use super::{ns_until, Completion, Driver, Op};
use crate::error::LoadgenError;

const TAG_CONNECT: u64 = 0;
const TAG_READ: u64 = 1;
const TAG_CANCEL: u64 = 2;

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
    /// Operations that could not be queued, reported as completions at the next wait.
    errors: Vec<Completion>,
}

impl UringDriver {
    /// Sets up a ring for `slots` operations in flight; errors say why io_uring cannot be used.
    pub fn new(
        target: crate::sock::RawAddr,
        slots: usize,
        wait_close: bool,
    ) -> Result<Self, String> {
        let sq = (slots.max(1) as u32).next_power_of_two().clamp(8, 4096);
        // Every slot can have an operation and a cancel in flight.
        let cq = ((slots.max(1) as u32) * 2 + 16)
            .next_power_of_two()
            .clamp(2 * sq, 65536);
        let ring = IoUring::builder()
            .setup_cqsize(cq)
            .setup_single_issuer()
            .build(sq)
            .or_else(|_| IoUring::builder().setup_cqsize(cq).build(sq))
            .map_err(|e| format!("io_uring_setup failed ({e}); kernel.io_uring_disabled or a seccomp filter may forbid it"))?;
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
        for (code, name) in needed {
            if !probe.is_supported(code) {
                return Err(format!("io_uring does not support {name}"));
            }
        }
        Ok(UringDriver {
            ring,
            target: Box::new(target),
            scratch: Box::new([0u8; 256]),
            in_flight: 0,
            errors: Vec::new(),
        })
    }

    /// Queues one SQE, submitting first if the queue is full.
    fn push(&mut self, entry: squeue::Entry) -> Result<(), i32> {
        for _ in 0..64 {
            // SAFETY: every entry pushed here points only at memory owned by self (target,
            // scratch), which stays alive until the completion is reaped or is leaked in Drop.
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        || e.raw_os_error() == Some(libc::EAGAIN)
                        || e.raw_os_error() == Some(libc::EINTR) =>
                {
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
            self.in_flight = self.in_flight.saturating_sub(1);
            let op = match ud & 3 {
                TAG_CONNECT => Op::Connect,
                TAG_READ => Op::Read,
                _ => continue,
            };
            out.push(Completion {
                token: ud >> 2,
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
            .user_data(token << 2 | TAG_CONNECT);
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
        .user_data(token << 2 | TAG_READ);
        match self.push(entry) {
            Ok(()) => self.in_flight += 1,
            Err(e) => self.deferred_error(token, Op::Read, e),
        }
    }

    fn cancel(&mut self, token: u64, op: Op) -> bool {
        let tag = if op == Op::Connect {
            TAG_CONNECT
        } else {
            TAG_READ
        };
        let entry = opcode::AsyncCancel::new(token << 2 | tag)
            .build()
            .user_data(token << 2 | TAG_CANCEL);
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
            _ if want == 0 => self.ring.submit(),
            None => self.ring.submit_and_wait(1),
            Some(d) => {
                let ns = ns_until(d);
                if ns == 0 {
                    self.ring.submit()
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
            match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                _ => return Err(LoadgenError::io("io_uring_enter", e)),
            }
        }
        self.reap(out);
        Ok(())
    }

    fn nonblocking_sockets(&self) -> bool {
        false
    }
}

impl UringDriver {
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
        if self.in_flight > 0 {
            // Operations still in flight may write into `scratch` until the ring's teardown
            // has cancelled them; leak it rather than let the kernel write into freed memory.
            let scratch = std::mem::replace(&mut self.scratch, Box::new([0u8; 256]));
            std::mem::forget(scratch);
        }
    }
}
