//! Per-thread counters by outcome and HdrHistograms, owned by one
//! worker and merged when the run ends. Nothing here is shared while the run is going.

use hdrhistogram::Histogram;

use crate::record::{Outcome, Serve};
use crate::report::{ErrorCounts, ServeCounts};

pub use common::hist::new_histogram;

/// Records `v` (at least 1), growing the histogram if needed; clamps only if it cannot grow.
/// (`saturating_record` alone clamps instead of growing an auto-resizing histogram.)
#[inline]
fn record(h: &mut Histogram<u64>, v: u64) {
    let v = v.max(1);
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

/// Counts and histograms of one worker (or, after `merge`, of the run).
pub struct ThreadStats {
    /// Measured attempts.
    pub attempted: u64,
    /// Measured attempts that connected.
    pub established: u64,
    /// Measured attempts unresolved when the wait ended.
    pub pending: u64,
    /// Measured failures by kind.
    pub errors: ErrorCounts,
    /// Attempts made during warm-up (not in the counts above).
    pub warmup_attempted: u64,
    /// Wait-close waits that hit the deadline.
    pub wait_close_timeouts: u64,
    /// What the server did with measured established connections (wait-close).
    pub serve: ServeCounts,
    /// Served latency (connect() called → the server's first byte or close), ns.
    pub served_ns: Histogram<u64>,
    /// Connect latency of established measured connections, ns.
    pub connect_ns: Histogram<u64>,
    /// Rate mode: actual start − intended start, ns.
    pub lag_ns: Histogram<u64>,
    /// One connect-latency histogram per second since the measured window began (--hlog).
    pub intervals: Vec<Histogram<u64>>,
    keep_intervals: bool,
    measure_start_ns: u64,
}

impl ThreadStats {
    pub fn new(measure_start_ns: u64, keep_intervals: bool) -> Self {
        ThreadStats {
            attempted: 0,
            established: 0,
            pending: 0,
            errors: ErrorCounts::default(),
            warmup_attempted: 0,
            wait_close_timeouts: 0,
            serve: ServeCounts::default(),
            served_ns: new_histogram(),
            connect_ns: new_histogram(),
            lag_ns: new_histogram(),
            intervals: Vec::new(),
            keep_intervals,
            measure_start_ns,
        }
    }

    /// Counts one outcome; `latency_ns` is recorded for established connections.
    #[inline]
    pub fn count(&mut self, outcome: Outcome, warmup: bool, latency_ns: u64, done_ns: u64) {
        if warmup {
            self.warmup_attempted += 1;
            return;
        }
        self.attempted += 1;
        match outcome {
            Outcome::Established => {
                self.established += 1;
                record(&mut self.connect_ns, latency_ns);
                if self.keep_intervals {
                    self.record_interval(latency_ns, done_ns);
                }
            }
            Outcome::Pending => self.pending += 1,
            Outcome::Refused => self.errors.refused += 1,
            Outcome::Reset => self.errors.reset += 1,
            Outcome::Timeout => self.errors.timeout += 1,
            Outcome::AddrUnavailable => self.errors.addr_unavailable += 1,
            Outcome::Other(e) => {
                self.errors.other += 1;
                *self.errors.other_errnos.entry(e).or_insert(0) += 1;
            }
        }
    }

    /// Counts what the server did with one established connection whose connect()
    /// was called at `connect_start_ns`.
    #[inline]
    pub fn serve(&mut self, serve: Serve, warmup: bool, connect_start_ns: u64) {
        if warmup {
            return;
        }
        match serve {
            Serve::Served(t) => {
                self.serve.served += 1;
                record(&mut self.served_ns, t.saturating_sub(connect_start_ns));
            }
            Serve::ClientOnly => self.serve.client_only += 1,
            Serve::Reset => self.serve.reset += 1,
            Serve::Unresolved => self.serve.unresolved += 1,
            Serve::NotWaited => {}
        }
    }

    /// Rate mode: records how late a start was against its schedule.
    #[inline]
    pub fn schedule_lag(&mut self, lag_ns: u64) {
        record(&mut self.lag_ns, lag_ns);
    }

    #[cold]
    fn record_interval(&mut self, latency_ns: u64, done_ns: u64) {
        let i = (done_ns.saturating_sub(self.measure_start_ns) / 1_000_000_000) as usize;
        // Bounded by the run's length in seconds.
        while self.intervals.len() <= i {
            let mut h = Histogram::new(3).expect("3 significant digits is valid");
            h.auto(true);
            self.intervals.push(h);
        }
        record(&mut self.intervals[i], latency_ns);
    }

    /// Adds another worker's stats into these.
    pub fn merge(&mut self, other: &ThreadStats) {
        self.attempted += other.attempted;
        self.established += other.established;
        self.pending += other.pending;
        self.errors.merge(&other.errors);
        self.warmup_attempted += other.warmup_attempted;
        self.wait_close_timeouts += other.wait_close_timeouts;
        self.serve.merge(&other.serve);
        let _ = self.served_ns.add(&other.served_ns);
        // Auto-resizing histograms accept any other histogram of the same precision.
        let _ = self.connect_ns.add(&other.connect_ns);
        let _ = self.lag_ns.add(&other.lag_ns);
        for (i, h) in other.intervals.iter().enumerate() {
            while self.intervals.len() <= i {
                let mut n = Histogram::new(3).expect("3 significant digits is valid");
                n.auto(true);
                self.intervals.push(n);
            }
            let _ = self.intervals[i].add(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_histograms_grow_instead_of_clamping() {
        let mut s = ThreadStats::new(0, true);
        s.count(Outcome::Established, false, 5_000_000, 1_500_000_000);
        assert_eq!(s.intervals.len(), 2);
        assert!(
            s.intervals[1].max() >= 4_990_000,
            "{}",
            s.intervals[1].max()
        );
        assert!(s.connect_ns.max() >= 4_990_000);
    }
}
