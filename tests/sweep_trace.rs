//! `sweep --trace kernel` end to end (root: tracefs and perf): a burst into a small
//! backlog makes client-only connections, and the kernel's count of them equals the
//! join's `unmatched_client` exactly, run by run; without root the rows say why the
//! trace is missing and the sweep goes on.

use std::path::PathBuf;

use acceptbench::report::csv;
use common::testskip::{skip, Lack};

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("acceptbench-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_kernels_client_only_count_equals_the_joins() {
    let out = out_dir("trace-kernel");
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args(["sweep", "--repeat", "1", "--engines", "std,multishot"])
        .args([
            "--backlogs",
            "16",
            "--modes",
            "burst",
            "--no-plots",
            "--quiet",
        ])
        .args(["--trace", "kernel", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let dir = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let rows = csv::read(&dir.join("summary.csv")).unwrap();
    assert_eq!(rows.len(), 2);
    if rows.iter().all(|r| r.kernel_trace == "unavailable") {
        assert!(
            rows[0].note.contains("--trace kernel: not recorded"),
            "{}",
            rows[0].note
        );
        skip(
            Lack::Root,
            &format!("no kernel trace here: {}", rows[0].note),
        );
        return;
    }
    for r in &rows {
        assert!(r.is_ok(), "{}: {}", r.engine, r.note);
        assert_eq!(r.kernel_trace, "ok", "{}: {}", r.engine, r.note);
        assert_eq!(r.kernel_lost_records, Some(0));
        eprintln!(
            "{}: established {} accepted {} unmatched_client {} kernel_client_only {:?}",
            r.engine, r.established, r.accepted, r.unmatched_client, r.kernel_client_only
        );
        assert_eq!(
            r.kernel_client_only,
            Some(r.unmatched_client),
            "{}",
            r.engine
        );
        assert_eq!(
            r.kernel_client_established,
            Some(r.established),
            "{}",
            r.engine
        );
        assert_eq!(r.kernel_queued, Some(r.accepted), "{}", r.engine);
        assert_eq!(r.kernel_not_accepted, Some(0), "{}", r.engine);
        assert!(r.kernel_handshake_p50_ns.is_some() && r.kernel_queue_wait_p50_ns.is_some());
    }
    assert!(
        rows.iter().any(|r| r.unmatched_client > 0),
        "the burst made no client-only connection to count"
    );
    let _ = std::fs::remove_dir_all(&out);
}
