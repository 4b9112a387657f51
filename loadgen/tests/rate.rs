//! Rate mode keeps its schedule when the server keeps up. Its own test binary, so other
//! tests do not compete with it for the CPU.

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{closed, AcceptLoop};
use loadgen::{run_with, Mode, Quiet};

#[test]
fn rate_mode_keeps_its_schedule() {
    let server = AcceptLoop::start();
    let mut c = closed(server.addr, 1);
    c.connections = None;
    c.mode = Mode::Rate { rate_per_s: 2000.0 };
    c.duration = Some(Duration::from_secs(1));
    c.concurrency = 256;
    c.keep_records = true;
    let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
    let r = &out.report;
    assert!(r.counts_add_up());
    assert_eq!(r.errors.total(), 0, "{r:?}");
    // The schedule holds exactly 2000 starts in 1 s; they must all happen, and the starts
    // must span the second at the asked rate (within 5%).
    assert!((1900..=2100).contains(&r.attempted), "{r:?}");
    let first = out
        .records
        .iter()
        .map(|x| x.connect_start_ns)
        .min()
        .expect("records");
    let last = out
        .records
        .iter()
        .map(|x| x.connect_start_ns)
        .max()
        .expect("records");
    let start_rate = (out.records.len() - 1) as f64 / ((last - first) as f64 / 1e9);
    assert!(
        (start_rate - 2000.0).abs() / 2000.0 < 0.05,
        "start rate {start_rate}: {r:?}"
    );
    // Latency counts from the intended start, so every one is ≥ its schedule lag.
    for x in &out.records {
        assert!(x.intended_ns <= x.connect_start_ns && x.connect_start_ns <= x.done_ns);
    }
    let lag = r.schedule_lag_ns.expect("rate mode reports lag");
    assert_eq!(lag.count, r.attempted);
}
