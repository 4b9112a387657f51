//! Stall and recover: what clients see when the acceptor stops for T while they keep
//! arriving, and when the server is back to normal. [`schedule`] reads the kernel's SYN
//! retransmit schedule, [`model`] predicts a stall from first principles, and
//! [`recovery`] judges when a run (measured or predicted, the same way) recovered.

pub mod model;
pub mod observe;
pub mod schedule;

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
    /// A new connection is normal when established within this of its intended start, ns.
    pub lag_limit_ns: u64,
    /// The queue is normal at or below this depth.
    pub queue_limit: u32,
}

impl Criteria {
    /// The stated defaults: 10 ms bins held for 1 s; lag within max(5 ms, 10 × the
    /// pre-stall p99 lag); queue at most a quarter full (at least 1).
    pub fn new(backlog: u32, prestall_lag_p99_ns: u64) -> Criteria {
        Criteria {
            bin_ns: 10_000_000,
            hold_ns: 1_000_000_000,
            lag_limit_ns: (10 * prestall_lag_p99_ns).max(5_000_000),
            queue_limit: ((backlog + 1) / 4).max(1),
        }
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
/// every connection meant to start in it was established within the lag limit, and the
/// queue stayed within its limit. Judged up to `end_ns` (when new arrivals stop).
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
    for s in queue {
        if let Some(i) = bin(s.t_ns).filter(|_| s.depth > c.queue_limit) {
            good[i] = false;
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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn recovery_starts_where_lag_and_queue_stay_normal_for_the_hold() {
        let c = Criteria::new(8, 0);
        // Connections every ms from resume (t = 0) to 3 s; those meant to start before
        // 500 ms wait 1 s; the queue is full until 700 ms.
        let conns: Vec<Conn> = (0..3000)
            .map(|i| Conn {
                intended_ns: i * MS,
                done_ns: Some(i * MS + if i < 500 { 1000 * MS } else { MS }),
            })
            .collect();
        let queue: Vec<Sample> = (0..300)
            .map(|i| Sample {
                t_ns: i * 10 * MS,
                depth: if i < 70 { 9 } else { 0 },
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
