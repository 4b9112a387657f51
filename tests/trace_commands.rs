//! `listen --trace kernel` and `loadgen --trace kernel` on real loopback sockets (root:
//! tracefs and perf): a listener with backlog 2 that takes 100 ms per accept, hit by a
//! burst of 12 connects, four times its queue. The kernel's account each command
//! prints must agree with the commands' own counts exactly: every child the kernel
//! queued on the server was accepted by listen, and the connections loadgen
//! established beyond those are the kernel's client-only ones. Both timelines read
//! back with one row per connection. Every process is bounded by a deadline and
//! killed if it outlives the test.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::ktrace::timeline::read_timeline_csv;
use common::testskip::{skip, Lack};

const BIN: &str = env!("CARGO_BIN_EXE_acceptbench");
const BURST: u64 = 12;

/// A child killed and reaped on drop, whatever the test did meanwhile.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `listen` started with `args` on a free loopback port: the child and its address,
/// or (Err) what it printed before it exited without listening.
fn start_listen(args: &[&str]) -> Result<(Reaped, SocketAddr), String> {
    let mut child = Reaped(
        Command::new("timeout")
            .args(["30", BIN, "listen", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn acceptbench listen"),
    );
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
        let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) else {
            return Err(seen.join("\n"));
        };
        if let Some(rest) = line.split(" listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or_default();
            return Ok((child, addr.parse().expect("listen's address")));
        }
        seen.push(line);
    }
}

fn json_of(text: &str) -> serde_json::Value {
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn the_kernels_account_agrees_with_listen_and_loadgen() {
    if unsafe { libc::geteuid() } != 0 {
        skip(
            Lack::Root,
            "--trace kernel needs root (tracefs, perf events)",
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp dir");
    let (listen_csv, loadgen_csv) = (tmp.path().join("listen.csv"), tmp.path().join("lg.csv"));
    let records = tmp.path().join("server.rec");
    let started = start_listen(&[
        "--backlog",
        "2",
        "--accept-delay",
        "100ms",
        "--duration",
        "5s",
        "--json",
        "--trace",
        "kernel",
        "--trace-required",
        "--records",
        records.to_str().expect("utf-8 path"),
        "--trace-out",
        listen_csv.to_str().expect("utf-8 path"),
    ]);
    let (mut listen, addr) = match started {
        Ok(l) => l,
        Err(said) if said.contains("--trace-required") => {
            skip(Lack::Kernel, &format!("no kernel tracing here: {said}"));
            return;
        }
        Err(said) => panic!("listen did not start: {said}"),
    };
    let lg = Command::new("timeout")
        .args(["30", BIN, "loadgen", "--target", &addr.to_string()])
        .args(["--mode", "burst", "--connections", &BURST.to_string()])
        .args(["--connect-timeout", "3s", "--json", "--quiet"])
        .args(["--trace", "kernel", "--trace-required", "--trace-out"])
        .arg(&loadgen_csv)
        .output()
        .expect("run acceptbench loadgen");
    let lg_err = String::from_utf8_lossy(&lg.stderr);
    assert!(lg.status.success(), "loadgen: {lg_err}");
    let lg = json_of(&String::from_utf8_lossy(&lg.stdout));
    let mut out = String::new();
    listen
        .0
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut out)
        .expect("listen's stdout");
    assert!(listen.0.wait().expect("listen ends").success(), "{out}");
    let srv = json_of(&out);

    let (accepted, k) = (srv["accepted"].as_u64().unwrap(), &srv["kernel"]);
    assert_eq!(k["status"], "ok", "{k}");
    assert_eq!(k["server_established"].as_u64(), Some(accepted), "{k}");
    assert_eq!(k["accepted"].as_u64(), Some(accepted), "{k}");
    assert_eq!(k["queue_wait_ns"]["count"].as_u64(), Some(accepted), "{k}");
    assert_eq!(k["client_established"].as_u64(), Some(BURST), "{k}");

    let (established, lk) = (lg["established"].as_u64().unwrap(), &lg["kernel"]);
    assert_eq!(established, BURST, "{lg}");
    assert_eq!(lk["status"], "ok", "{lk}");
    assert_eq!(lk["client_established"].as_u64(), Some(established), "{lk}");
    assert_eq!(
        lk["client_only"].as_u64(),
        Some(established - accepted),
        "{lk}"
    );
    assert!(
        established > accepted,
        "a burst of {BURST} at a queue of 3 leaves some client-only: {lk}"
    );
    // A burst four times the queue: the SYNs it dropped were retransmitted.
    assert!(lk["syn_retransmits"].as_u64().unwrap() > 0, "{lk}");

    for (path, side) in [(&listen_csv, k), (&loadgen_csv, lk)] {
        let file = std::fs::File::open(path).expect("--trace-out written");
        let rows = read_timeline_csv(BufReader::new(file)).expect("timeline reads back");
        assert_eq!(
            rows.iter().filter(|c| c.client_only()).count() as u64,
            established - accepted,
            "{side}"
        );
        assert_eq!(
            rows.iter().filter(|c| c.syn_sent_ns.is_some()).count() as u64,
            BURST
        );
    }
    // The chart of listen's timeline.
    let svg = tmp.path().join("timeline.svg");
    let plot = Command::new(BIN)
        .args(["plot", "timeline"])
        .arg(&listen_csv)
        .arg("--out")
        .arg(&svg)
        .output()
        .expect("run acceptbench plot timeline");
    assert!(
        plot.status.success(),
        "{}",
        String::from_utf8_lossy(&plot.stderr)
    );
    let text = std::fs::read_to_string(&svg).expect("the chart written");
    assert!(text.contains("<circle"), "marks drawn");
}

#[test]
fn trace_out_and_trace_required_need_trace() {
    for cmd in [&["listen"][..], &["loadgen", "--target", "127.0.0.1:9"][..]] {
        for flag in [&["--trace-required"][..], &["--trace-out", "x.csv"][..]] {
            let out = Command::new(BIN)
                .args(cmd)
                .args(flag)
                .output()
                .expect("run acceptbench");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd:?} {flag:?}: {err}");
            assert!(err.contains("--trace"), "{err}");
        }
    }
}
