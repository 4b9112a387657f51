//! Mode stall against the kernel: a stall the queue absorbs drops nothing, one far
//! beyond it drops SYNs that come back at the kernel's first retransmit, and a slow
//! acceptor that retries keep behind is reported as not recovered — each measured
//! beside the model's prediction. Each run is in a private network namespace (root);
//! without it they skip and say why.

mod support;

use std::path::PathBuf;

use acceptbench::report::stall::{self, StallRow};
use acceptbench::stall::schedule::SynSchedule;

/// Runs `acceptbench sweep --modes stall --engines std ARGS` into a fresh directory;
/// returns (run dir, stall rows).
fn stall_sweep(name: &str, args: &[&str]) -> (PathBuf, Vec<StallRow>) {
    // One at a time: their acceptors are pinned to the same CPU.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = vec![
        "--repeat",
        "1",
        "--modes",
        "stall",
        "--engines",
        "std",
        "--no-plots",
        "--quiet",
        "--stall-at",
        "500ms",
    ];
    all.extend_from_slice(args);
    let dir = support::sweep_into(&format!("stall-{name}"), &all);
    let rows = stall::read(&dir.join("stall.csv")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "ok", "{:?}", rows[0]);
    (dir, rows)
}

fn cleanup(dir: &std::path::Path) {
    support::remove_run(dir);
}

/// Within 20% or `slack` of each other.
fn close(a: f64, b: f64, slack: f64) -> bool {
    (a - b).abs() <= slack || (b > 0.0 && (a / b - 1.0).abs() <= 0.2)
}

#[test]
fn a_stall_the_queue_absorbs_drops_nothing_and_recovers_at_once() {
    require_root!();
    // 100 ms at 1000/s: ~100 arrivals into 513 slots.
    let (dir, rows) = stall_sweep(
        "absorbed",
        &[
            "--backlogs",
            "512",
            "--stall",
            "100ms",
            "--stall-load",
            "rate:1000",
            "--stall-after",
            "1s",
        ],
    );
    let r = &rows[0];
    assert!((95..=105).contains(&r.arrivals_in_stall), "{r:?}");
    assert!(
        r.stall_actual_ms >= 100.0 && r.stall_actual_ms < 130.0,
        "{r:?}"
    );
    assert_eq!(r.dropped, Some(0), "{r:?}");
    assert_eq!(r.dropped_pred, Some(0));
    assert_eq!((r.client_only, r.timed_out, r.pending), (0, 0, 0));
    assert_eq!(r.held, r.arrivals, "every connection held");
    assert!(r.waves.is_empty(), "no retransmit needed: {}", r.waves);
    // The queue held what arrived during the stall.
    assert!(r.queue_at_resume >= 90, "{r:?}");
    assert_eq!(r.recover_ms, Some(0.0), "{r:?}");
    assert_eq!(r.recover_ms_pred, Some(0.0));
    assert_eq!(r.verdict, "agrees");
    // The stall's wait shows in its connections' lag, and nowhere else.
    assert!(r.lag_p99_ms > 50.0 && r.lag_p99_ms < 150.0, "{r:?}");
    let timeline =
        stall::read_timeline(&dir.join("stall").join(stall::worst_timeline_name(r))).unwrap();
    let arrivals: u64 = timeline.iter().map(|b| u64::from(b.arrivals)).sum();
    let held: u64 = timeline.iter().map(|b| u64::from(b.held)).sum();
    assert_eq!((arrivals, held), (r.arrivals, r.held));
    cleanup(&dir);
}

#[test]
fn a_stall_far_beyond_the_queue_drops_syns_that_return_at_the_first_retransmit() {
    require_root!();
    // 500 ms at 1000/s: ~500 arrivals into 65 slots.
    let (dir, rows) = stall_sweep(
        "dropped",
        &[
            "--backlogs",
            "64",
            "--stall",
            "500ms",
            "--stall-after",
            "2s",
        ],
    );
    let r = &rows[0];
    let beyond = r.arrivals_in_stall - 65;
    let dropped = r.dropped.expect("TcpExt readable in the run's namespace");
    assert!(close(dropped as f64, beyond as f64, 15.0), "{r:?}");
    // Every one of them came back with the kernel's first retransmit: the wave is
    // named by the schedule of the running kernel's sysctls (1 s on every kernel).
    let first = SynSchedule::of_running_kernel().unwrap().retransmits_ms()[0];
    assert_eq!(first, 1000);
    let (at, n) = r.waves.split(';').next().unwrap().split_once(':').unwrap();
    assert_eq!(at, "1s", "{r:?}");
    assert!(close(n.parse().unwrap(), beyond as f64, 15.0), "{r:?}");
    assert!(r.lag_p99_ms > 950.0 && r.lag_p99_ms < 1300.0, "{r:?}");
    // Recovery within the prediction's tolerance (20%, or 100 ms).
    let (m, p) = (r.recover_ms.expect("recovered"), r.recover_ms_pred.unwrap());
    assert!(close(m, p, 100.0), "measured {m} ms, predicted {p} ms");
    assert!(
        close(dropped as f64, r.dropped_pred.unwrap() as f64, 10.0),
        "{r:?}"
    );
    cleanup(&dir);
}

#[test]
fn retries_that_keep_a_slow_acceptor_behind_are_not_recovered() {
    require_root!();
    // μ ≈ 1.11 λ: a 2 s stall leaves ~2000 connections queued or retrying, which the
    // acceptor's 111/s of headroom cannot clear before the arrivals end.
    let (dir, rows) = stall_sweep(
        "behind",
        &[
            "--backlogs",
            "512",
            "--stall",
            "2s",
            "--accept-delay",
            "900us",
            "--stall-after",
            "2s",
            "--connect-timeout",
            "3s",
        ],
    );
    let r = &rows[0];
    assert!(!r.recovered, "{r:?}");
    assert_eq!(r.recover_ms, None);
    assert_eq!(r.recovered_pred, Some(false), "the model agrees: {r:?}");
    assert!(r.dropped.unwrap() > 500, "{r:?}");
    assert!(close(r.accept_per_s.unwrap(), 1111.0, 1.0), "{r:?}");
    cleanup(&dir);
}
