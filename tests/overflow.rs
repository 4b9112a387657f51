//! Backlog overflow, checked against the kernel facts the tool relies on, with our
//! own measurement (queue sampler, TcpExt counters, client outcomes). Each run is in
//! a private network namespace, so these need root; without it they skip and say why.

mod support;

use std::path::{Path, PathBuf};

use acceptbench::report::{csv, meta::Meta, row::SummaryRow};

/// Runs `acceptbench sweep --modes burst ARGS` into a fresh directory; returns (run dir, rows).
fn burst_sweep(name: &str, args: &[&str]) -> (PathBuf, Vec<SummaryRow>) {
    let mut all = vec![
        "--repeat",
        "1",
        "--modes",
        "burst",
        "--no-plots",
        "--pause",
        "300ms",
    ];
    all.extend_from_slice(args);
    let dir = support::sweep_into(&format!("ovf-{name}"), &all);
    let rows = csv::read(&dir.join("summary.csv")).unwrap();
    (dir, rows)
}

fn cleanup(dir: &Path) {
    support::remove_run(dir);
}

#[test]
fn a_full_queue_holds_backlog_plus_one_and_turns_the_rest_away() {
    require_root!();
    let (dir, rows) = burst_sweep(
        "facts",
        &[
            "--engines",
            "std",
            "--backlogs",
            "1,8,64",
            "--connect-timeout",
            "4s",
        ],
    );
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let b = r.backlog as u64;
        let n = 4 * b + 16;
        assert_eq!(r.netns, "private", "{r:?}");
        assert_eq!(r.attempted, n, "{r:?}");
        // The accept queue holds backlog+1 (the kernel tests len > max).
        assert_eq!(r.queue_limit, Some(r.backlog), "{r:?}");
        assert_eq!(r.queue_max, Some(r.backlog + 1), "{r:?}");
        // While the acceptor was paused, every connect beyond backlog+1 was turned away.
        assert_eq!(r.listen_overflows_paused, Some(n - (b + 1)), "{r:?}");
        assert!(r.listen_overflows.unwrap() >= n - (b + 1), "{r:?}");
        assert_eq!(r.established_immediately, Some(b + 1), "{r:?}");
        // Dropped SYNs are retried by the client: they show up as retry modes.
        let outcome = r.overflow_outcome.as_deref().unwrap();
        assert!(outcome.starts_with("syn-dropped"), "{r:?}");
        assert_eq!(
            outcome.contains("ack-dropped"),
            r.unmatched_client > 0,
            "{r:?}"
        );
        assert!(
            r.syn_retry_modes
                .as_deref()
                .is_some_and(|m| m.contains("1.0s:")),
            "{r:?}"
        );
        // Nothing the queue held is lost: every connection established during the
        // burst was accepted once, with its own peer address, after the acceptor resumed.
        assert!(r.matched > b, "{r:?}");
        assert_eq!(r.matched, r.accepted, "{r:?}");
        assert_eq!(r.unmatched_server + r.unknown_peer, 0, "{r:?}");
        // Retried SYNs that arrive together can overflow the queue again after it
        // resumed; with syncookies the client then believes it is connected while the
        // server dropped the final ACK. The join counts those; each one is an overflow
        // the counters saw after the pause.
        assert_eq!(r.matched + r.unmatched_client, r.established, "{r:?}");
        let after_pause = r.listen_overflows.unwrap() - r.listen_overflows_paused.unwrap();
        assert!(r.unmatched_client <= after_pause, "{r:?}");
        assert_eq!(
            r.established + r.timeout + r.pending + r.refused + r.reset + r.client_other_errors,
            r.attempted,
            "{r:?}"
        );
        assert!(r.drain_ms.is_some(), "{r:?}");
        let queue = dir.join("queue").join(format!("std-b{b}-burst.csv"));
        let text = std::fs::read_to_string(&queue).unwrap();
        let max_in_csv = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse::<u32>().unwrap())
            .max()
            .unwrap();
        assert_eq!(max_in_csv, r.backlog + 1);
    }
    cleanup(&dir);
}

#[test]
fn a_burst_smaller_than_the_backlog_never_overflows() {
    require_root!();
    let (dir, rows) = burst_sweep(
        "fits",
        &[
            "--engines",
            "std",
            "--backlogs",
            "1024",
            "--burst-size",
            "500",
        ],
    );
    let r = &rows[0];
    assert_eq!(r.attempted, 500);
    assert_eq!(r.listen_overflows, Some(0), "{r:?}");
    assert_eq!(r.listen_drops, Some(0), "{r:?}");
    assert_eq!(r.queue_max, Some(500), "{r:?}");
    assert_eq!(r.established, 500);
    assert_eq!(r.accepted, 500);
    assert_eq!(r.overflow_outcome.as_deref(), Some("none"), "{r:?}");
    cleanup(&dir);
}

#[test]
fn abort_on_overflow_is_recorded_and_the_report_says_what_happened() {
    require_root!();
    let (dir, rows) = burst_sweep(
        "abort",
        &[
            "--engines",
            "std",
            "--backlogs",
            "8",
            "--abort-on-overflow",
            "--connect-timeout",
            "2s",
        ],
    );
    let meta = Meta::read(&dir.join("meta.json")).unwrap();
    assert!(
        meta.notes
            .iter()
            .any(|n| n.contains("tcp_abort_on_overflow=1")),
        "{:?}",
        meta.notes
    );
    let r = &rows[0];
    assert!(r.listen_overflows.unwrap() > 0, "{r:?}");
    // Which of the two happened is measured, not assumed: resets only if clients saw them.
    let outcome = r.overflow_outcome.as_deref().unwrap();
    assert_eq!(outcome.contains("reset"), r.reset > 0, "{r:?}");
    assert_eq!(
        outcome.contains("syn-dropped"),
        r.timeout + r.pending > 0 || r.syn_retry_modes.as_deref() != Some(""),
        "{r:?}"
    );
    assert_eq!(r.matched, r.accepted, "{r:?}");
    assert_eq!(r.matched + r.unmatched_client, r.established, "{r:?}");
    cleanup(&dir);
}
