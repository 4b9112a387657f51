//! The per-connection slot state machine of a worker: a slot is started (socket,
//! bind, connect handed to the driver — with `--socket-ops ring` the socket is made
//! in the ring first, and the connect handed over when it arrives), completed or
//! expired, optionally kept waiting for the server's answer or close (wait-close, see
//! `serve.rs`; in burst rounds too, instead of being held), held or
//! decided in burst rounds, and closed or abandoned — cancelling what the driver still owns and draining its completion
//! before the slot is reused.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::os::fd::RawFd;

use super::{is_local_shortage, token, Worker, BACKOFF_NS, DRAIN_LIMIT_NS};
use crate::clock::mono_ns;
use crate::driver::{token_slot, Completion, Driver, Op};
use crate::record::{Outcome, Serve};
use crate::sock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Free,
    /// `--socket-ops ring`: IORING_OP_SOCKET in flight.
    Opening,
    /// connect in flight.
    Connecting,
    /// wait-close read in flight.
    Reading,
    /// Burst: established, held open until the round ends.
    Held,
    /// Burst: recorded as pending; fd open, connect possibly still in flight.
    Decided,
    /// fd closed; waiting for the cancelled operation's completion.
    Draining,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) fd: RawFd,
    pub(super) gen: u16,
    pub(super) state: State,
    pub(super) op_in_flight: bool,
    pub(super) warmup: bool,
    pub(super) intended_ns: u64,
    pub(super) start_ns: u64,
    pub(super) deadline_ns: u64,
    /// `--socket-ops ring`: errno of the in-ring setsockopt that failed ahead of the
    /// connect (which then completes with ECANCELED), 0 if none.
    pub(super) ring_err: i32,
    /// Wait-close: what the server did is known and counted.
    pub(super) settled: bool,
    /// Wait-close: reads done on this connection (bounded by `MAX_READS`).
    pub(super) reads: u16,
    /// Index of this connection's record in the worker's records (kept records only).
    pub(super) record: u32,
}

impl Slot {
    pub(super) const FREE: Slot = Slot {
        fd: -1,
        gen: 0,
        state: State::Free,
        op_in_flight: false,
        warmup: false,
        intended_ns: 0,
        start_ns: 0,
        deadline_ns: 0,
        ring_err: 0,
        settled: false,
        reads: 0,
        record: u32::MAX,
    };
}

impl<D: Driver> Worker<'_, D> {
    /// Creates, binds and starts connecting one socket; with `--socket-ops ring` asks
    /// the ring for the socket, and [`Worker::socket_made`] goes on from there.
    #[inline]
    pub(super) fn start(&mut self, intended_ns: u64, now: u64) {
        let Some(idx) = self.free.pop() else { return };
        let idx = idx as usize;
        let warmup = intended_ns < self.measure_start_ns;
        let slot = &mut self.slots[idx];
        slot.gen = slot.gen.wrapping_add(1);
        slot.warmup = warmup;
        slot.ring_err = 0;
        slot.settled = false;
        slot.reads = 0;
        slot.record = u32::MAX;
        // Closed and burst latency counts from connect(); rate from the schedule.
        slot.intended_ns = if self.rate { intended_ns } else { now };
        if self.ring_ops {
            slot.fd = -1;
            slot.state = State::Opening;
            slot.op_in_flight = true;
            slot.start_ns = now;
            let token = token(idx, slot.gen);
            self.awaiting += 1;
            self.driver.start_socket(token, self.setup.family);
            return;
        }
        let source = self.next_source();
        match sock::new_socket(&self.setup, source) {
            Ok(fd) => {
                self.awaiting += 1;
                self.begin_connect(idx, fd, mono_ns());
            }
            Err(errno) => {
                self.start_failed(idx, errno, now);
            }
        }
    }

    /// The next source address, round robin, if sources were given.
    fn next_source(&mut self) -> Option<IpAddr> {
        self.sources.as_ref().map(|s| {
            self.next_source += 1;
            s.nth(self.next_source - 1)
        })
    }

    /// `fd` is made (and set up): the connect starts now. The caller counted the slot
    /// in `awaiting`.
    fn begin_connect(&mut self, idx: usize, fd: RawFd, start_ns: u64) {
        let slot = &mut self.slots[idx];
        slot.fd = fd;
        slot.state = State::Connecting;
        slot.op_in_flight = self.track_deadlines;
        slot.start_ns = start_ns;
        if !self.rate {
            slot.intended_ns = start_ns;
        }
        slot.deadline_ns = start_ns + self.timeout_ns;
        let (token, warmup, intended_ns) = (token(idx, slot.gen), slot.warmup, slot.intended_ns);
        if self.track_deadlines {
            self.deadlines
                .push_back((slot.deadline_ns, idx as u32, slot.gen));
        }
        if self.rate && !warmup {
            self.stats
                .schedule_lag(start_ns.saturating_sub(intended_ns));
        }
        if self.ring_ops {
            if self.close_linked {
                // The ring closes fd after the connect: from here on it is not ours.
                self.slots[idx].fd = -1;
            }
            self.driver
                .start_connect_in_ring(token, fd, self.close_linked);
        } else {
            self.driver.start_connect(token, fd);
        }
    }

    /// No socket for slot `idx` (errno): counted as this attempt's outcome, and the
    /// worker backs off a little (a local shortage would otherwise spin).
    fn start_failed(&mut self, idx: usize, errno: i32, now: u64) {
        let slot = &mut self.slots[idx];
        slot.fd = -1;
        slot.start_ns = now;
        self.note(idx, Outcome::from_errno(errno), now);
        self.backoff_until_ns = now + BACKOFF_NS;
        self.free_slot(idx);
    }

    /// `--socket-ops ring`: the ring made a socket (or failed to) for slot `idx`.
    fn socket_made(&mut self, idx: usize, result: i32, now: u64) {
        if result < 0 {
            self.awaiting -= 1;
            self.start_failed(idx, -result, now);
            return;
        }
        let fd = result;
        if let Some(ip) = self.next_source() {
            if let Err(errno) = sock::bind_source(fd, ip) {
                self.driver.close(fd);
                self.awaiting -= 1;
                self.start_failed(idx, errno, now);
                return;
            }
        }
        self.begin_connect(idx, fd, now);
    }

    /// Handles one completion from the driver.
    #[inline]
    pub(super) fn complete(&mut self, c: Completion, now: u64) {
        let idx = token_slot(c.token);
        if idx >= self.slots.len() || self.slots[idx].gen != (c.token >> 32) as u16 {
            return;
        }
        if c.op == Op::SockOpt {
            // Only failures arrive; the connect behind it completes with ECANCELED.
            if self.slots[idx].state == State::Connecting {
                self.slots[idx].ring_err = -c.result;
            }
            return;
        }
        self.slots[idx].op_in_flight = false;
        match (self.slots[idx].state, c.op) {
            (State::Opening, Op::Socket) => self.socket_made(idx, c.result, now),
            (State::Draining, Op::Socket) => {
                // Abandoned while the ring made it: close what it made.
                if c.result >= 0 {
                    self.driver.close(c.result);
                }
                self.draining -= 1;
                self.free_slot(idx);
            }
            (State::Connecting, Op::Connect) => {
                self.awaiting -= 1;
                if c.result == 0 {
                    self.note(idx, Outcome::Established, now);
                    if self.config.wait_close {
                        // Burst too: the round ends once each is served or its wait
                        // is over (the server is continued meanwhile).
                        self.await_server(idx, now);
                    } else if self.burst {
                        self.slots[idx].state = State::Held;
                    } else {
                        self.close_slot(idx);
                    }
                } else {
                    let mut errno = -c.result;
                    if errno == libc::ECANCELED && self.slots[idx].ring_err != 0 {
                        // The in-ring SO_LINGER failed and took its linked connect down.
                        errno = self.slots[idx].ring_err;
                    }
                    let outcome = if errno == libc::ECANCELED {
                        Outcome::Timeout
                    } else {
                        Outcome::from_errno(errno)
                    };
                    if is_local_shortage(outcome) {
                        self.backoff_until_ns = now + BACKOFF_NS;
                    }
                    self.note(idx, outcome, now);
                    self.close_slot(idx);
                }
            }
            (State::Reading, Op::Read) => {
                self.awaiting -= 1;
                self.read_done(idx, c.result, now);
            }
            (State::Draining, _) => {
                self.draining -= 1;
                self.free_slot(idx);
            }
            // A pending burst connect that finished after the round's wait: it stays open (and
            // counted as pending) until the round ends.
            (State::Decided, _) => {}
            _ => {}
        }
    }

    /// Starts one read on slot `idx`'s socket, given up at `deadline_ns`.
    pub(super) fn start_read(&mut self, idx: usize, deadline_ns: u64) {
        let slot = &mut self.slots[idx];
        slot.state = State::Reading;
        slot.op_in_flight = self.track_deadlines;
        slot.reads = slot.reads.saturating_add(1);
        slot.deadline_ns = deadline_ns;
        let (fd, token) = (slot.fd, token(idx, slot.gen));
        // A later read keeps the first one's deadline, whose entry is still queued.
        if self.track_deadlines && slot.reads == 1 {
            self.read_deadlines
                .push_back((slot.deadline_ns, idx as u32, slot.gen));
        }
        self.awaiting += 1;
        self.driver.start_read(token, fd);
    }

    /// Settles every connect/read whose deadline has passed.
    pub(super) fn expire(&mut self, now: u64) {
        loop {
            let due = |q: &VecDeque<(u64, u32, u16)>| q.front().filter(|e| e.0 <= now).copied();
            let Some((d, idx, gen)) = due(&self.deadlines)
                .inspect(|_| {
                    self.deadlines.pop_front();
                })
                .or_else(|| {
                    due(&self.read_deadlines).inspect(|_| {
                        self.read_deadlines.pop_front();
                    })
                })
            else {
                break;
            };
            let idx = idx as usize;
            let s = self.slots[idx];
            if s.gen != gen || s.deadline_ns != d {
                continue;
            }
            match s.state {
                State::Connecting if self.burst => {
                    // Still in SYN_SENT: pending. Left in flight (it may still establish and
                    // occupy the accept queue) until the round ends.
                    self.awaiting -= 1;
                    self.note(idx, Outcome::Pending, now);
                    self.slots[idx].state = State::Decided;
                }
                State::Connecting => {
                    self.awaiting -= 1;
                    self.note(idx, Outcome::Timeout, now);
                    self.abandon(idx, Op::Connect);
                }
                State::Reading => {
                    self.awaiting -= 1;
                    if !s.warmup {
                        self.stats.wait_close_timeouts += 1;
                    }
                    self.settle(idx, Serve::ClientOnly);
                    self.abandon(idx, Op::Read);
                }
                _ => {}
            }
        }
    }

    /// Stop flag: start nothing more; connects still in flight are pending.
    pub(super) fn interrupt(&mut self, now: u64) {
        self.interrupted = true;
        self.pacer.halt();
        for idx in 0..self.slots.len() {
            match self.slots[idx].state {
                State::Connecting => {
                    self.awaiting -= 1;
                    self.note(idx, Outcome::Pending, now);
                    self.abandon(idx, Op::Connect);
                }
                State::Reading => {
                    self.awaiting -= 1;
                    self.settle(idx, Serve::Unresolved);
                    self.abandon(idx, Op::Read);
                }
                State::Opening => {
                    // No connect was attempted yet: not an outcome, just abandoned.
                    self.awaiting -= 1;
                    self.abandon(idx, Op::Socket);
                }
                _ => {}
            }
        }
    }

    /// Closes every open socket (cancelling what is in flight) and waits until the
    /// closes have happened.
    pub(super) fn close_all(&mut self) {
        for idx in 0..self.slots.len() {
            match self.slots[idx].state {
                State::Held
                | State::Decided
                | State::Connecting
                | State::Reading
                | State::Opening => {
                    if matches!(
                        self.slots[idx].state,
                        State::Connecting | State::Reading | State::Opening
                    ) {
                        self.awaiting -= 1;
                    }
                    let op = match self.slots[idx].state {
                        State::Reading => {
                            self.settle(idx, Serve::Unresolved);
                            Op::Read
                        }
                        State::Opening => Op::Socket,
                        _ => Op::Connect,
                    };
                    self.abandon(idx, op);
                }
                _ => {}
            }
        }
        self.deadlines.clear();
        self.read_deadlines.clear();
        // Returns with every socket closed, not just asked to close.
        self.driver.flush_closes();
    }

    /// Waits (bounded) for cancelled operations to complete so their slots and buffers are free.
    pub(super) fn drain(&mut self) {
        let limit = mono_ns() + DRAIN_LIMIT_NS;
        let mut completions = std::mem::take(&mut self.completions);
        while self.draining > 0 {
            let now = mono_ns();
            if now >= limit {
                break;
            }
            if self
                .driver
                .wait(Some(limit.min(now + 100_000_000)), &mut completions)
                .is_err()
            {
                break;
            }
            let now = mono_ns();
            for c in completions.drain(..) {
                self.complete(c, now);
            }
        }
        self.completions = completions;
    }

    /// Closes a slot's socket; if the driver still owns an operation on it, the slot waits
    /// for that completion (Draining), else it is free at once.
    pub(super) fn abandon(&mut self, idx: usize, op: Op) {
        let s = self.slots[idx];
        if s.op_in_flight && self.driver.cancel(token(idx, s.gen), op) {
            if s.fd >= 0 {
                self.driver.close(s.fd);
            }
            self.slots[idx].fd = -1;
            self.slots[idx].state = State::Draining;
            self.draining += 1;
        } else {
            self.close_slot(idx);
        }
    }

    #[inline]
    pub(super) fn close_slot(&mut self, idx: usize) {
        let fd = self.slots[idx].fd;
        if fd >= 0 {
            self.driver.close(fd);
        }
        self.free_slot(idx);
    }

    #[inline]
    pub(super) fn free_slot(&mut self, idx: usize) {
        let s = &mut self.slots[idx];
        s.fd = -1;
        s.state = State::Free;
        s.op_in_flight = false;
        self.free.push(idx as u32);
    }
}
