//! Blocking connect: the whole operation happens inside `start_connect`, bounded by the
//! socket's SO_SNDTIMEO (a timed-out blocking connect returns EINPROGRESS). One connect per
//! thread in flight; the cheapest in CPU on loopback (no readiness notification at all).

use std::collections::VecDeque;
use std::os::fd::RawFd;

use super::{ns_until, Completion, Driver, Op};
use crate::error::LoadgenError;
use crate::sock::{self, RawAddr};

pub(crate) struct BlockingDriver {
    target: RawAddr,
    ready: VecDeque<Completion>,
}

impl BlockingDriver {
    pub fn new(target: RawAddr) -> Self {
        BlockingDriver {
            target,
            ready: VecDeque::with_capacity(4),
        }
    }
}

impl Driver for BlockingDriver {
    fn start_connect(&mut self, token: u64, fd: RawFd) {
        let result = match sock::connect(fd, &self.target) {
            Ok(()) => 0,
            // SO_SNDTIMEO expired: the handshake did not finish in --connect-timeout.
            Err(libc::EINPROGRESS) | Err(libc::EAGAIN) => -libc::ETIMEDOUT,
            Err(e) => -e,
        };
        self.ready.push_back(Completion {
            token,
            op: Op::Connect,
            result,
        });
    }

    fn start_read(&mut self, token: u64, fd: RawFd) {
        let result = match sock::read_once(fd) {
            Ok(n) => n.min(i32::MAX as usize) as i32,
            // SO_RCVTIMEO expired.
            Err(libc::EAGAIN) => -libc::ETIMEDOUT,
            Err(e) => -e,
        };
        self.ready.push_back(Completion {
            token,
            op: Op::Read,
            result,
        });
    }

    fn cancel(&mut self, _token: u64, _op: Op) -> bool {
        false
    }

    fn wait(
        &mut self,
        deadline_ns: Option<u64>,
        out: &mut Vec<Completion>,
    ) -> Result<(), LoadgenError> {
        if self.ready.is_empty() {
            // Nothing in flight: only the pacer's next start is worth waiting for.
            if let Some(d) = deadline_ns {
                let ns = ns_until(d);
                if ns > 0 {
                    std::thread::sleep(std::time::Duration::from_nanos(ns));
                }
            }
            return Ok(());
        }
        out.extend(self.ready.drain(..));
        Ok(())
    }

    fn nonblocking_sockets(&self) -> bool {
        false
    }
}
