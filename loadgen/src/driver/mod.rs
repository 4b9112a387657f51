//! Connect methods: one trait, three ways to get a connect's outcome out of the kernel.
//!
//! The worker loop (worker.rs) owns sockets and decides what happens to each connection;
//! a driver only starts operations and reports completions. A driver never records or
//! times anything.

pub(crate) mod blocking;
pub(crate) mod epoll;
pub(crate) mod uring;

use std::os::fd::RawFd;

use crate::error::LoadgenError;

/// Which connect method a run used (reported as `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// io_uring IORING_OP_CONNECT / IORING_OP_RECV.
    Uring,
    /// Non-blocking connect + epoll.
    Epoll,
    /// Blocking connect, one in flight per thread.
    Blocking,
}

impl Method {
    /// "uring", "epoll" or "blocking".
    pub fn name(&self) -> &'static str {
        match self {
            Method::Uring => "uring",
            Method::Epoll => "epoll",
            Method::Blocking => "blocking",
        }
    }
}

/// The operation a completion belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Connect,
    Read,
    /// IORING_OP_SOCKET (`--socket-ops ring`): the result is the new fd.
    Socket,
    /// A failed in-ring setsockopt ahead of a connect (successes post nothing).
    SockOpt,
}

/// One finished operation: `result` is 0 on success, else -errno; a read's is the bytes
/// read (0: the server closed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    pub token: u64,
    pub op: Op,
    pub result: i32,
}

/// Starts connects/reads and reports their completions.
pub(crate) trait Driver {
    /// Starts connecting `fd` to the target. Failures arrive as completions, never here.
    fn start_connect(&mut self, token: u64, fd: RawFd);
    /// Starts one read on `fd` (wait-close): its completion carries the bytes read, 0 when
    /// the server closed, or -errno.
    fn start_read(&mut self, token: u64, fd: RawFd);
    /// Starts making a socket in the ring; its completion (`Op::Socket`) carries the fd.
    /// Only the io_uring driver with `--socket-ops ring` is asked to.
    fn start_socket(&mut self, _token: u64, _family: libc::c_int) {
        unreachable!("only the io_uring driver makes sockets in the ring")
    }
    /// Starts connecting `fd` after the in-ring socket set-up; with `close_after` the
    /// ring closes `fd` once the connect is done, whatever its outcome.
    fn start_connect_in_ring(&mut self, _token: u64, _fd: RawFd, _close_after: bool) {
        unreachable!("only the io_uring driver connects in the ring")
    }
    /// Closes `fd`: a system call, or an IORING_OP_CLOSE with `--socket-ops ring`.
    fn close(&mut self, fd: RawFd) {
        crate::sock::close(fd);
    }
    /// Returns once every close asked for so far has happened (bounded): a closed socket
    /// must have sent its RST before a burst round is reported. System-call closes
    /// already have; the io_uring driver submits its queued closes and waits for them.
    fn flush_closes(&mut self) {}
    /// Abandons the operation in flight on `token`; true if a completion for it will
    /// still arrive (the caller must keep the slot until then).
    fn cancel(&mut self, token: u64, op: Op) -> bool;
    /// Submits queued work and appends completions to `out`, waiting until at least one is
    /// ready or `deadline_ns` (CLOCK_MONOTONIC) passes; `None` waits for a completion.
    fn wait(
        &mut self,
        deadline_ns: Option<u64>,
        out: &mut Vec<Completion>,
    ) -> Result<(), LoadgenError>;
    /// Whether sockets for this driver are created non-blocking.
    fn nonblocking_sockets(&self) -> bool;
}

/// Nanoseconds from now until `deadline_ns`, 0 if past.
pub(crate) fn ns_until(deadline_ns: u64) -> u64 {
    deadline_ns.saturating_sub(crate::clock::mono_ns())
}

/// Slot index encoded in a token (low 32 bits).
pub(crate) fn token_slot(token: u64) -> usize {
    (token & 0xffff_ffff) as usize
}
