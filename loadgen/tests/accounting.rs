//! Exact accounting against real listeners on loopback: every attempt lands in exactly
//! one outcome, the server sees what the client established, refusals are counted.

mod common;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::{closed, dead_port, AcceptLoop};
use loadgen::{run, run_with, MethodChoice, Outcome, Quiet};

const METHODS: [MethodChoice; 3] = [
    MethodChoice::Blocking,
    MethodChoice::Epoll,
    MethodChoice::Uring,
];

#[test]
fn counts_add_up_against_a_std_listener_for_every_method() {
    let server = AcceptLoop::start();
    let mut expected_accepts = 0;
    for method in METHODS {
        let mut c = closed(server.addr, 300);
        c.method = method;
        c.threads = 2;
        c.concurrency = if method == MethodChoice::Blocking {
            2
        } else {
            8
        };
        let r = run(&c, &AtomicBool::new(false)).expect("run");
        if method == MethodChoice::Uring && r.method != "uring" {
            ::common::testskip::skip_part(
                ::common::testskip::Lack::Kernel,
                &format!("uring: {:?}", r.method_note),
            );
        }
        assert!(r.counts_add_up(), "{r:?}");
        assert_eq!(r.attempted, 300, "{method:?}: {r:?}");
        assert_eq!(r.established, 300, "{method:?}: {r:?}");
        assert_eq!(r.connect_ns.count, 300);
        expected_accepts += r.established;
        // Each connection the client completed is accepted exactly once.
        assert_eq!(
            server.wait_for(expected_accepts),
            expected_accepts,
            "{method:?}"
        );
    }
}

#[test]
fn refused_is_counted_when_nothing_listens() {
    let target = dead_port();
    for method in METHODS {
        let mut c = closed(target, 20);
        c.method = method;
        c.concurrency = if method == MethodChoice::Blocking {
            1
        } else {
            4
        };
        let r = run(&c, &AtomicBool::new(false)).expect("run");
        assert_eq!(r.attempted, 20, "{method:?}: {r:?}");
        assert_eq!(r.errors.refused, 20, "{method:?}: {r:?}");
        assert_eq!(r.established, 0);
        assert!(r.counts_add_up());
    }
}

#[test]
fn wait_close_reads_until_the_server_closes() {
    let server = AcceptLoop::start();
    for method in METHODS {
        let mut c = closed(server.addr, 50);
        c.method = method;
        c.wait_close = true;
        c.concurrency = 1;
        let r = run(&c, &AtomicBool::new(false)).expect("run");
        assert_eq!(r.established, 50, "{method:?}: {r:?}");
        assert_eq!(r.wait_close_timeouts, 0, "{method:?}: {r:?}");
        assert!(r.counts_add_up());
    }
}

#[test]
fn records_round_trip_and_local_addresses_are_unique() {
    let server = AcceptLoop::start();
    let mut c = closed(server.addr, 400);
    c.method = MethodChoice::Uring;
    c.threads = 2;
    c.concurrency = 8;
    c.keep_records = true;
    c.sources = Some(loadgen::sources::SourceRange::parse("127.0.0.2-127.0.0.5").expect("range"));
    let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
    assert_eq!(out.records.len() as u64, out.report.attempted);
    let established: Vec<_> = out
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::Established)
        .collect();
    assert_eq!(established.len(), 400);
    // With RST close a local (ip, port) may be reused as soon as its connection is gone,
    // but two connections alive at once never share one: per address, each connect
    // starts after the previous one with that address was established (and closed).
    let mut by_local: std::collections::HashMap<_, Vec<_>> = std::collections::HashMap::new();
    for r in &established {
        by_local
            .entry(r.local)
            .or_default()
            .push((r.connect_start_ns, r.done_ns));
    }
    for (local, mut spans) in by_local {
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "{local} used by two live connections: {w:?}"
            );
        }
    }
    for r in &established {
        let ip = r.local.ip().to_string();
        assert!(
            ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"].contains(&ip.as_str()),
            "{ip}"
        );
        assert!(r.connect_start_ns <= r.done_ns && r.intended_ns <= r.connect_start_ns);
    }
    let dir = std::env::temp_dir().join(format!("loadgen-records-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("conns.bin");
    loadgen::write_records(&path, &loadgen::RecordMeta::default(), &out.records).expect("write");
    let back = loadgen::read_records(&path).expect("read");
    assert_eq!(back, out.records);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn warmup_connections_are_real_but_not_counted() {
    let server = AcceptLoop::start();
    let mut c = closed(server.addr, 200);
    c.warmup = Duration::from_millis(100);
    c.keep_records = true;
    let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
    let r = &out.report;
    assert_eq!(r.attempted, 200);
    assert!(r.warmup_attempted > 0, "{r:?}");
    let warm = out.records.iter().filter(|x| x.warmup).count() as u64;
    assert_eq!(warm, r.warmup_attempted);
    assert_eq!(server.wait_for(r.established + warm), r.established + warm);
}
