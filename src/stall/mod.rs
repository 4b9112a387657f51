//! Stall and recover: what clients see when the acceptor stops for T while they keep
//! arriving, and when the server is back to normal. [`schedule`] reads the kernel's SYN
//! retransmit schedule, [`model`] predicts a stall from first principles, and
//! [`recovery`] judges when a run (measured or predicted, the same way) recovered.

pub mod model;
pub mod observe;
pub mod schedule;
pub mod verdict;

/// One connection: when it was meant to start (open loop: its place in the schedule)
/// and when it was established, if it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// Intended start, ns (any clock shared with the samples).
    pub intended_ns: u64,
    /// Established, ns; `None`: timed out, reset or still pending.
    pub done_ns: Option<u64>,
}

/// Accept-queue depth at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When, ns (same clock as [`Conn`]).
    pub t_ns: u64,
    /// Connections in the accept queue.
    pub depth: u32,
}

/// What "back to normal" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Criteria {
    /// Time is judged in bins of this width, ns.
    pub bin_ns: u64,
    /// Normal must last this long, ns.
    pub hold_ns: u64,
    /// A new connection is normal when held within this of its intended start, ns.
    pub lag_limit_ns: u64,
    /// The queue is normal when it is at or below this depth at some moment of the bin:
    /// a backlog is a queue above it for a whole bin, not a batch of retransmits the
    /// acceptor empties at once.
    pub queue_limit: u32,
}

impl Criteria {
    /// The stated defaults: 10 ms bins held for 1 s; lag within max(5 ms, 10 × the
    /// pre-stall p99 lag); queue at most a quarter full (at least 1), or as deep as it
    /// stayed through a bin before the stall if that was deeper (a closed loop at full
    /// speed keeps some queue all the time).
    pub fn new(backlog: u32, prestall_lag_p99_ns: u64) -> Criteria {
        Criteria {
            bin_ns: 10_000_000,
            hold_ns: 1_000_000_000,
            lag_limit_ns: (10 * prestall_lag_p99_ns).max(5_000_000),
            queue_limit: ((backlog + 1) / 4).max(1),
        }
    }

    /// These criteria with the queue limit raised to `prestall_depth` (the deepest the
    /// queue stayed through a whole bin before the stall), if that is deeper.
    pub fn with_prestall_queue(mut self, prestall_depth: u32) -> Criteria {
        self.queue_limit = self.queue_limit.max(prestall_depth);
        self
    }
}

/// When a stall was over for the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Normal from this long after the resume on, ns.
    At(u64),
    /// Never normal for the hold time before the arrivals ended; the span judged, ns.
    NotWithin(u64),
}

/// The first instant after `resume_ns` from which every bin for `hold_ns` is normal:
/// every connection meant to start in it was held within the lag limit, and the queue
/// was within its limit at some moment of it (`queue`: depth samples in time order,
/// each in force until the next). Judged up to `end_ns` (when new arrivals stop).
pub fn recovery(
    conns: &[Conn],
    queue: &[Sample],
    resume_ns: u64,
    end_ns: u64,
    c: &Criteria,
) -> Recovery {
    let span = end_ns.saturating_sub(resume_ns);
    let bins = (span / c.bin_ns) as usize;
    let mut good = vec![true; bins];
    let bin = |t: u64| -> Option<usize> {
        let i = (t.checked_sub(resume_ns)? / c.bin_ns) as usize;
        (i < bins).then_some(i)
    };
    for k in conns {
        let normal = k
            .done_ns
            .is_some_and(|d| d.saturating_sub(k.intended_ns) <= c.lag_limit_ns);
        if let Some(i) = bin(k.intended_ns).filter(|_| !normal) {
            good[i] = false;
        }
    }
    let shallowest = shallowest_per_bin(queue, resume_ns, bins, c.bin_ns);
    for (g, &low) in good.iter_mut().zip(&shallowest) {
        if low > c.queue_limit {
            *g = false;
        }
    }
    let hold = (c.hold_ns / c.bin_ns).max(1) as usize;
    let mut run = 0;
    for (i, &g) in good.iter().enumerate() {
        run = if g { run + 1 } else { 0 };
        if run == hold {
            return Recovery::At((i + 1 - hold) as u64 * c.bin_ns);
        }
    }
    Recovery::NotWithin(span)
}

/// The shallowest the queue was in each of `bins` bins from `from_ns`: the depth in
/// force at a bin's start, and every sample inside it (`queue` in time order, each
/// sample in force until the next).
pub fn shallowest_per_bin(queue: &[Sample], from_ns: u64, bins: usize, bin_ns: u64) -> Vec<u32> {
    let mut shallowest = vec![0; bins];
    let mut in_force = 0;
    let mut k = 0;
    for (i, low) in shallowest.iter_mut().enumerate() {
        let start = from_ns + i as u64 * bin_ns;
        while k < queue.len() && queue[k].t_ns <= start {
            in_force = queue[k].depth;
            k += 1;
        }
        *low = in_force;
        while k < queue.len() && queue[k].t_ns < start + bin_ns {
            in_force = queue[k].depth;
            *low = (*low).min(in_force);
            k += 1;
        }
    }
    shallowest
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn recovery_starts_where_lag_and_queue_stay_normal_for_the_hold() {
        let c = Criteria::new(8, 0);
        // Connections every ms from resume (t = 0) to 3 s; those meant to start before
        // 500 ms wait 1 s; the queue is full until 700 ms, and then spikes to 9 for a
        // millisecond every 10 ms (batches emptied at once: normal).
        let conns: Vec<Conn> = (0..3000)
            .map(|i| Conn {
                intended_ns: i * MS,
                done_ns: Some(i * MS + if i < 500 { 1000 * MS } else { MS }),
            })
            .collect();
        let queue: Vec<Sample> = (0..300)
            .flat_map(|i| {
                [
                    Sample {
                        t_ns: i * 10 * MS,
                        depth: 9,
                    },
                    Sample {
                        t_ns: i * 10 * MS + MS,
                        depth: if i < 70 { 9 } else { 0 },
                    },
                ]
            })
            .collect();
        assert_eq!(
            recovery(&conns, &queue, 0, 3000 * MS, &c),
            Recovery::At(700 * MS)
        );
        // A connection that never completed at 1.5 s breaks the hold: the next normal
        // second starts after it.
        let mut broken = conns.clone();
        broken[1500].done_ns = None;
        assert_eq!(
            recovery(&broken, &queue, 0, 3000 * MS, &c),
            Recovery::At(1510 * MS)
        );
        // Judged only until 1.2 s: no full second of normal fits.
        assert_eq!(
            recovery(&conns, &queue, 0, 1200 * MS, &c),
            Recovery::NotWithin(1200 * MS)
        );
    }
}
