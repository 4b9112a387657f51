//! Burst mode against a listener that never accepts: the accept queue holds backlog+1
//! connections, the rest stay in SYN_SENT (pending) until the wait ends.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::AcceptLoop;
use loadgen::{run_with, Config, MethodChoice, Mode, Outcome, Quiet};
use socket2::{Domain, Socket, Type};

const BACKLOG: i32 = 4;

fn never_accepting() -> (Socket, std::net::SocketAddr) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .expect("addr")
            .into(),
    )
    .expect("bind");
    s.listen(BACKLOG).expect("listen");
    let addr = s.local_addr().expect("local").as_socket().expect("inet");
    (s, addr)
}

#[test]
fn burst_fills_backlog_plus_one_and_the_rest_pend() {
    for method in [MethodChoice::Uring, MethodChoice::Epoll] {
        let (_listener, addr) = never_accepting();
        let mut c = Config::new(addr);
        c.mode = Mode::Burst { rounds: 1 };
        c.connections = Some(20);
        c.concurrency = 20;
        c.duration = None;
        c.connect_timeout = Duration::from_millis(300);
        c.method = method;
        c.keep_records = true;
        let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
        let r = &out.report;
        assert!(r.counts_add_up(), "{r:?}");
        assert_eq!(r.attempted, 20);
        assert!(
            r.established >= 1 && r.established <= BACKLOG as u64 + 1,
            "{method:?}: {r:?}"
        );
        let first = out
            .records
            .iter()
            .map(|x| x.connect_start_ns)
            .min()
            .expect("records");
        let early = out
            .records
            .iter()
            .filter(|x| x.outcome == Outcome::Established && x.done_ns - first <= 100_000_000)
            .count() as u64;
        assert_eq!(
            early, r.established,
            "established after the first 100 ms: {r:?}"
        );
        assert_eq!(r.pending + r.errors.timeout, 20 - r.established, "{r:?}");
        assert_eq!(r.rounds.len(), 1);
    }
}

#[test]
fn sync_stdio_rounds_through_the_binary() {
    let server = AcceptLoop::start();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("loadgen"))
        .args([
            "--target",
            &server.addr.to_string(),
            "--mode",
            "burst",
            "--connections",
            "10",
            "--rounds",
            "3",
            "--sync-stdio",
            "--json",
            "--quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_line = || lines.next().expect("a line").expect("utf8");
    assert_eq!(next_line(), "round 0 established 10 pending 0");
    writeln!(stdin, "next").expect("write");
    assert_eq!(next_line(), "round 1 established 10 pending 0");
    writeln!(stdin, "stop").expect("write");
    let json = next_line();
    let report: loadgen::Report = serde_json::from_str(&json).expect("json report");
    assert_eq!(report.rounds.len(), 2);
    assert_eq!(report.attempted, 20);
    assert!(report.counts_add_up());
    assert!(child.wait().expect("wait").success());
}
