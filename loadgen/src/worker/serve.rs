//! Wait-close: what the server does with an established connection. The request (if
//! any) is sent, then reads wait for the server's first byte or its close — the moment
//! it is *served* — and go on until it closes; a deadline without either makes the
//! connection *client-only*, a reset before either makes it *reset*.
//!
//! The client cannot see the accept itself: served means the server acted on the
//! connection (it must have accepted it first); a server that accepts and then does
//! nothing by the deadline is counted client-only like one that never accepted.

use super::slot::State;
use super::Worker;
use crate::driver::Driver;
use crate::record::Serve;
use crate::sock;

/// Reads per connection at most (512 bytes each, so 1 MiB of answer): a server that
/// keeps sending is read no further, and the connection is closed as served.
const MAX_READS: u16 = 2048;

impl<D: Driver> Worker<'_, D> {
    /// Slot `idx` just connected: sends the request, if any, and waits for the server.
    pub(super) fn await_server(&mut self, idx: usize, now: u64) {
        if let Some(req) = &self.config.server_request {
            if sock::send_all(self.slots[idx].fd, req).is_err() {
                self.settle(idx, Serve::Reset);
                self.close_slot(idx);
                return;
            }
        }
        self.start_read(idx, now.saturating_add(self.serve_ns));
    }

    /// One read on slot `idx` completed with `result` (bytes, 0 = closed, -errno).
    pub(super) fn read_done(&mut self, idx: usize, result: i32, now: u64) {
        let timed_out = result == -libc::ETIMEDOUT || result == -libc::ECANCELED;
        if timed_out && !self.slots[idx].warmup {
            self.stats.wait_close_timeouts += 1;
        }
        if !self.slots[idx].settled {
            let serve = if result >= 0 {
                Serve::Served(now)
            } else if timed_out {
                Serve::ClientOnly
            } else {
                Serve::Reset
            };
            self.settle(idx, serve);
        }
        let s = self.slots[idx];
        if result > 0 && s.reads < MAX_READS && now < s.deadline_ns {
            // Answered: read on until the server closes.
            self.start_read(idx, s.deadline_ns);
        } else {
            self.close_slot(idx);
        }
    }

    /// Slot `idx`'s connection is settled as `serve`: counted, and its record told.
    pub(super) fn settle(&mut self, idx: usize, serve: Serve) {
        let s = &mut self.slots[idx];
        debug_assert!(s.state == State::Reading || s.state == State::Connecting);
        if s.settled {
            return;
        }
        s.settled = true;
        let (warmup, start, record) = (s.warmup, s.start_ns, s.record);
        self.stats.serve(serve, warmup, start);
        if let Some(r) = self.records.get_mut(record as usize) {
            r.serve = serve;
        }
    }
}
