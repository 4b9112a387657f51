//! How an engine run is timed — the same for every engine, in the sweep, `listen` and
//! the benches.
//!
//! The clock starts when the acceptor is *released*: immediately before its first
//! accept call or submit, which every engine marks itself ([`Recorder::mark_release`])
//! after its per-run preparation (tokio-uring builds its runtime in every `run`; tokio
//! registers the listener; std sets its receive timeout). It must
//! not start at the first accept the application sees: a multishot accept empties
//! much of the queue inside the kernel before its first completion arrives, and
//! timing from that completion overstated its drain rate ×1.5.
//!
//! A connection is done when it is closed. The window ends at the later of the last
//! peer held and the last close completed: with `DEFER_TASKRUN` `uring-linked`'s
//! linked closes complete mostly after its last peer is held, and a window that
//! stopped at the last peer left out work the acceptor still had to do. The time to
//! the last peer held is kept as a figure of its own ([`Timed::peer_span_ns`]: how
//! soon the application knows every client), never as the throughput. CPU is the
//! acceptor thread's own (CLOCK_THREAD_CPUTIME_ID) from release to the instant the
//! engine marked its work done ([`Recorder::mark_done`]: limits reached and every
//! close completed, before its stop's cancel or teardown) — the same window.

use crate::engine::{Acceptor, EngineError, Limits};
use crate::listener::Listener;
use crate::record::Recorder;

/// One timed engine run.
#[derive(Debug)]
pub struct Timed {
    /// CLOCK_MONOTONIC ns at release.
    pub released_ns: u64,
    /// Connections accepted by this call.
    pub accepted: u64,
    /// Connections closed by this call (= accepted, plus any whose peer could not be read).
    pub closed: u64,
    /// CLOCK_MONOTONIC ns when this call's last peer was held (0 if none).
    pub last_held_ns: u64,
    /// CLOCK_MONOTONIC ns when this call's last close completed (0 if none).
    pub last_closed_ns: u64,
    /// Acceptor thread CPU from release to the end of the engine's work, s.
    pub cpu_s: f64,
    /// The acceptor thread's CPU clock at release, s.
    pub cpu_at_release_s: f64,
    /// The acceptor thread's use of the kernel over the same window: user/kernel CPU,
    /// context switches, and (where perf counts) system calls and io_uring enters.
    pub usage: crate::kernel::perf::UsageDelta,
    /// The engine's result.
    pub result: Result<(), EngineError>,
}

impl Timed {
    /// The window's end: the later of the last peer held and the last close completed.
    pub fn end_ns(&self) -> u64 {
        self.last_held_ns.max(self.last_closed_ns)
    }

    /// Release → the window's end, ns (0 when nothing was accepted).
    pub fn span_ns(&self) -> u64 {
        if self.accepted == 0 {
            0
        } else {
            self.end_ns().saturating_sub(self.released_ns)
        }
    }

    /// Release → the last peer held, ns (0 when nothing was accepted): how soon the
    /// application knew every client; not a throughput window.
    pub fn peer_span_ns(&self) -> u64 {
        if self.accepted == 0 {
            0
        } else {
            self.last_held_ns.saturating_sub(self.released_ns)
        }
    }
}

/// Releases `engine` on `listener` and times it from release to its last close.
pub fn timed_run(
    engine: &mut dyn Acceptor,
    listener: &Listener,
    limits: &Limits,
    rec: &mut Recorder,
) -> Timed {
    let (accepted0, closed0) = (rec.accepted, rec.closed);
    let _ = rec.take_done();
    let _ = rec.take_release();
    let c0 = common::affinity::thread_cpu_total_s();
    let called_ns = common::clock::mono_ns();
    let u0 = rec.usage_now();
    let result = engine.run(listener, limits, rec);
    // The engine's own release mark, just before its first accept call or submit (after
    // its per-run preparation); an engine that left none is released at the call.
    let (released_ns, c0, u0) = rec
        .take_release()
        .map_or((called_ns, c0, u0), |r| (r.ns, r.cpu_s, r.usage));
    // An engine that ended on an error may have left no mark: then its CPU runs to here.
    let (c1, u1) = match rec.take_done() {
        Some(d) => (d.cpu_s, d.usage),
        None => (common::affinity::thread_cpu_total_s(), rec.usage_end()),
    };
    let accepted = rec.accepted - accepted0;
    let closed = rec.closed - closed0;
    Timed {
        released_ns,
        accepted,
        closed,
        last_held_ns: if accepted > 0 { rec.last_decoded_ns } else { 0 },
        last_closed_ns: if closed > 0 { rec.last_closed_ns } else { 0 },
        cpu_s: (c1 - c0).max(0.0),
        cpu_at_release_s: c0,
        usage: u1.since(&u0),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineKind, StopFlag};
    use crate::listener::ListenerSpec;
    use std::time::Duration;

    /// An engine that, like a multishot accept, does its first batch before the
    /// application sees any completion: it works 30 ms, then reports 100 accepts.
    struct LateFirstCompletion;

    impl Acceptor for LateFirstCompletion {
        fn kind(&self) -> EngineKind {
            EngineKind::Multishot
        }
        fn run(
            &mut self,
            _listener: &Listener,
            _limits: &Limits,
            rec: &mut Recorder,
        ) -> Result<(), EngineError> {
            std::thread::sleep(Duration::from_millis(30));
            for port in 0..100u16 {
                let now = common::clock::mono_ns();
                rec.accepted(([127, 0, 0, 2], 1000 + port).into(), now, now);
            }
            Ok(())
        }
    }

    /// An engine that, like `uring-linked` with DEFER_TASKRUN, holds every peer first
    /// and completes the closes afterwards: 100 peers at once, then 30 ms of closing.
    struct ClosesAfterLastPeer;

    impl Acceptor for ClosesAfterLastPeer {
        fn kind(&self) -> EngineKind {
            EngineKind::UringLinked
        }
        fn run(
            &mut self,
            _listener: &Listener,
            _limits: &Limits,
            rec: &mut Recorder,
        ) -> Result<(), EngineError> {
            for port in 0..100u16 {
                let now = common::clock::mono_ns();
                rec.accepted(([127, 0, 0, 2], 1000 + port).into(), now, now);
            }
            // 30 ms of this thread's own CPU (not of wall time: on a busy machine the
            // thread may get less than all of it).
            let cpu_until = common::affinity::thread_cpu_total_s() + 0.030;
            while common::affinity::thread_cpu_total_s() < cpu_until {
                std::hint::spin_loop();
            }
            for _ in 0..100 {
                rec.close_done(common::clock::mono_ns());
            }
            rec.mark_done();
            // The stop's teardown: after the work, outside the window.
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        }
    }

    fn listener() -> Listener {
        Listener::bind(&ListenerSpec {
            addr: ([127, 0, 0, 1], 0).into(),
            backlog: 8,
            reuse_port: false,
            dual_stack: false,
        })
        .unwrap()
    }

    #[test]
    fn closes_after_the_last_peer_are_inside_the_window_and_its_cpu() {
        let limits = Limits {
            count: Some(100),
            deadline: None,
            stop: StopFlag::new(),
        };
        let mut rec = Recorder::new(true);
        let t = timed_run(&mut ClosesAfterLastPeer, &listener(), &limits, &mut rec);
        t.result.as_ref().unwrap();
        assert_eq!((t.accepted, t.closed), (100, 100));
        assert!(t.peer_span_ns() < 10_000_000, "peers held at once");
        assert!(
            t.span_ns() >= 30_000_000,
            "to the last close: {} ns",
            t.span_ns()
        );
        // The 30 ms of closing is CPU inside the window; the 300 ms sleep after the mark
        // is neither.
        assert!(t.cpu_s >= 0.025, "cpu {} s", t.cpu_s);
        assert!(
            t.cpu_s * 1e9 <= t.span_ns() as f64 * 1.05 + 1e6,
            "CPU {} s over a {} ns window on one thread",
            t.cpu_s,
            t.span_ns()
        );
        assert!(
            t.span_ns() < 250_000_000,
            "the teardown is outside: {}",
            t.span_ns()
        );
    }

    #[test]
    fn a_late_first_completion_is_still_timed_from_release() {
        let limits = Limits {
            count: Some(100),
            deadline: None,
            stop: StopFlag::new(),
        };
        let mut rec = Recorder::new(true);
        let t = timed_run(&mut LateFirstCompletion, &listener(), &limits, &mut rec);
        t.result.as_ref().unwrap();
        assert_eq!(t.accepted, 100);
        // Timing from the first completion would give well under a millisecond.
        let first_to_last = rec.last_accept_ns - rec.first_accept_ns;
        assert!(first_to_last < 10_000_000, "{first_to_last}");
        assert!(t.span_ns() >= 30_000_000, "span {} ns", t.span_ns());
        assert!(t.released_ns < rec.first_accept_ns);
    }
}
