//! A first-principles prediction of a stall: open-loop arrivals at λ into an accept
//! queue of B+1 slots, an acceptor that stops for T and then serves at μ (or at once),
//! and SYNs dropped on a full queue that come back on the kernel's retransmit schedule.
//!
//! Simulated in 1 ms steps. Assumptions, each one a place where a measurement can
//! disagree (and then says which): the round trip is zero (a SYN admitted at t is
//! established at t); the kernel drops a SYN exactly when the queue holds B+1; what the
//! engine has armed in the kernel (`armed_slots`) takes that many connections out of
//! the queue during the stall and then stops; retransmits leave exactly on schedule
//! (no jitter), so connections dropped together come back together.

use super::schedule::SynSchedule;
use super::{Conn, Sample};

/// What is predicted.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Open-loop arrival rate, connections per second.
    pub rate_per_s: f64,
    /// When the stall starts, ms after the first arrival.
    pub stall_at_ms: u64,
    /// How long the acceptor stops, ms.
    pub stall_ms: u64,
    /// listen(2) backlog: the queue holds backlog+1.
    pub backlog: u32,
    /// The acceptor's rate once resumed (and before the stall); `None`: it empties the
    /// queue within the millisecond (much faster than λ).
    pub accept_per_s: Option<f64>,
    /// Connections the engine has armed in the kernel, which leave the queue during the
    /// stall (single-shot accepts in flight; a multishot accept's free CQ entries).
    pub armed_slots: u32,
    /// Connects in flight at most (loadgen's `--concurrency`); later arrivals wait.
    pub concurrency: Option<u32>,
    /// When new arrivals stop, ms.
    pub arrivals_ms: u64,
    /// loadgen's connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// The kernel's SYN retransmit schedule.
    pub schedule: SynSchedule,
}

/// What the model says happens.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Every connection: intended start and (if established) when.
    pub conns: Vec<Conn>,
    /// Queue depth, one sample per ms.
    pub queue: Vec<Sample>,
    /// SYNs (first and retransmitted) dropped on a full queue.
    pub dropped_syns: u64,
    /// Per retransmit (1-based), how many connections were established by it.
    pub waves: Vec<u64>,
    /// Connections that gave up (kernel schedule or connect timeout).
    pub timed_out: u64,
}

struct Client {
    started_ms: u64,
    attempt: u32,
}

impl Scenario {
    /// Runs the model until every connection is established or has given up.
    pub fn predict(&self) -> Prediction {
        let rtx = self.schedule.retransmits_ms();
        let give_up = self.schedule.give_up_ms().min(self.connect_timeout_ms);
        let slots = u64::from(self.backlog) + 1;
        let arrivals = (self.arrivals_ms as f64 * self.rate_per_s / 1000.0).floor() as u64;
        let horizon = self.arrivals_ms + give_up + 1;
        let stall = self.stall_at_ms..self.stall_at_ms + self.stall_ms;
        let mut p = Prediction {
            conns: Vec::with_capacity(arrivals as usize),
            queue: Vec::with_capacity(horizon as usize),
            dropped_syns: 0,
            waves: vec![0; rtx.len()],
            timed_out: 0,
        };
        // Retries due, by ms; waiting (concurrency cap) in arrival order.
        let mut due: Vec<Vec<usize>> = vec![Vec::new(); horizon as usize + 1];
        let mut waiting = std::collections::VecDeque::new();
        let mut clients: Vec<Client> = Vec::with_capacity(arrivals as usize);
        let (mut next, mut queue, mut in_flight, mut credit) = (0u64, 0u64, 0u64, 0.0);
        let mut armed_left = u64::from(self.armed_slots);
        let cap = self.concurrency.map_or(u64::MAX, u64::from);
        for now in 0..=horizon {
            // Retransmits due now, then new arrivals (and those waiting for a slot).
            let mut syns: Vec<usize> = std::mem::take(&mut due[now as usize]);
            while next < arrivals && (next as f64) * 1000.0 / self.rate_per_s < (now + 1) as f64 {
                let intended_ms = next as f64 * 1000.0 / self.rate_per_s;
                clients.push(Client {
                    started_ms: now,
                    attempt: 0,
                });
                p.conns.push(Conn {
                    intended_ns: (intended_ms * 1e6) as u64,
                    done_ns: None,
                });
                waiting.push_back(clients.len() - 1);
                next += 1;
            }
            while in_flight < cap {
                let Some(c) = waiting.pop_front() else { break };
                clients[c].started_ms = now;
                in_flight += 1;
                syns.push(c);
            }
            // The acceptor: stopped (armed operations still take their connections),
            // serving at μ (before this millisecond's SYNs), or at once.
            let stalled = stall.contains(&now);
            if !stalled {
                match self.accept_per_s {
                    None => queue = 0,
                    Some(mu) => {
                        credit += mu / 1000.0;
                        let n = (credit.floor() as u64).min(queue);
                        credit -= n as f64;
                        queue -= n;
                        if queue == 0 {
                            // Idle capacity is not banked beyond this millisecond.
                            credit = credit.min(1.0);
                        }
                    }
                }
            }
            let fast = !stalled && self.accept_per_s.is_none();
            for c in syns {
                if fast || queue < slots {
                    if !fast {
                        queue += 1;
                    }
                    if stalled && armed_left > 0 {
                        armed_left -= 1;
                        queue -= 1;
                    }
                    in_flight -= 1;
                    p.conns[c].done_ns = Some(now * 1_000_000);
                    if clients[c].attempt > 0 {
                        p.waves[clients[c].attempt as usize - 1] += 1;
                    }
                    continue;
                }
                p.dropped_syns += 1;
                let cl = &mut clients[c];
                let retry = rtx
                    .get(cl.attempt as usize)
                    .map(|t| cl.started_ms + t)
                    .filter(|&t| t - cl.started_ms < give_up);
                match retry {
                    Some(t) if t <= horizon => {
                        cl.attempt += 1;
                        due[t as usize].push(c);
                    }
                    _ => {
                        p.timed_out += 1;
                        in_flight -= 1;
                    }
                }
            }
            p.queue.push(Sample {
                t_ns: now * 1_000_000,
                depth: queue as u32,
            });
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::super::{recovery, Criteria, Recovery};
    use super::*;

    fn scenario(backlog: u32, stall_ms: u64) -> Scenario {
        Scenario {
            rate_per_s: 1000.0,
            stall_at_ms: 1000,
            stall_ms,
            backlog,
            accept_per_s: None,
            armed_slots: 0,
            concurrency: None,
            arrivals_ms: 6000,
            connect_timeout_ms: 20_000,
            schedule: SynSchedule {
                retries: 6,
                linear: 4,
            },
        }
    }

    /// The recovery of a predicted run, judged from the resume to the end of arrivals.
    fn recovered(s: &Scenario, p: &Prediction) -> Recovery {
        recovery(
            &p.conns,
            &p.queue,
            (s.stall_at_ms + s.stall_ms) * 1_000_000,
            s.arrivals_ms * 1_000_000,
            &Criteria::new(s.backlog, 0),
        )
    }

    #[test]
    fn a_stall_shorter_than_the_queue_drops_nothing() {
        // 100 arrivals into 129 slots.
        let p = scenario(128, 100).predict();
        assert_eq!(p.dropped_syns, 0);
        assert_eq!(p.timed_out, 0);
        assert!(p.conns.iter().all(|c| c.done_ns.is_some()));
        assert_eq!(p.queue.iter().map(|s| s.depth).max(), Some(100));
    }

    #[test]
    fn dropped_syns_come_back_one_rto_later_and_a_fast_acceptor_takes_them() {
        // 500 arrivals into 9 slots: 491 dropped, all back 1 s later; the queue is
        // empty again then, and an acceptor much faster than 2λ takes every one.
        let s = scenario(8, 500);
        let p = s.predict();
        assert_eq!(p.dropped_syns, 491);
        assert_eq!(p.waves[0], 491);
        assert_eq!(p.waves[1..].iter().sum::<u64>(), 0);
        assert_eq!(p.timed_out, 0);
        let late: Vec<u64> = p
            .conns
            .iter()
            .filter_map(|c| c.done_ns.map(|d| d - c.intended_ns))
            .filter(|&l| l >= 900_000_000)
            .collect();
        assert_eq!(late.len(), 491);
        let r = recovered(&s, &p);
        assert_eq!(r, Recovery::At(0), "new arrivals fine at once");
    }

    #[test]
    fn retries_that_refill_a_slow_acceptors_queue_keep_it_full() {
        // λ = 1000/s, μ = 1100/s, 2 s stall, 9 slots: ~2000 connections retry into a
        // queue that gains only 100/s of headroom; they and the new arrivals are
        // dropped wave after wave, the queue stays full: not recovered within the run.
        let mut s = scenario(8, 2000);
        s.accept_per_s = Some(1100.0);
        s.arrivals_ms = 8000;
        let p = s.predict();
        // More SYNs dropped than connections made: most were dropped more than once.
        assert!(p.dropped_syns > p.conns.len() as u64, "{p:?}");
        assert!(p.waves[1] > 0, "second retransmits needed: {:?}", p.waves);
        let r = recovered(&s, &p);
        assert!(matches!(r, Recovery::NotWithin(_)), "{r:?}");
    }

    #[test]
    fn armed_accepts_and_the_concurrency_cap_are_counted() {
        let mut s = scenario(8, 100);
        s.armed_slots = 91;
        assert_eq!(s.predict().dropped_syns, 0, "9 slots + 91 armed hold 100");
        let mut s = scenario(8, 500);
        s.concurrency = Some(50);
        let p = s.predict();
        // Only 50 connects can be in flight: the rest wait and start late, so fewer
        // SYNs are sent into the full queue, and the waiting ones show as lag.
        assert!(p.dropped_syns <= 50 * 2, "{}", p.dropped_syns);
        assert!(p.conns.iter().all(|c| c.done_ns.is_some()));
    }
}
