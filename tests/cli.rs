//! The real `acceptbench` binary on good and bad input: exit codes and messages.

mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;

fn acceptbench() -> Command {
    Command::cargo_bin("acceptbench").expect("the acceptbench binary is built for tests")
}

/// Runs the binary and returns (exit code, stderr).
fn fails(args: &[&str]) -> (i32, String) {
    let out = acceptbench().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_engine_is_named() {
    let (code, err) = fails(&["listen", "--engine", "kqueue", "--duration", "1s"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid value 'kqueue' for '--engine"),
        "{err}"
    );
    assert!(
        err.contains(
            "possible values: std, uring, multishot, uring-linked, tokio-uring, tokio, compio"
        ),
        "{err}"
    );
}

#[test]
fn unknown_ring_setup_is_named() {
    let (code, err) = fails(&[
        "listen",
        "--engine",
        "uring-linked",
        "--ring-setup",
        "sqpoll",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown ring setup \"sqpoll\""), "{err}");
    assert!(err.contains("default, coop, defer"), "{err}");
}

#[test]
fn backlog_must_be_a_positive_number() {
    let (code, err) = fails(&["listen", "--backlog", "lots"]);
    assert_eq!(code, 2);
    assert!(err.contains("'lots'") && err.contains("--backlog"), "{err}");
    let (code, err) = fails(&["listen", "--backlog", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--backlog"), "{err}");
}

#[test]
fn durations_must_be_above_zero() {
    let (code, err) = fails(&["listen", "--duration", "0s"]);
    assert_eq!(code, 2);
    assert!(err.contains("above zero"), "{err}");
    let (code, err) = fails(&["listen", "--duration", "-5s"]);
    assert_eq!(code, 2);
    assert!(err.contains("negative"), "{err}");
    let (_, err) = fails(&["listen", "--duration", "ten"]);
    assert!(err.contains("10s, 500ms or 2m"), "{err}");
}

#[test]
fn an_address_that_does_not_parse_is_named() {
    let (code, err) = fails(&["listen", "--addr", "localhost"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"localhost\" is not an address"), "{err}");
}

#[test]
fn address_in_use_says_how_to_fix_it() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let (code, err) = fails(&["listen", "--addr", &addr, "--duration", "200ms"]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("address {addr} is in use")), "{err}");
    assert!(err.contains("port 0 picks a free one"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

#[test]
fn probe_json_lists_every_engine() {
    let out = acceptbench().args(["probe", "--json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!v["kernel_release"].as_str().unwrap().is_empty());
    assert!(v["sysctls"]["net.core.somaxconn"].is_string());
    let names: Vec<&str> = v["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "std",
            "uring",
            "multishot",
            "uring-linked",
            "tokio-uring",
            "tokio",
            "compio"
        ]
    );
    for e in v["engines"].as_array().unwrap() {
        let supported = e["supported"].as_bool().unwrap();
        assert_eq!(supported, e["reason"].as_str().unwrap().is_empty(), "{e}");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects to `addr` until it accepts or `limit` passes.
fn connect_retry(addr: SocketAddr, limit: Duration) -> TcpStream {
    let end = Instant::now() + limit;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if Instant::now() < end => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }
}

#[test]
fn listen_prints_peers_and_a_json_summary() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args(["listen", "--engine", "std", "--addr", &addr.to_string()])
        .args(["--backlog", "64", "--count", "3", "--duration", "20s"])
        .args(["--print-peers", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut locals = Vec::new();
    for _ in 0..3 {
        let s = connect_retry(addr, Duration::from_secs(5));
        locals.push(s.local_addr().unwrap().to_string());
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let mut printed: Vec<&str> = lines[..3].to_vec();
    printed.sort();
    locals.sort();
    assert_eq!(printed, locals);
    let v: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(v["engine"], "std");
    assert_eq!(v["accepted"], 3);
    assert_eq!(v["backlog_requested"], 64);
    assert_eq!(v["backlog_effective"], 64);
    for key in ["accepts_per_s", "cpu_user_s", "cpu_sys_s"] {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    assert!(v["errors"].is_object());
    assert!(v["peer_extract_ns"]["p99"].as_u64().unwrap() > 0);
}

#[test]
fn sweep_rejects_bad_lists_and_unwritable_output() {
    let (code, err) = fails(&["sweep", "--engines", "std,epoll"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--engines: \"epoll\" is not valid: neither a built-in engine (std, uring, multishot, uring-linked, tokio-uring, tokio, compio) nor a server given with --server epoll='COMMAND'"),
        "{err}"
    );
    let (code, err) = fails(&["sweep", "--backlogs", ""]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value '' for '--backlogs"), "{err}");
    let (code, err) = fails(&["sweep", "--backlogs", "16,x"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'x' for '--backlogs"), "{err}");
    let (code, err) = fails(&["sweep", "--modes", "fast"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("possible values: closed, rate, drain, burst, overload, stall"),
        "{err}"
    );
    let (code, err) = fails(&["sweep", "--engines", "std", "--out", "/proc/acceptbench"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot create the results directory"), "{err}");
    assert!(err.contains("--out"), "{err}");
}

#[test]
fn stall_settings_that_cannot_be_measured_are_refused_with_the_fix() {
    let (code, err) = fails(&["sweep", "--stall", "2s"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--stall has no effect here: it acts in mode stall only, and --modes is closed,drain: add stall to --modes"),
        "{err}"
    );
    let (code, err) = fails(&["sweep", "--modes", "stall", "--stall", "61s"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("outlasts every client's SYN retransmits") && err.contains("give at most 1m"),
        "{err}"
    );
    let (code, err) = fails(&["sweep", "--modes", "stall", "--stall-load", "rate:0"]);
    assert_eq!(code, 2);
    assert!(err.contains("use rate:N (open loop"), "{err}");
    let (code, err) = fails(&["sweep", "--modes", "stall", "--stall-load", "closed:5000"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("closed:C (closed loop, C connects in flight, 1 to 4096)"),
        "{err}"
    );
    let (code, err) = fails(&["sweep", "--modes", "stall", "--stall-after", "500ms"]);
    assert_eq!(code, 2);
    assert!(err.contains("give at least 1s"), "{err}");
    let (code, err) = fails(&["sweep", "--modes", "stall", "--stall-load", "rate:900000"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("7200000 connections") && err.contains("lower the rate"),
        "{err}"
    );
    let (code, err) = fails(&["sweep", "--modes", "stall", "--stall", "1s,1s"]);
    assert_eq!(code, 2);
    assert!(err.contains("--stall: 1s is given twice"), "{err}");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn an_engine_the_kernel_cannot_run_is_refused_clearly() {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"));
    cmd.args([
        "listen",
        "--engine",
        "uring",
        "--addr",
        "127.0.0.1:0",
        "--duration",
        "1s",
    ]);
    let deny = support::Deny::syscalls(&[libc::SYS_io_uring_setup as u32], libc::ENOSYS);
    // SAFETY: Deny::install only calls prctl, which is async-signal-safe.
    unsafe { cmd.pre_exec(move || deny.install()) };
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("engine uring is unsupported"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");

    // probe reports the same without failing.
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"));
    cmd.args(["probe", "--json"]);
    let deny = support::Deny::syscalls(&[libc::SYS_io_uring_setup as u32], libc::ENOSYS);
    // SAFETY: as above.
    unsafe { cmd.pre_exec(move || deny.install()) };
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for e in v["engines"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let io_uring = matches!(
            name,
            "uring" | "multishot" | "uring-linked" | "tokio-uring" | "compio"
        );
        assert_eq!(e["supported"].as_bool().unwrap(), !io_uring, "{e}");
    }
}

/// `taskset -c 1 acceptbench …`: true when CPU 1 exists and taskset can run us there.
fn taskset_cpu1() -> Option<std::process::Command> {
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", "1"])
        .arg(assert_cmd::cargo::cargo_bin("acceptbench"));
    let probe = std::process::Command::new("taskset")
        .args(["-c", "1", "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(cmd),
        Ok(out) => {
            common::testskip::skip(
                common::testskip::Lack::Host,
                &format!(
                    "taskset -c 1 fails here (a second CPU is needed): {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
            None
        }
        Err(e) => {
            common::testskip::skip(
                common::testskip::Lack::Program,
                &format!("cannot run taskset: {e}"),
            );
            None
        }
    }
}

/// Under `taskset -c 1` CPU 0 is not ours: asking for it names CPU 1 as the one
/// allowed, and a sweep without CPU flags runs on CPU 1 (acceptor and loadgen share it,
/// with a note saying so).
#[test]
fn sweep_cpus_come_from_the_allowed_set() {
    let Some(mut cmd) = taskset_cpu1() else {
        return;
    };
    let out = cmd
        .args(["sweep", "--server-cpu", "0", "--engines", "std"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--server-cpu 0"), "{err}");
    assert!(err.contains("may run on CPUs 1 only"), "{err}");

    let dir = std::env::temp_dir().join(format!("acceptbench-taskset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let Some(mut cmd) = taskset_cpu1() else {
        return;
    };
    let out = cmd
        .args([
            "sweep",
            "--engines",
            "std",
            "--backlogs",
            "128",
            "--modes",
            "drain",
        ])
        .args(["--duration", "200ms", "--no-plots", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("both run on CPU 1"), "{err}");
}

/// Runs acceptbench with stdout a pipe whose reader is already gone, as in
/// `acceptbench … | head -1` once head exited: returns (exit code, stderr).
fn run_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array; we own both afterwards.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just returned by pipe2 and are owned by nothing else.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `acceptbench compare A B | head -1`, `probe | head -1`: a closed stdout ends the
/// command quietly with status 0 (ripgrep's choice), never with a panic.
#[test]
fn printing_into_a_closed_pipe_exits_quietly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let mut runs: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("summary.csv").exists())
        .map(|e| e.path().display().to_string())
        .collect();
    runs.sort();
    assert!(runs.len() >= 2, "committed runs in {}", root.display());
    let (code, err) = run_into_closed_pipe(&["compare", &runs[0], &runs[1]]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for args in [&["probe"][..], &["probe", "--json"][..]] {
        let (code, err) = run_into_closed_pipe(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
    }
}

/// An argument that is not UTF-8 is refused or carried through with a message,
/// never a panic (std::env::args panics on one).
#[test]
fn a_non_utf8_argument_is_an_error_not_a_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let bad = OsStr::from_bytes(b"run-\xff");
    // A path argument: accepted as a path, then named as missing.
    let out = acceptbench()
        .arg("compare")
        .arg(bad)
        .arg(bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("run-\u{fffd}"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A value from a list, and free text: clap refuses both, naming the flag.
    for args in [
        &["listen", "--engine"][..],
        &["compare", "a", "b", "--metric"][..],
    ] {
        let out = acceptbench().args(args).arg(bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("invalid value 'run-\u{fffd}'") || err.contains("invalid UTF-8"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A value given twice in a list flag is refused by name; `--help` lists every
/// engine, mode and compare format, and says that an IPv6 listen address is v6-only.
#[test]
fn list_flags_refuse_duplicates_and_help_lists_the_values() {
    for (flag, list, item) in [
        ("--engines", "std,tokio,std", "std"),
        ("--backlogs", "16,16", "16"),
        ("--modes", "drain,closed,drain", "drain"),
        ("--client-cpus", "0,0", "0"),
    ] {
        let (code, err) = fails(&["sweep", flag, list]);
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{flag}: {item} is given twice: give each value once"
            )),
            "{flag}: {err}"
        );
    }
    let (code, err) = fails(&["compare", "--format", "xml", "a", "b"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("possible values: text, markdown, csv"),
        "{err}"
    );

    let help = |args: &[&str]| {
        let out = acceptbench().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let sweep = help(&["sweep", "--help"]);
    for value in ["tokio-uring:", "multishot:", "overload:", "drain:"] {
        assert!(
            sweep.contains(value),
            "{value} missing from sweep --help:\n{sweep}"
        );
    }
    assert!(help(&["compare", "--help"]).contains("markdown:"));
    let listen = help(&["listen", "--help"]);
    assert!(
        listen.contains("IPv6 clients only") && listen.contains("--dual-stack"),
        "{listen}"
    );
}

/// `listen --engine uring-linked --direct` under RLIMIT_NOFILE 16 (the kernel's cap on a
/// registered file table): one note, before "listening", naming the limit and the fix;
/// the run then works within the limit; no error blames the kernel version.
#[test]
fn direct_under_a_low_fd_limit_says_so_once_and_runs_within_it() {
    use std::os::unix::process::CommandExt;
    let probe = acceptbench::kernel::probe::probe_uring();
    let s =
        acceptbench::engine::engine_support(acceptbench::engine::EngineKind::UringLinked, &probe);
    if !s.supported || !probe.direct_descriptors {
        common::testskip::skip(
            common::testskip::Lack::Kernel,
            &format!("uring-linked --direct unsupported here: {}", s.reason),
        );
        return;
    }
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"));
    cmd.args([
        "listen",
        "--engine",
        "uring-linked",
        "--direct",
        "--addr",
        "127.0.0.1:0",
        "--duration",
        "200ms",
    ]);
    // SAFETY: setrlimit is async-signal-safe; it only lowers this child's own limit.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::rlimit {
                rlim_cur: 16,
                rlim_max: 16,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("RLIMIT_NOFILE (16)").count(), 1, "{err}");
    assert!(
        err.contains("ulimit -n") && err.contains("drop --direct"),
        "{err}"
    );
    let note = err.find("RLIMIT_NOFILE").unwrap();
    let listening = err.find("listening on").expect("it listens");
    assert!(note < listening, "the note comes before listening: {err}");
    assert!(!err.contains("needs Linux"), "{err}");
}
