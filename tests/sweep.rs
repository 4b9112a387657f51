//! A tiny sweep end to end: every expected row and file exists and parses back,
//! and counts agree. Plus an interrupted sweep keeps what it measured.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use acceptbench::report::{csv, hgrm, meta::Meta, row::Status};

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("acceptbench-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The single run directory a sweep made under `out`.
fn run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

#[test]
fn a_tiny_sweep_writes_consistent_parseable_results() {
    let out = out_dir("tiny");
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args([
            "sweep",
            "--repeat",
            "1",
            "--engines",
            "std,uring",
            "--backlogs",
            "16,128",
        ])
        .args([
            "--modes",
            "closed,drain",
            "--duration",
            "300ms",
            "--no-plots",
        ])
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let dir = run_dir(&out);

    let meta = Meta::read(&dir.join("meta.json")).unwrap();
    assert!(!meta.incomplete);
    assert!(!meta.kernel_release.is_empty());
    assert!(meta.sysctls.contains_key("net.core.somaxconn"));
    assert!(meta.command.contains("--backlogs 16,128"));
    assert!(!meta.git_rev.is_empty());

    let rows = csv::read(&dir.join("summary.csv")).unwrap();
    assert_eq!(rows.len(), 2 * 2 * 2, "{rows:#?}");
    for engine in ["std", "uring"] {
        for backlog in [16, 128] {
            for mode in ["closed", "drain"] {
                let r = rows
                    .iter()
                    .find(|r| r.engine == engine && r.backlog == backlog && r.mode == mode)
                    .unwrap_or_else(|| panic!("no row for {engine} {backlog} {mode}"));
                if r.status == Some(Status::Skipped) {
                    eprintln!("{engine} skipped here: {}", r.note);
                    continue;
                }
                assert_eq!(r.status, Some(Status::Ok), "{r:?}");
                assert!(r.established > 0, "{r:?}");
                // An undisturbed run: every connection accounted for, exactly once.
                assert_eq!(r.established, r.accepted, "{r:?}");
                assert_eq!(r.accepted, r.matched, "{r:?}");
                assert_eq!(r.unmatched, 0, "{r:?}");
                assert!(
                    r.accepts_per_s > 0.0 && r.acceptor_cpu_us_per_accept.is_some_and(|c| c > 0.0),
                    "{r:?}"
                );
                let (p50, p99, max) = (
                    r.peer_p50_ns.unwrap(),
                    r.peer_p99_ns.unwrap(),
                    r.peer_max_ns.unwrap(),
                );
                assert!(p50 <= p99 && p99 <= max, "{r:?}");
                // A run whose client waited for a SYN retransmit (small backlogs in
                // closed loop) has no throughput ratio: it would compare timers.
                let stalled = r.syn_retry_stalls > 0
                    || rows.iter().any(|s| {
                        s.engine == "std"
                            && s.backlog == backlog
                            && s.mode == mode
                            && s.syn_retry_stalls > 0
                    });
                assert_eq!(stalled, r.ratio_accepts_vs_std.is_none(), "{r:?}");
                if engine == "std" && !stalled {
                    assert_eq!(r.ratio_accepts_vs_std, Some(1.0));
                }
                assert!(r.ratio_cpu_vs_std.is_some(), "{r:?}");
                assert_eq!(r.netns, "host");
                // Also the two end points: accepts/s to the last close never exceeds
                // peers held/s to the last peer (the close comes after the peer).
                assert!(r.peers_held_per_s >= r.accepts_per_s * 0.999, "{r:?}");
                assert!(
                    r.accept_window_s >= r.peer_window_s && r.peer_window_s > 0.0,
                    "{r:?}"
                );
                let series = acceptbench::report::series(
                    &r.engine,
                    r.inflight,
                    &r.accept_flags,
                    &r.peer_op,
                    r.acceptors,
                    &r.sharing,
                );
                assert_eq!(r.inflight.is_some(), engine == "uring", "{r:?}");
                for metric in ["connect", "peer", "peer-internal"] {
                    let path = dir
                        .join("hgrm")
                        .join(format!("{series}-b{backlog}-{mode}-{metric}.hgrm"));
                    let d = hgrm::parse_file(&path).unwrap();
                    assert!(d.total_count > 0, "{}", path.display());
                    assert!(d
                        .rows
                        .windows(2)
                        .all(|w| w[0].value_us <= w[1].value_us && w[0].quantile <= w[1].quantile));
                }
                let d = hgrm::parse_file(
                    &dir.join("hgrm")
                        .join(format!("{series}-b{backlog}-{mode}-peer.hgrm")),
                )
                .unwrap();
                assert_eq!(d.total_count, r.matched);
            }
        }
    }
    let cells = acceptbench::report::cells::read(&dir.join("cells.csv")).unwrap();
    assert_eq!(cells.len(), 2 * 2 * 2, "{cells:#?}");
    assert!(cells.iter().all(|c| c.n == 1 && c.n_ok + c.n_skipped == 1));
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains(&meta.command));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn an_interrupted_sweep_keeps_finished_rows_and_says_incomplete() {
    let out = out_dir("sigint");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args([
            "sweep",
            "--repeat",
            "1",
            "--engines",
            "std",
            "--backlogs",
            "16,32,64,128,256,512",
        ])
        .args(["--modes", "closed", "--duration", "400ms", "--no-plots"])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until at least one row is on disk, then interrupt.
    let end = Instant::now() + Duration::from_secs(20);
    let rows_on_disk = |out: &Path| -> usize {
        std::fs::read_dir(out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("summary.csv")).ok())
            .map_or(0, |t| t.lines().count().saturating_sub(1))
    };
    while rows_on_disk(&out) < 1 {
        assert!(Instant::now() < end, "no row written within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let dir = run_dir(&out);
    let meta = Meta::read(&dir.join("meta.json")).unwrap();
    assert!(meta.incomplete);
    let rows = csv::read(&dir.join("summary.csv")).unwrap();
    assert!(!rows.is_empty() && rows.len() < 6, "{} rows", rows.len());
    assert!(rows[0].status == Some(Status::Ok), "{:?}", rows[0]);
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("Incomplete run"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn an_overflow_runs_namespace_and_sysctls_die_with_it() {
    if !support::is_root() {
        common::testskip::skip(
            common::testskip::Lack::Root,
            "needs root for a private network namespace (unshare CLONE_NEWNET)",
        );
        return;
    }
    let host_somaxconn: u64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        host_somaxconn >= 1024,
        "this test needs somaxconn ≥ 1024 on the host"
    );
    let out = out_dir("netns");
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args(["sweep", "--engines", "std", "--backlogs", "1024"])
        .args([
            "--modes",
            "burst,closed",
            "--somaxconn",
            "8",
            "--burst-size",
            "40",
        ])
        .args(["--duration", "300ms", "--no-plots", "--quiet"])
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let rows = csv::read(&run_dir(&out).join("summary.csv")).unwrap();
    let burst = rows.iter().find(|r| r.mode == "burst").unwrap();
    let closed = rows.iter().find(|r| r.mode == "closed").unwrap();
    // The burst ran in its own namespace with somaxconn 8…
    assert_eq!(burst.netns, "private", "{burst:?}");
    assert_eq!(burst.somaxconn, Some(8), "{burst:?}");
    assert_eq!(burst.backlog_effective, 8, "{burst:?}");
    // …and the closed run after it did not inherit any of that.
    assert_eq!(closed.netns, "host", "{closed:?}");
    assert_eq!(closed.somaxconn, Some(host_somaxconn), "{closed:?}");
    assert_eq!(closed.backlog_effective, 1024, "{closed:?}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_killed_client_makes_a_failed_row_that_no_aggregate_includes() {
    let out = out_dir("killed");
    let mut sweep = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args(["sweep", "--engines", "std", "--backlogs", "1024"])
        .args(["--modes", "closed", "--repeat", "3", "--duration", "1500ms"])
        .args(["--no-plots", "--quiet"])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill the first repetition's client half-way through its run.
    let end = Instant::now() + Duration::from_secs(20);
    let victim = loop {
        if let Some(&pid) = support::loadgen_children(sweep.id()).first() {
            break pid;
        }
        assert!(Instant::now() < end, "no loadgen child appeared");
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on a PID we just found as the sweep's child (our grandchild).
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let status = sweep.wait().unwrap();
    assert_eq!(status.code(), Some(3), "some runs failed: exit status 3");
    let dir = run_dir(&out);
    let rows = csv::read(&dir.join("summary.csv")).unwrap();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r.status == Some(Status::Failed))
        .collect();
    assert_eq!(failed.len(), 1, "{rows:#?}");
    assert!(failed[0].note.contains("loadgen"), "{:?}", failed[0].note);
    let cells = acceptbench::report::cells::read(&dir.join("cells.csv")).unwrap();
    assert_eq!((cells[0].n, cells[0].n_ok), (3, 2), "{cells:?}");
    let ok: Vec<f64> = rows
        .iter()
        .filter(|r| r.status == Some(Status::Ok))
        .map(|r| r.accepts_per_s)
        .collect();
    let median = cells[0].accepts_per_s.unwrap();
    assert!(
        (median - (ok[0] + ok[1]) / 2.0).abs() < 1e-6 * median,
        "{median} vs {ok:?}"
    );
    // compare leaves it out too.
    let runs = acceptbench::compare::load_runs(std::slice::from_ref(&dir)).unwrap();
    let c = acceptbench::compare::compare(&runs, &["accepts_per_s".to_string()]).unwrap();
    match &c.lines[0].cells[0] {
        acceptbench::compare::Cell::Value { stats, .. } => assert_eq!(stats.n, 2),
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&out).unwrap();
}
