//! Accounting without server records (`--wait-close`, `--server-request`): against real
//! loopback servers that close, answer, reset or never accept, every established
//! connection lands in exactly one of served, client-only, reset, for every method.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{closed, AcceptLoop};
use loadgen::{run_with, MethodChoice, Outcome, Quiet, RunOutput, Serve};

const METHODS: [MethodChoice; 3] = [
    MethodChoice::Blocking,
    MethodChoice::Epoll,
    MethodChoice::Uring,
];

/// `n` connections, one at a time, waiting for the server; records kept.
fn waited(target: SocketAddr, n: u64, method: MethodChoice) -> RunOutput {
    let mut c = closed(target, n);
    c.method = method;
    c.concurrency = 1;
    c.wait_close = true;
    c.keep_records = true;
    c.serve_timeout = Some(Duration::from_millis(150));
    run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run")
}

/// Checks report and records agree: `served` served (with a latency each), the rest as given.
fn check(out: &RunOutput, served: u64, client_only: u64, reset: u64, what: &str) {
    let r = &out.report;
    let s = r.serve.as_ref().expect("serve counts");
    assert_eq!(
        (s.served, s.client_only, s.reset, s.unresolved),
        (served, client_only, reset, 0),
        "{what}: {r:?}"
    );
    assert_eq!(s.total(), r.established, "{what}");
    assert_eq!(
        r.served_ns.as_ref().map(|p| p.count),
        Some(served),
        "{what}"
    );
    assert_eq!(out.served_ns.len(), served, "{what}");
    let from_records = out
        .records
        .iter()
        .filter(|c| matches!(c.serve, Serve::Served(t) if t >= c.done_ns))
        .count() as u64;
    assert_eq!(from_records, served, "{what}: records");
    let co = out
        .records
        .iter()
        .filter(|c| c.serve == Serve::ClientOnly)
        .count() as u64;
    assert_eq!(co, client_only, "{what}: records");
}

#[test]
fn a_server_that_closes_serves_every_connection() {
    let server = AcceptLoop::start();
    for method in METHODS {
        let out = waited(server.addr, 40, method);
        assert_eq!(out.report.established, 40, "{method:?}");
        check(&out, 40, 0, 0, &format!("{method:?}"));
    }
}

#[test]
fn a_listener_that_never_accepts_leaves_its_queue_client_only() {
    // listen(7): the queue holds 8 connections; nobody accepts them.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind");
    socket.listen(7).expect("listen");
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr().expect("addr");
    for method in METHODS {
        // One at a time, each closed (RST) before the next: the queue never fills.
        let out = waited(addr, 5, method);
        assert_eq!(out.report.established, 5, "{method:?}");
        assert_eq!(out.report.wait_close_timeouts, 5, "{method:?}");
        check(&out, 0, 5, 0, &format!("{method:?}"));
        // Empty the queue of the reset connections.
        listener.set_nonblocking(true).expect("nonblocking");
        while listener.accept().is_ok() {}
    }
}

/// A server answering `answer` to each connection after reading its request line, then
/// closing (with RST if `reset`); stops after `n` connections.
fn answering(
    n: usize,
    answer: &'static [u8],
    reset: bool,
) -> (SocketAddr, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for conn in listener.incoming().take(n) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 64];
            let got = conn.read(&mut buf).unwrap_or(0);
            requests.push(buf[..got].to_vec());
            if reset {
                let s = socket2::Socket::from(conn);
                let _ = s.set_linger(Some(Duration::ZERO));
                drop(s);
            } else {
                let _ = conn.write_all(answer);
            }
        }
        requests
    });
    (addr, h)
}

#[test]
fn a_request_is_sent_and_the_answer_serves_it() {
    for method in METHODS {
        let (addr, h) = answering(10, b"HTTP/1.0 200 OK\r\n\r\nhello", false);
        let mut c = closed(addr, 10);
        c.method = method;
        c.concurrency = 1;
        c.wait_close = true;
        c.keep_records = true;
        c.server_request = Some(b"GET / HTTP/1.0\r\n\r\n".to_vec());
        let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
        check(&out, 10, 0, 0, &format!("{method:?}"));
        let requests = h.join().expect("server");
        assert!(
            requests.iter().all(|r| r == b"GET / HTTP/1.0\r\n\r\n"),
            "{requests:?}"
        );
    }
}

#[test]
fn a_reset_before_any_answer_is_counted_as_reset() {
    for method in METHODS {
        let (addr, h) = answering(6, b"", true);
        let mut c = closed(addr, 6);
        c.method = method;
        c.concurrency = 1;
        c.wait_close = true;
        c.keep_records = true;
        c.server_request = Some(b"x".to_vec());
        let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
        assert!(out
            .records
            .iter()
            .all(|r| r.outcome == Outcome::Established));
        check(&out, 0, 0, 6, &format!("{method:?}"));
        h.join().expect("server");
    }
}

#[test]
fn served_records_survive_the_file_round_trip() {
    let server = AcceptLoop::start();
    let out = waited(server.addr, 5, MethodChoice::Epoll);
    let path = std::env::temp_dir().join(format!("loadgen-served-{}.rec", std::process::id()));
    let meta = loadgen::RecordMeta::here(None, "served");
    loadgen::write_records(&path, &meta, &out.records).expect("write");
    let back = loadgen::read_records(&path);
    let _ = std::fs::remove_file(&path);
    let back = back.expect("read");
    assert_eq!(back, out.records);
    assert!(back.iter().all(|r| matches!(r.serve, Serve::Served(_))));
}

#[test]
fn a_burst_waits_for_the_server_and_counts_served_and_client_only() {
    for method in [MethodChoice::Epoll, MethodChoice::Uring] {
        // A server that, once the whole burst has arrived, accepts and closes 6 of its
        // 10 connections and leaves the other 4 in its queue.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            for conn in listener.incoming().take(6) {
                drop(conn);
            }
            // Held until the client's waits are over.
            std::thread::sleep(Duration::from_millis(900));
        });
        let mut c = closed(addr, 10);
        c.mode = loadgen::Mode::Burst { rounds: 1 };
        c.method = method;
        c.concurrency = 10;
        c.wait_close = true;
        c.keep_records = true;
        c.serve_timeout = Some(Duration::from_millis(600));
        let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
        assert_eq!(out.report.established, 10, "{method:?}");
        check(&out, 6, 4, 0, &format!("{method:?} burst"));
        h.join().expect("server");
    }
}
