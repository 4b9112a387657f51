//! What each engine spends of the kernel per connection (kernel::perf): a std drain
//! enters the kernel twice per accept (accept4 + close); where perf is refused the
//! sweep falls back to getrusage's figures and says so.

mod support;

use std::process::Command;

use acceptbench::report::{csv, meta::Meta};

fn bin() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("acceptbench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const DRAIN: &[&str] = &[
    "sweep",
    "--engines",
    "std",
    "--backlogs",
    "512",
    "--modes",
    "drain",
    "--repeat",
    "2",
    "--no-plots",
    "--quiet",
    "--count-syscalls",
];

/// One sweep at a time: each mounts tracefs if it is absent and unmounts it at its end,
/// and another process's sweep must not lose the mount while it reads from it.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_std_drain_enters_the_kernel_twice_per_accept() {
    let _one = one_at_a_time();
    if !support::is_root() {
        common::testskip::skip(
            common::testskip::Lack::Root,
            "counting system calls by tracepoint needs root (perf_event_paranoid)",
        );
        return;
    }
    let out = out_dir("kernel-use");
    let st = bin().args(DRAIN).arg("--out").arg(&out).status().unwrap();
    assert!(st.success());
    let dir = support::run_dir(&out);
    let rows = csv::read(&dir.join("summary.csv")).unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(r.is_ok(), "{r:?}");
        let sys = r.syscalls_per_accept.expect("counted");
        // accept4 + close per connection; the engine's few calls per drain round
        // (its receive timeout, the first blocking wait) spread over 513 connections.
        assert!(
            (2.0..2.05).contains(&sys),
            "std: {sys} system calls per accept"
        );
        assert_eq!(r.uring_enters_per_accept, Some(0.0), "{r:?}");
        assert!(r.acceptor_user_s.is_some() && r.acceptor_sys_s.is_some());
        assert!(r.vol_cs_per_accept.is_some());
    }
    let meta = Meta::read(&dir.join("meta.json")).unwrap();
    let m = meta.machine.expect("the machine's profile");
    assert!(
        m.start.null_syscall_ns.is_some() && m.end.is_some(),
        "{m:?}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[cfg(target_arch = "x86_64")]
#[test]
fn without_perf_the_counts_are_absent_and_the_run_says_why() {
    let _one = one_at_a_time();
    use std::os::unix::process::CommandExt;
    let out = out_dir("kernel-use-noperf");
    let mut cmd = bin();
    cmd.args(DRAIN).arg("--out").arg(&out);
    let deny = support::Deny::syscalls(&[libc::SYS_perf_event_open as u32], libc::EACCES);
    // SAFETY: Deny::install only calls prctl, which is async-signal-safe.
    unsafe { cmd.pre_exec(move || deny.install()) };
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("system calls and io_uring enters per accept are not counted"),
        "{err}"
    );
    let dir = support::run_dir(&out);
    let meta = Meta::read(&dir.join("meta.json")).unwrap();
    assert!(
        meta.notes.iter().any(|n| n.contains("come from getrusage")),
        "{:?}",
        meta.notes
    );
    for r in csv::read(&dir.join("summary.csv")).unwrap() {
        assert_eq!(r.syscalls_per_accept, None, "{r:?}");
        assert_eq!(r.uring_enters_per_accept, None, "{r:?}");
        assert!(
            r.vol_cs_per_accept.is_some(),
            "getrusage still counts: {r:?}"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}
