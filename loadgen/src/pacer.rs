//! Pacing strategies: when the worker loop may start its next connection. Closed loop,
//! fixed rate and burst are three answers to the same question, asked by one loop.

/// The pacer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Start one now; it was meant to start at `intended_ns`.
    Now { intended_ns: u64 },
    /// Nothing to start before this instant (CLOCK_MONOTONIC ns).
    At(u64),
    /// Nothing more to start (this round, in burst mode).
    Done,
}

/// One worker's pacing state.
#[derive(Debug, Clone)]
pub(crate) enum Pacer {
    /// Start whenever a slot is free.
    Closed { limit: Limit },
    /// Start #k of this thread at `origin_ns + (k * threads + thread) * 1e9 / rate`, so the
    /// threads' schedules interleave into one evenly spaced global schedule.
    Rate {
        origin_ns: u64,
        period_ns: f64,
        threads: u64,
        thread: u64,
        k: u64,
        limit: Limit,
    },
    /// Start `size` at once, then nothing until the next round.
    Burst { size: u64, issued: u64 },
}

/// When a closed/rate worker stops starting connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    /// Starts intended before this are warm-up and do not count against `remaining`.
    pub measure_start_ns: u64,
    /// No start intended at or after this instant.
    pub end_ns: Option<u64>,
    /// Measured starts left, if --connections was given.
    pub remaining: Option<u64>,
    /// Set by `halt` (stop flag).
    pub halted: bool,
}

impl Limit {
    /// Whether a start intended at `t` may happen; counts it if so.
    fn take(&mut self, t: u64) -> bool {
        if self.halted || self.end_ns.is_some_and(|e| t >= e) {
            return false;
        }
        if t < self.measure_start_ns {
            return true;
        }
        match &mut self.remaining {
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
            None => true,
        }
    }
}

impl Pacer {
    /// Asks for the next start at time `now_ns`.
    #[inline]
    pub fn next(&mut self, now_ns: u64) -> Pace {
        match self {
            Pacer::Closed { limit } => {
                if limit.take(now_ns) {
                    Pace::Now {
                        intended_ns: now_ns,
                    }
                } else {
                    Pace::Done
                }
            }
            Pacer::Rate {
                origin_ns,
                period_ns,
                threads,
                thread,
                k,
                limit,
            } => {
                let intended = *origin_ns + ((*k * *threads + *thread) as f64 * *period_ns) as u64;
                if intended > now_ns {
                    if limit.halted || limit.end_ns.is_some_and(|e| intended >= e) {
                        return Pace::Done;
                    }
                    return Pace::At(intended);
                }
                if limit.take(intended) {
                    *k += 1;
                    Pace::Now {
                        intended_ns: intended,
                    }
                } else {
                    Pace::Done
                }
            }
            Pacer::Burst { size, issued } => {
                if *issued < *size {
                    *issued += 1;
                    Pace::Now {
                        intended_ns: now_ns,
                    }
                } else {
                    Pace::Done
                }
            }
        }
    }

    /// True when no start is left (this round, in burst mode) at or after `now_ns`.
    pub fn exhausted(&self, now_ns: u64) -> bool {
        match self {
            Pacer::Closed { limit } => {
                limit.halted
                    || limit.remaining == Some(0)
                    || limit.end_ns.is_some_and(|e| now_ns >= e)
            }
            Pacer::Rate {
                origin_ns,
                period_ns,
                threads,
                thread,
                k,
                limit,
            } => {
                let next = *origin_ns + ((*k * *threads + *thread) as f64 * *period_ns) as u64;
                limit.halted
                    || limit.remaining == Some(0)
                    || limit.end_ns.is_some_and(|e| next >= e)
            }
            Pacer::Burst { size, issued } => issued >= size,
        }
    }

    /// Stops all further starts (the stop flag was raised).
    pub fn halt(&mut self) {
        match self {
            Pacer::Closed { limit } | Pacer::Rate { limit, .. } => limit.halted = true,
            Pacer::Burst { size, issued } => *issued = *size,
        }
    }

    /// Burst: allows the next round's starts.
    pub fn next_round(&mut self) {
        if let Pacer::Burst { issued, .. } = self {
            *issued = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(remaining: Option<u64>, end: Option<u64>) -> Limit {
        Limit {
            measure_start_ns: 0,
            end_ns: end,
            remaining,
            halted: false,
        }
    }

    #[test]
    fn rate_interleaves_threads_and_stops_at_end() {
        let mut p0 = Pacer::Rate {
            origin_ns: 1000,
            period_ns: 500.0,
            threads: 2,
            thread: 0,
            k: 0,
            limit: limit(None, Some(3000)),
        };
        let mut p1 = Pacer::Rate {
            origin_ns: 1000,
            period_ns: 500.0,
            threads: 2,
            thread: 1,
            k: 0,
            limit: limit(None, Some(3000)),
        };
        assert_eq!(p0.next(0), Pace::At(1000));
        assert_eq!(p0.next(1000), Pace::Now { intended_ns: 1000 });
        assert_eq!(p1.next(5000), Pace::Now { intended_ns: 1500 });
        assert_eq!(p0.next(5000), Pace::Now { intended_ns: 2000 });
        assert_eq!(p1.next(5000), Pace::Now { intended_ns: 2500 });
        assert_eq!(p0.next(5000), Pace::Done);
    }

    #[test]
    fn closed_counts_only_measured_starts() {
        let mut p = Pacer::Closed {
            limit: Limit {
                measure_start_ns: 100,
                end_ns: None,
                remaining: Some(2),
                halted: false,
            },
        };
        assert!(matches!(p.next(50), Pace::Now { .. }));
        assert!(matches!(p.next(150), Pace::Now { .. }));
        assert!(matches!(p.next(160), Pace::Now { .. }));
        assert_eq!(p.next(170), Pace::Done);
    }

    #[test]
    fn burst_rounds() {
        let mut p = Pacer::Burst { size: 2, issued: 0 };
        assert!(matches!(p.next(0), Pace::Now { .. }));
        assert!(matches!(p.next(0), Pace::Now { .. }));
        assert_eq!(p.next(0), Pace::Done);
        p.next_round();
        assert!(matches!(p.next(0), Pace::Now { .. }));
    }
}
