//! A tiny sweep end to end: every expected row and file exists and parses back,
//! and counts agree. Plus an interrupted sweep keeps what it measured.

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
        .args(["sweep", "--engines", "std,uring", "--backlogs", "16,128"])
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
                    r.accepts_per_s > 0.0 && r.acceptor_cpu_us_per_accept > 0.0,
                    "{r:?}"
                );
                assert!(r.peer_p50_ns <= r.peer_p99_ns && r.peer_p99_ns <= r.peer_max_ns);
                if engine == "std" {
                    assert_eq!(r.ratio_accepts_vs_std, Some(1.0));
                } else {
                    assert!(r.ratio_accepts_vs_std.is_some(), "{r:?}");
                }
                for metric in ["connect", "peer", "peer-internal"] {
                    let path = dir
                        .join("hgrm")
                        .join(format!("{engine}-b{backlog}-{mode}-{metric}.hgrm"));
                    let d = hgrm::parse_file(&path).unwrap();
                    assert!(d.total_count > 0, "{}", path.display());
                    assert!(d
                        .rows
                        .windows(2)
                        .all(|w| w[0].value_us <= w[1].value_us && w[0].quantile <= w[1].quantile));
                }
                let d = hgrm::parse_file(
                    &dir.join("hgrm")
                        .join(format!("{engine}-b{backlog}-{mode}-peer.hgrm")),
                )
                .unwrap();
                assert_eq!(d.total_count, r.matched);
            }
        }
    }
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
