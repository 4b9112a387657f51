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

/// Accepts the round's connections when the round is reported and reads each: every one
/// must already be reset (ECONNRESET), not merely closed later.
struct ReadsResets {
    listener: Socket,
    expect: usize,
    reset: usize,
    other: Vec<String>,
}

impl loadgen::Observer for ReadsResets {
    fn round_done(&mut self, _round: &loadgen::RoundSummary) -> loadgen::RoundCmd {
        use std::io::Read;
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let mut accepted = 0;
        while accepted < self.expect && std::time::Instant::now() < deadline {
            match self.listener.accept() {
                Ok((s, _)) => {
                    accepted += 1;
                    s.set_nonblocking(true).expect("nonblocking");
                    let mut stream: std::net::TcpStream = s.into();
                    match stream.read(&mut [0u8; 16]) {
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                            self.reset += 1
                        }
                        other => self.other.push(format!("{other:?}")),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        loadgen::RoundCmd::Stop
    }
}

#[test]
fn close_early_has_reset_every_connection_before_the_round_is_reported() {
    for ops in [loadgen::SocketOps::Syscall, loadgen::SocketOps::Ring] {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
                .into(),
        )
        .expect("bind");
        s.listen(64).expect("listen");
        s.set_nonblocking(true).expect("nonblocking");
        let addr = s.local_addr().expect("local").as_socket().expect("inet");
        let mut c = Config::new(addr);
        c.mode = Mode::Burst { rounds: 1 };
        c.connections = Some(10);
        c.concurrency = 10;
        c.duration = None;
        c.method = MethodChoice::Uring;
        c.socket_ops = ops;
        c.close_early = true;
        let mut obs = ReadsResets {
            listener: s,
            expect: 10,
            reset: 0,
            other: Vec::new(),
        };
        let out = run_with(&c, &AtomicBool::new(false), &mut obs).expect("run");
        assert_eq!(out.report.established, 10, "{ops:?}: {:?}", out.report);
        assert_eq!(obs.reset, 10, "{ops:?}: not reset yet: {:?}", obs.other);
    }
}
