//! How an engine run is timed — the same for every engine, in the sweep and in the
//! criterion bench.
//!
//! The clock starts when the acceptor is *released*: immediately before its `run`
//! is called, which is immediately before its first accept call or submit; it stops
//! when the last peer is held (decoded), which for `uring-linked` is one completion
//! after the accept's. It must
//! not start at the first accept the application sees: a multishot accept empties
//! much of the queue inside the kernel before its first completion arrives, and
//! timing from that completion overstated its drain rate ×1.5. CPU is the acceptor
//! thread's own (CLOCK_THREAD_CPUTIME_ID) over the same call.

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
    /// CLOCK_MONOTONIC ns when this call's last peer was held (0 if none).
    pub last_held_ns: u64,
    /// Acceptor thread CPU used by the call, s.
    pub cpu_s: f64,
    /// The engine's result.
    pub result: Result<(), EngineError>,
}

impl Timed {
    /// Release → last peer held, ns (0 when nothing was accepted).
    pub fn span_ns(&self) -> u64 {
        if self.accepted == 0 {
            0
        } else {
            self.last_held_ns.saturating_sub(self.released_ns)
        }
    }
}

/// Releases `engine` on `listener` and times it from release to its last peer held.
pub fn timed_run(
    engine: &mut dyn Acceptor,
    listener: &Listener,
    limits: &Limits,
    rec: &mut Recorder,
) -> Timed {
    let before = rec.accepted;
    let c0 = common::affinity::thread_cpu_total_s();
    let released_ns = common::clock::mono_ns();
    let result = engine.run(listener, limits, rec);
    let cpu_s = common::affinity::thread_cpu_total_s() - c0;
    let accepted = rec.accepted - before;
    Timed {
        released_ns,
        accepted,
        last_held_ns: if accepted > 0 { rec.last_decoded_ns } else { 0 },
        cpu_s,
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

    #[test]
    fn a_late_first_completion_is_still_timed_from_release() {
        let listener = Listener::bind(&ListenerSpec {
            addr: ([127, 0, 0, 1], 0).into(),
            backlog: 8,
            reuse_port: false,
            dual_stack: false,
        })
        .unwrap();
        let limits = Limits {
            count: Some(100),
            deadline: None,
            stop: StopFlag::new(),
        };
        let mut rec = Recorder::new(true);
        let t = timed_run(&mut LateFirstCompletion, &listener, &limits, &mut rec);
        t.result.as_ref().unwrap();
        assert_eq!(t.accepted, 100);
        // Timing from the first completion would give well under a millisecond.
        let first_to_last = rec.last_accept_ns - rec.first_accept_ns;
        assert!(first_to_last < 10_000_000, "{first_to_last}");
        assert!(t.span_ns() >= 30_000_000, "span {} ns", t.span_ns());
        assert!(t.released_ns < rec.first_accept_ns);
    }
}
