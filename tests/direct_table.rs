//! `uring-linked --direct` under a tiny open-files limit never loses a connection: the
//! kernel caps the direct-descriptor table at RLIMIT_NOFILE (16 here), and an accept
//! the kernel cannot install into it would be dequeued and destroyed (ENFILE). The
//! engine arms no more accepts than free entries, so a 2,000-connection burst against
//! `acceptbench listen` (its limit lowered in the child only) ends with every
//! connection established on the client accepted and matched by `acceptbench join`.
//! Loopback only; every process is bounded by a count and a deadline and killed if it
//! outlives the test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use acceptbench::engine::EngineKind;
use acceptbench::kernel::probe;
use acceptbench::report::csv;

const BIN: &str = env!("CARGO_BIN_EXE_acceptbench");
const CONNS: u64 = 2000;
const NOFILE: libc::rlim_t = 16;

/// A child killed and reaped on drop, whatever the test did meanwhile.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip_reason() -> Option<String> {
    let p = probe::probe_uring_cached();
    let s = acceptbench::engine::engine_support(EngineKind::UringLinked, p);
    if !s.supported {
        return Some(format!("uring-linked unsupported here: {}", s.reason));
    }
    if !p.direct_descriptors {
        return Some("--direct needs Linux 5.19 (direct descriptors)".into());
    }
    None
}

/// `acceptbench listen --engine uring-linked --direct` with RLIMIT_NOFILE lowered to
/// [`NOFILE`] in the child, on a free loopback port; returns it and its address once
/// it says it listens, with the lines it wrote before that and the rest to come.
fn start_listener(dir: &Path) -> (Reaped, SocketAddr, Vec<String>, mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "listen",
        "--engine",
        "uring-linked",
        "--direct",
        "--backlog",
        "4096",
        "--addr",
        "127.0.0.1:0",
        "--count",
        &CONNS.to_string(),
        "--duration",
        "30s",
        "--records",
    ])
    .arg(dir.join("server.rec"))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; it only lowers this child's own limit.
    unsafe {
        cmd.pre_exec(|| {
            let r = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Reaped(cmd.spawn().expect("spawn acceptbench listen"));
    let stderr = child.0.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("listen never said it listens ({e}): {seen:?}"));
        if let Some(rest) = line.split(" listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            let addr: SocketAddr = addr.parse().expect("listen's address");
            return (child, addr, seen, rx);
        }
        seen.push(line);
    }
}

#[test]
fn a_direct_table_of_16_accepts_a_2000_burst_without_losing_one() {
    if let Some(why) = skip_reason() {
        common::testskip::skip(common::testskip::Lack::Kernel, &why);
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp dir");
    let dir = tmp.path();
    let (mut listen, addr, mut err, stderr) = start_listener(dir);
    let lg = Command::new("timeout")
        .arg("60")
        .arg(BIN)
        .args(["loadgen", "--target", &addr.to_string(), "--mode", "burst"])
        .args(["--connections", &CONNS.to_string(), "--quiet", "--records"])
        .arg(dir.join("client.rec"))
        .output()
        .expect("run acceptbench loadgen");
    assert!(
        lg.status.success(),
        "loadgen: {}",
        String::from_utf8_lossy(&lg.stderr)
    );
    // listen stops by itself after CONNS accepts; a lost connection would leave it
    // waiting: stop it then (its records are still written) and let the join say so.
    let mut ended = None;
    for _ in 0..200 {
        ended = listen.0.try_wait().expect("wait for listen");
        if ended.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if ended.is_none() {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(listen.0.id() as i32, libc::SIGINT) };
    }
    let out = listen
        .0
        .stdout
        .take()
        .map(|mut s| {
            let mut t = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut t);
            t
        })
        .unwrap_or_default();
    let status = listen.0.wait().expect("listen exits");
    err.extend(stderr.try_iter());
    assert!(status.success(), "listen: {out}\n{err:?}");
    assert!(
        err.iter()
            .any(|l| l.contains("RLIMIT_NOFILE (16)") && l.contains("nothing lost")),
        "the note says the table is small and what happens: {err:?}"
    );
    assert!(
        out.contains(&format!("accepted {CONNS} (closed {CONNS})")),
        "{out}"
    );
    assert!(
        out.contains("errors: none") && !out.contains("LOST"),
        "{out}"
    );

    let results = dir.join("results");
    let join = Command::new(BIN)
        .arg("join")
        .arg("--server")
        .arg(dir.join("server.rec"))
        .arg("--client")
        .arg(dir.join("client.rec"))
        .arg("--out")
        .arg(&results)
        .args(["--engine", "uring-linked", "--backlog", "4096"])
        .output()
        .expect("run acceptbench join");
    let said = String::from_utf8_lossy(&join.stdout);
    assert!(
        join.status.success(),
        "every connection matched: {said}{}",
        String::from_utf8_lossy(&join.stderr)
    );
    let run = said
        .lines()
        .find_map(|l| l.strip_prefix("results: "))
        .expect("join names its run directory");
    let rows = csv::read(&Path::new(run.trim()).join("summary.csv")).expect("summary.csv");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r.established, r.accepted, r.matched, r.unmatched),
        (CONNS, CONNS, CONNS, 0),
        "{said}"
    );
}
