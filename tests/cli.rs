//! The real `acceptbench` binary on good and bad input: exit codes and messages.

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
    assert!(err.contains("unknown engine \"kqueue\""), "{err}");
    assert!(
        err.contains("std, uring, multishot, uring-linked, tokio-uring, tokio"),
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
            "tokio"
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
        err.contains("\"epoll\"") && err.contains("unknown engine"),
        "{err}"
    );
    let (code, err) = fails(&["sweep", "--backlogs", ""]);
    assert_eq!(code, 2);
    assert!(err.contains("--backlogs is empty"), "{err}");
    let (code, err) = fails(&["sweep", "--backlogs", "16,x"]);
    assert_eq!(code, 2);
    assert!(err.contains("\"x\""), "{err}");
    let (code, err) = fails(&["sweep", "--modes", "fast"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("closed, rate, drain, burst or overload"),
        "{err}"
    );
    let (code, err) = fails(&["sweep", "--engines", "std", "--out", "/proc/acceptbench"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot create the results directory"), "{err}");
    assert!(err.contains("--out"), "{err}");
}

/// A seccomp filter that makes io_uring_setup(2) fail with ENOSYS, as on a kernel
/// built without io_uring, for the child only.
fn deny_io_uring() -> std::io::Result<()> {
    const SYS_IO_URING_SETUP: u32 = 425;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    let ret = (libc::BPF_RET | libc::BPF_K) as u16;
    let filter = [
        stmt(ld, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH_X86_64, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ld, 0), // seccomp_data.nr
        jeq(SYS_IO_URING_SETUP, 0, 1),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: called in the forked child before exec; prctl reads `prog` and the
    // filter array, both alive for the duration of the calls.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
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
    // SAFETY: deny_io_uring only calls prctl, which is async-signal-safe.
    unsafe { cmd.pre_exec(deny_io_uring) };
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("engine uring is unsupported"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");

    // probe reports the same without failing.
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"));
    cmd.args(["probe", "--json"]);
    // SAFETY: as above.
    unsafe { cmd.pre_exec(deny_io_uring) };
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for e in v["engines"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let io_uring = matches!(name, "uring" | "multishot" | "uring-linked" | "tokio-uring");
        assert_eq!(e["supported"].as_bool().unwrap(), !io_uring, "{e}");
    }
}
