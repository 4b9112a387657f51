//! A first-principles prediction of a stall: arrivals at λ into an accept queue of B+1
//! slots, an acceptor that stops for T and then serves at μ (or at once), and SYNs
//! dropped on a full queue that come back on the kernel's retransmit schedule.
//!
//! Simulated in 1 ms steps. Assumptions, each one a place where a measurement can
//! disagree (and then says which): the round trip is zero (a SYN admitted at t is
//! established at t); the kernel drops a SYN exactly when the queue holds B+1, and a
//! SYN a new connection sends is admitted whole; what the engine has armed in the
//! kernel (`armed_slots`) accepts that many connections on its own whenever the
//! application is not accepting (stopped, or busy with a connection) — they wait
//! accepted, in the engine's ring, and the application takes them first, at its own
//! rate, before what is left in the queue; the acceptor takes connections first in,
//! first out; a retransmit leaves when the
//! kernel's timer wheel fires it ([`TimerWheel`]: its timeout rounded up to the wheel's
//! granularity, 32 ms for a 1 s timeout at HZ=250), so the SYNs dropped within one
//! granule come back in one batch, handled in one softirq: each of them passes the
//! queue check against the queue as the batch found it (SYN cookies answer those the
//! SYN queue cannot hold), all their handshakes complete on the client, and the final
//! ACKs beyond the free slots meet a full queue and are dropped — connections the
//! client holds and the acceptor never gets (*client-only*; loadgen closes them at
//! once, so they are lost); a new connection's handshake runs through on its own. Open
//! loop: arrivals every 1/λ whatever happens; closed loop: a connector starts its next
//! connection when its last one is done, at most λ per second (the client's own
//! speed), and a connection's lag counts from its connect().

use std::collections::VecDeque;

use super::schedule::{SynSchedule, TimerWheel};
use super::{Conn, Sample};

/// What is predicted.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Arrival rate, connections per second (closed loop: the client's top speed).
    pub rate_per_s: f64,
    /// When the stall starts, ms after the first arrival.
    pub stall_at_ms: u64,
    /// How long the acceptor stops, ms.
    pub stall_ms: u64,
    /// listen(2) backlog as the kernel applied it: the queue holds backlog+1.
    pub backlog: u32,
    /// The acceptor's rate once resumed (and before the stall); `None`: it empties the
    /// queue within the millisecond (much faster than λ).
    pub accept_per_s: Option<f64>,
    /// Connections the engine accepts in the kernel while its application is not
    /// accepting, held until the application takes them (single-shot accepts in flight;
    /// a multishot accept's CQ entries).
    pub armed_slots: u32,
    /// Connects in flight at most (loadgen's `--concurrency`); later arrivals wait
    /// (open loop) or are not made yet (closed loop: the connectors).
    pub concurrency: Option<u32>,
    /// Closed loop instead of open loop.
    pub closed_loop: bool,
    /// When new arrivals stop, ms.
    pub arrivals_ms: u64,
    /// loadgen's connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// The kernel's SYN retransmit schedule.
    pub schedule: SynSchedule,
    /// When the kernel's timers really fire; None: exactly on time, one by one.
    pub wheel: Option<TimerWheel>,
}

/// What the model says happens.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Every connection: intended start and when the acceptor held it (`None`: never
    /// held — it gave up, or it is client-only).
    pub conns: Vec<Conn>,
    /// Queue depth, one sample per ms.
    pub queue: Vec<Sample>,
    /// SYNs (first and retransmitted) dropped on a full queue.
    pub dropped_syns: u64,
    /// SYNs dropped while the acceptor was stopped.
    pub dropped_in_stall: u64,
    /// Per retransmit (1-based), how many connections completed their handshake on the
    /// client by it (client-only ones included).
    pub waves: Vec<u64>,
    /// Connections that gave up (kernel schedule or connect timeout; also a connection
    /// still retrying when the simulation ends, arrivals' end + the give-up time, which
    /// only one held back that long by the concurrency cap can be).
    pub timed_out: u64,
    /// Connections armed operations took out of the queue during the stall.
    pub armed_taken: u64,
    /// Connections established on the client whose final ACK met a full queue.
    pub client_only: u64,
}

struct Client {
    started_ms: u64,
    attempt: u32,
}

/// The simulation's state between milliseconds.
struct Sim<'s> {
    s: &'s Scenario,
    p: Prediction,
    clients: Vec<Client>,
    /// Admitted, not yet taken by the acceptor, first in first out.
    queue: VecDeque<usize>,
    /// Accepted by armed operations, waiting for the application, first in first out.
    ring: VecDeque<usize>,
    /// Waiting for a free connect slot (open loop), in arrival order.
    waiting: VecDeque<usize>,
    /// Retries due, by ms.
    due: Vec<Vec<usize>>,
    in_flight: u64,
    /// Arrivals owed (fractional), and the acceptor's unused capacity.
    arrival_credit: f64,
    serve_credit: f64,
}

impl Scenario {
    /// Runs the model until every connection is held or has given up.
    pub fn predict(&self) -> Prediction {
        let horizon = self.arrivals_ms + self.give_up_ms() + 1;
        let mut sim = Sim {
            s: self,
            p: Prediction {
                conns: Vec::new(),
                queue: Vec::with_capacity(horizon as usize + 1),
                dropped_syns: 0,
                dropped_in_stall: 0,
                waves: vec![0; self.schedule.retries as usize],
                timed_out: 0,
                armed_taken: 0,
                client_only: 0,
            },
            clients: Vec::new(),
            queue: VecDeque::new(),
            ring: VecDeque::new(),
            waiting: VecDeque::new(),
            due: vec![Vec::new(); horizon as usize + 1],
            in_flight: 0,
            arrival_credit: 0.0,
            serve_credit: 0.0,
        };
        for now in 0..=horizon {
            sim.step(now);
        }
        sim.p
    }

    /// When a client gives up, ms after its connect(): the kernel's schedule or the
    /// connect timeout, whichever is first.
    fn give_up_ms(&self) -> u64 {
        self.schedule.give_up_ms().min(self.connect_timeout_ms)
    }

    fn stalled(&self, now: u64) -> bool {
        (self.stall_at_ms..self.stall_at_ms + self.stall_ms).contains(&now)
    }
}

impl Sim<'_> {
    /// One millisecond: retransmits due and new arrivals send their SYNs, the acceptor
    /// serves (unless stopped), the SYNs meet the queue.
    fn step(&mut self, now: u64) {
        let s = self.s;
        let batch: Vec<usize> = std::mem::take(&mut self.due[now as usize]);
        let stalled = s.stalled(now);
        if !stalled {
            self.serve(now);
        }
        self.retransmits(batch, now, stalled);
        let fast = !stalled && s.accept_per_s.is_none();
        let slots = u64::from(s.backlog) + 1;
        if s.closed_loop && now < s.arrivals_ms {
            self.arrival_credit += s.rate_per_s / 1000.0;
        }
        // A closed loop's connector whose connection got in at once starts its next one
        // within the same millisecond, as far as the client's speed allows.
        loop {
            let mut syns = Vec::new();
            self.arrive(now, &mut syns);
            if syns.is_empty() {
                break;
            }
            for c in syns {
                if fast || (self.queue.len() as u64) < slots {
                    self.admitted(c, now, stalled, fast);
                    continue;
                }
                self.dropped(c, now, stalled);
            }
            if !s.closed_loop {
                break;
            }
        }
        if s.closed_loop {
            // A connector that is not free now loses its turn: no backlog of arrivals.
            self.arrival_credit = self.arrival_credit.min(1.0);
        }
        self.p.queue.push(Sample {
            t_ns: now * 1_000_000,
            depth: self.queue.len() as u32,
        });
    }

    /// The retransmits one timer bucket fires together: dropped whole when the queue
    /// is full as they find it; otherwise every handshake completes, the free slots
    /// take the first ones and the rest are client-only. A fast acceptor cannot empty
    /// the queue within the batch's softirq, so its free slots are the queue's.
    fn retransmits(&mut self, batch: Vec<usize>, now: u64, stalled: bool) {
        let slots = u64::from(self.s.backlog) + 1;
        let depth = self.queue.len() as u64;
        if depth >= slots {
            for c in batch {
                self.dropped(c, now, stalled);
            }
            return;
        }
        let mut free = slots - depth;
        let fast = !stalled && self.s.accept_per_s.is_none();
        for c in batch {
            if free == 0 {
                self.in_flight -= 1;
                self.p.client_only += 1;
                // Established on the client by this retransmit all the same.
                self.p.waves[self.clients[c].attempt as usize - 1] += 1;
                continue;
            }
            free -= 1;
            self.admitted(c, now, stalled, false);
        }
        if fast {
            self.serve(now);
        }
    }

    fn dropped(&mut self, c: usize, now: u64, stalled: bool) {
        self.p.dropped_syns += 1;
        if stalled {
            self.p.dropped_in_stall += 1;
        }
        self.retry(c, now);
    }

    /// New connections whose time has come (open loop: every 1/λ until the arrivals
    /// end; closed loop: as connectors free up, at most λ per second).
    fn arrive(&mut self, now: u64, syns: &mut Vec<usize>) {
        let s = self.s;
        let cap = s.concurrency.map_or(u64::MAX, u64::from);
        let gap_ms = 1000.0 / s.rate_per_s;
        loop {
            let intended_ms = if s.closed_loop {
                let free = self.in_flight + (self.waiting.len() as u64) < cap;
                if self.arrival_credit < 1.0 || !free {
                    break;
                }
                self.arrival_credit -= 1.0;
                now as f64
            } else {
                let t = self.clients.len() as f64 * gap_ms;
                if t >= (now + 1) as f64 || t >= s.arrivals_ms as f64 {
                    break;
                }
                t
            };
            self.clients.push(Client {
                started_ms: now,
                attempt: 0,
            });
            self.p.conns.push(Conn {
                intended_ns: (intended_ms * 1e6) as u64,
                done_ns: None,
            });
            self.waiting.push_back(self.clients.len() - 1);
        }
        while self.in_flight < cap {
            let Some(c) = self.waiting.pop_front() else {
                break;
            };
            self.clients[c].started_ms = now;
            self.in_flight += 1;
            syns.push(c);
        }
    }

    /// The acceptor takes what its rate allows this millisecond (all of it when fast):
    /// first what armed operations accepted for it, then the queue; the armed
    /// operations then take from the queue what their room allows.
    fn serve(&mut self, now: u64) {
        let waiting = self.ring.len() + self.queue.len();
        let n = match self.s.accept_per_s {
            None => waiting,
            Some(mu) => {
                self.serve_credit += mu / 1000.0;
                let n = (self.serve_credit.floor() as usize).min(waiting);
                self.serve_credit -= n as f64;
                if waiting == n {
                    // Idle capacity is not banked beyond this millisecond.
                    self.serve_credit = self.serve_credit.min(1.0);
                }
                n
            }
        };
        for _ in 0..n {
            if let Some(c) = self.ring.pop_front().or_else(|| self.queue.pop_front()) {
                self.held(c, now);
            }
        }
        self.refill_ring(false);
    }

    /// Armed operations accept from the queue into the engine's ring while there is room.
    fn refill_ring(&mut self, stalled: bool) {
        while self.ring.len() < self.s.armed_slots as usize {
            let Some(c) = self.queue.pop_front() else {
                break;
            };
            self.ring.push_back(c);
            if stalled {
                self.p.armed_taken += 1;
            }
        }
    }

    /// A SYN that found room: established now; held now (fast acceptor), or accepted by
    /// an armed operation into the engine's ring if it has room, else queued.
    fn admitted(&mut self, c: usize, now: u64, stalled: bool, fast: bool) {
        self.in_flight -= 1;
        if self.clients[c].attempt > 0 {
            self.p.waves[self.clients[c].attempt as usize - 1] += 1;
        }
        if fast {
            self.held(c, now);
        } else {
            self.queue.push_back(c);
            self.refill_ring(stalled);
        }
    }

    fn held(&mut self, c: usize, now: u64) {
        self.p.conns[c].done_ns = Some(now * 1_000_000);
    }

    /// A dropped SYN: its next retransmit, when the wheel fires it; or the client gives
    /// up (the kernel after its last retransmit's timeout, loadgen at its timeout).
    fn retry(&mut self, c: usize, now: u64) {
        let s = self.s;
        let cl = &mut self.clients[c];
        let timeout_ms = s.schedule.timeout_ms(cl.attempt);
        let next = match s.wheel {
            Some(w) => w.fires_at(now * 1_000_000, timeout_ms * 1_000_000) / 1_000_000,
            None => now + timeout_ms,
        };
        let gives_up = cl.attempt >= s.schedule.retries
            || next - cl.started_ms >= s.connect_timeout_ms
            || next as usize >= self.due.len();
        if gives_up {
            self.p.timed_out += 1;
            self.in_flight -= 1;
        } else {
            cl.attempt += 1;
            self.due[next as usize].push(c);
        }
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
            closed_loop: false,
            arrivals_ms: 6000,
            connect_timeout_ms: 20_000,
            schedule: SynSchedule {
                retries: 6,
                linear: 4,
            },
            wheel: None,
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
        // Dropped again and again: more drops and lost handshakes than the stall's
        // 2000 arrivals, and second retransmits needed.
        assert!(
            p.dropped_syns + p.client_only > 4000,
            "{} + {}",
            p.dropped_syns,
            p.client_only
        );
        assert!(p.waves[1] > 0, "second retransmits needed: {:?}", p.waves);
        let r = recovered(&s, &p);
        assert!(matches!(r, Recovery::NotWithin(_)), "{r:?}");
    }

    #[test]
    fn retransmits_fired_by_one_wheel_bucket_overflow_even_an_empty_queue() {
        // 500 ms stall into 9 slots at 1000/s, fast acceptor, HZ=250: the 491 SYNs
        // dropped come back in 32 ms batches of ~32; each batch finds the queue empty,
        // 9 get in, the rest complete their handshake on the client only.
        let mut s = scenario(8, 500);
        s.wheel = Some(TimerWheel {
            jiffy_ns: 4_000_000,
        });
        let p = s.predict();
        assert_eq!(p.dropped_in_stall, 491);
        // 500 ms over 32 ms buckets: 16 or 17 of them, partly filled at the ends.
        assert!(
            (491 - 9 * 17..=491 - 9 * 15).contains(&p.client_only),
            "client-only {}",
            p.client_only
        );
        assert_eq!(p.waves[0], 491, "every one established on the client by it");
        // Without the wheel they come back one by one and all get in.
        s.wheel = None;
        assert_eq!(s.predict().client_only, 0);
    }

    #[test]
    fn a_closed_loop_refills_the_queue_and_each_connector_waits_one_retransmit() {
        // 16 connectors at up to 20000/s, 500 ms stall, 9 slots: the queue fills at
        // once, each connector's next SYN is dropped once and gets in 1 s later.
        let mut s = scenario(8, 500);
        s.closed_loop = true;
        s.rate_per_s = 20_000.0;
        s.concurrency = Some(16);
        s.arrivals_ms = 3000;
        let p = s.predict();
        assert_eq!(p.dropped_in_stall, 16);
        assert_eq!(p.waves[0], 16);
        // Before the stall the client ran at its own speed (20 per ms).
        let before = p
            .conns
            .iter()
            .filter(|c| c.intended_ns < 1_000_000_000)
            .count();
        assert!((19_000..=20_000).contains(&before), "{before}");
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
