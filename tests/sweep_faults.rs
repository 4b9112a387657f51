//! A sweep under interruptions and faults: output reaches stderr without a terminal,
//! Ctrl-C at a terminal (the whole process group) keeps what the client measured, a
//! killed sweep takes its client with it, and no scratch files are left behind.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acceptbench::report::{csv, row::Status, row::SummaryRow};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ab-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sweep(out: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("acceptbench"));
    c.args(["sweep", "--repeat", "1", "--engines", "std", "--no-plots"])
        .args(args)
        .arg("--out")
        .arg(out);
    c
}

fn only_run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

fn wait_for_child(parent: u32) -> i32 {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(&pid) = support::loadgen_children(parent).first() {
            return pid;
        }
        assert!(Instant::now() < end, "no loadgen child appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn alive(pid: i32) -> bool {
    // A zombie is dead for our purpose: it no longer connects.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn rows_reach_a_piped_stderr_and_json_goes_to_stdout_and_scratch_is_removed() {
    let out = scratch("pipe");
    let tmp = scratch("tmpdir");
    let o = sweep(
        &out,
        &[
            "--backlogs",
            "128",
            "--modes",
            "drain",
            "--duration",
            "200ms",
            "--json",
        ],
    )
    .env("TMPDIR", &tmp)
    .output()
    .unwrap();
    assert!(o.status.success(), "{o:?}");
    let stdout = String::from_utf8(o.stdout).unwrap();
    // One JSON object per row, then the verdict as the final object.
    let (last, row_lines) = stdout
        .trim_end()
        .lines()
        .collect::<Vec<_>>()
        .split_last()
        .map(|(l, r)| (*l, r.to_vec()))
        .unwrap();
    let verdict: serde_json::Value = serde_json::from_str(last).unwrap();
    let cells = verdict["verdict"]["cells"]
        .as_array()
        .expect("the verdict's cells");
    assert_eq!(cells.len(), 1, "{verdict}");
    assert_eq!(cells[0]["mode"], "drain", "{verdict}");
    let rows: Vec<SummaryRow> = row_lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, Some(Status::Ok));
    // --json implies no per-run line on stderr; without it, the line is there.
    let o = sweep(
        &out,
        &[
            "--backlogs",
            "128",
            "--modes",
            "drain",
            "--duration",
            "200ms",
        ],
    )
    .env("TMPDIR", &tmp)
    .output()
    .unwrap();
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(
        stderr.contains("std          b128   drain    r1"),
        "{stderr}"
    );
    assert!(stderr.contains("accepts/s"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn ctrl_c_at_a_terminal_keeps_what_the_client_measured() {
    let out = scratch("pgrp");
    // A terminal's Ctrl-C goes to the whole foreground process group.
    let mut child = sweep(
        &out,
        &[
            "--backlogs",
            "1024",
            "--modes",
            "closed",
            "--duration",
            "5s",
        ],
    )
    .process_group(0)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let pgid = child.id() as i32;
    let client = wait_for_child(child.id());
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: kill(2) on the process group we just created.
    unsafe { libc::kill(-pgid, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(!alive(client));
    let rows = csv::read(&only_run_dir(&out).join("summary.csv")).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.status, Some(Status::Incomplete), "{r:?}");
    // The client got exactly one stop and reported: its figures are kept, not zeros.
    assert!(r.established > 100, "{r:?}");
    assert_eq!(r.established, r.accepted, "{r:?}");
    assert!(r.duration_s < 4.0, "{r:?}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_killed_sweep_takes_its_client_with_it() {
    let out = scratch("kill9");
    // Its own TMPDIR: the private directory a SIGKILLed sweep cannot remove goes with
    // the test's scratch directory.
    let tmp = out.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = sweep(
        &out,
        &[
            "--backlogs",
            "1024",
            "--modes",
            "closed",
            "--duration",
            "20s",
        ],
    )
    .env("TMPDIR", &tmp)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let client = wait_for_child(child.id());
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let end = Instant::now() + Duration::from_secs(3);
    while alive(client) {
        assert!(
            Instant::now() < end,
            "loadgen {client} still runs after its sweep died"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// PIDs of live processes whose environment holds `marker`.
fn marked(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            alive(pid)
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
                    .unwrap_or(false)
        })
        .collect()
}

#[test]
fn a_killed_sweep_takes_a_forking_server_and_its_children_with_it() {
    require_root!();
    let out = scratch("kill9-server");
    let tmp = out.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let marker = format!("ABTEST_KILLSRV={}", std::process::id());
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed_server.py");
    // A server that forks a child it never waits for: only the PID namespace's end
    // can take that one along when the sweep is SIGKILLed.
    let server = format!(
        "forker=export {marker}; sleep 300 & exec python3 {} {{port}} {{backlog}}",
        seed.display()
    );
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args([
            "sweep",
            "--repeat",
            "1",
            "--no-plots",
            "--engines",
            "forker",
        ])
        .args(["--server", &server, "--backlogs", "64", "--modes", "closed"])
        .args(["--duration", "20s", "--out"])
        .arg(&out)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The run has begun (the preflight's server is gone) once loadgen runs.
    wait_for_child(child.id());
    let end = Instant::now() + Duration::from_secs(10);
    let mut pids = marked(&marker);
    while pids.len() < 2 {
        assert!(Instant::now() < end, "no server and child: {pids:?}");
        std::thread::sleep(Duration::from_millis(10));
        pids = marked(&marker);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| alive(p)) {
        assert!(
            Instant::now() < end,
            "still running 5 s after the sweep was SIGKILLed: {:?}",
            pids.iter().filter(|&&p| alive(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn without_cap_sys_admin_overflow_runs_say_so_instead_of_failing() {
    let out = scratch("nocap");
    // Namespace settings cannot be honoured: a clear error naming why.
    let mut cmd = sweep(&out, &["--modes", "burst", "--somaxconn", "8"]);
    let deny = support::Deny::syscalls(&[libc::SYS_unshare as u32], libc::EPERM);
    // SAFETY: the filter installs only prctl calls in the forked child.
    unsafe { cmd.pre_exec(move || deny.install()) };
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("CAP_SYS_ADMIN") && err.contains("unshare"),
        "{err}"
    );
    // Without them the runs use the host's loopback and say so.
    let mut cmd = sweep(
        &out,
        &[
            "--modes",
            "burst",
            "--backlogs",
            "8",
            "--burst-size",
            "12",
            "--pause",
            "100ms",
        ],
    );
    let deny = support::Deny::syscalls(&[libc::SYS_unshare as u32], libc::EPERM);
    // SAFETY: as above.
    unsafe { cmd.pre_exec(move || deny.install()) };
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let dir = only_run_dir(&out);
    let rows = csv::read(&dir.join("summary.csv")).unwrap();
    assert_eq!(rows[0].netns, "host", "{:?}", rows[0]);
    let meta = acceptbench::report::meta::Meta::read(&dir.join("meta.json")).unwrap();
    assert!(
        meta.notes
            .iter()
            .any(|n| n.contains("host's loopback") && n.contains("CAP_SYS_ADMIN")),
        "{:?}",
        meta.notes
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_sweep_where_no_run_succeeded_exits_4() {
    let out = scratch("allfail");
    let mut child = sweep(
        &out,
        &[
            "--backlogs",
            "1024",
            "--modes",
            "closed",
            "--duration",
            "3s",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let client = wait_for_child(child.id());
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the sweep's loadgen child, found just above.
    unsafe { libc::kill(client, libc::SIGKILL) };
    assert_eq!(child.wait().unwrap().code(), Some(4));
    let rows = csv::read(&only_run_dir(&out).join("summary.csv")).unwrap();
    assert_eq!(rows[0].status, Some(Status::Failed), "{:?}", rows[0]);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_report_that_arrives_after_the_stop_request_is_still_used() {
    use acceptbench::sweep::client::{base_config, Client};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A loadgen that is slow to start and deaf to the stop request: it reports only
    // after the sweep's first deadline has passed, within the grace period.
    let script = dir.path().join("slow-loadgen");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntrap '' INT\nsleep 1\nexec {} \"$@\"\n",
            assert_cmd::cargo::cargo_bin("acceptbench").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = base_config(listener.local_addr().unwrap(), 1, &[]).unwrap();
    cfg.connections = Some(20);
    cfg.duration = None;
    cfg.concurrency = 1;
    let client = Client::spawn(&script, dir.path(), &cfg).unwrap();
    let started = Instant::now();
    let result = client.finish(Duration::from_millis(300)).unwrap();
    assert!(
        started.elapsed() > Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(result.report.established, 20, "{:?}", result.report);
    assert_eq!(result.records.len(), 20);
}
