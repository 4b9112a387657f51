//! `uring-linked` and the ring set-up options on real loopback sockets: exact peers
//! with and without direct descriptors under every ring set-up, IPv4 from several
//! source addresses and IPv6, connections reset before the accept, a full direct
//! table (no more accepts armed than free entries: every connection accepted), stop and immediate
//! re-bind, a kept SINGLE_ISSUER ring used from another thread, the set-up actually
//! applied, and the reason given when the probe says the kernel lacks a feature.
//! Skipped with the probe's reason where the kernel cannot run them. Loopback only;
//! every run is bounded by a count and a deadline.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use acceptbench::engine::{self, EngineKind, EngineOptions, Limits, RingSetup, StopFlag};
use acceptbench::kernel::probe::{self, UringProbe};
use acceptbench::listener::{Listener, ListenerError, ListenerSpec};
use acceptbench::record::{AcceptError, Recorder};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const RUN_DEADLINE: Duration = Duration::from_secs(10);
const LINKED: EngineKind = EngineKind::UringLinked;

fn supported(kind: EngineKind, direct: bool) -> bool {
    let p = probe::probe_uring_cached();
    let s = acceptbench::engine::engine_support(kind, p);
    if !s.supported {
        common::testskip::skip_part(
            common::testskip::Lack::Kernel,
            &format!("engine {kind}: {}", s.reason),
        );
        return false;
    }
    if direct && !p.direct_descriptors {
        common::testskip::skip_part(
            common::testskip::Lack::Kernel,
            &format!("{kind} --direct: needs Linux 5.19 (direct descriptors)"),
        );
        return false;
    }
    true
}

fn bind(addr: SocketAddr, backlog: u32) -> Result<Listener, ListenerError> {
    Listener::bind(&ListenerSpec {
        addr,
        backlog,
        reuse_port: false,
        dual_stack: false,
    })
}

fn limits(count: Option<u64>, within: Duration) -> Limits {
    Limits {
        count,
        deadline: Some(Instant::now() + within),
        stop: StopFlag::new(),
    }
}

fn opts(setup: Option<RingSetup>, direct: bool) -> EngineOptions {
    EngineOptions {
        ring_setup: setup,
        direct,
        ..EngineOptions::default()
    }
}

/// Errors other than EINTR (see tests/engines.rs: deferred ring teardown interrupts a
/// blocking accept on the same thread; engines count it and retry).
fn hard_errors(rec: &Recorder) -> u64 {
    rec.error_total()
        - rec
            .errors
            .get(&AcceptError::Interrupted)
            .copied()
            .unwrap_or(0)
}

/// Connects once from each of `sources` to `target`; returns the open sockets and
/// their local addresses. With `reset`, all are then closed with RST (SO_LINGER 0).
fn connect_all(
    target: SocketAddr,
    sources: &[IpAddr],
    reset: bool,
) -> io::Result<(Vec<Socket>, BTreeSet<SocketAddr>)> {
    let mut socks = Vec::new();
    let mut addrs = BTreeSet::new();
    for &ip in sources {
        let s = Socket::new(
            Domain::for_address(target),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        s.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
        s.connect_timeout(&target.into(), Duration::from_secs(5))?;
        let local = s
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("client has no IP local address"))?;
        addrs.insert(local);
        socks.push(s);
    }
    if reset {
        // Only once all are connected, so no reset port is reused by a later client.
        for s in socks.drain(..) {
            s.set_linger(Some(Duration::ZERO))?;
        }
    }
    Ok((socks, addrs))
}

fn v4_sources(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 200) as u8)))
        .collect()
}

/// Queues one connection per source, then runs `uring-linked` until all were accepted;
/// checks the exact peers and returns the recorder.
fn drain_exact(listen: &str, sources: &[IpAddr], o: &EngineOptions, reset: bool) -> Recorder {
    let listener = bind(listen.parse().unwrap(), 512).expect("listen");
    let (_socks, want) = connect_all(listener.local_addr, sources, reset).expect("connect");
    let mut acceptor = engine::build(LINKED, o).expect("supported engine builds");
    let mut rec = Recorder::new(true);
    acceptor
        .run(
            &listener,
            &limits(Some(sources.len() as u64), RUN_DEADLINE),
            &mut rec,
        )
        .expect("engine run");
    assert_eq!(rec.accepted, sources.len() as u64, "{o:?} on {listen}");
    assert_eq!(
        rec.closed, rec.accepted,
        "{o:?}: every close completed before run returned"
    );
    assert_eq!(hard_errors(&rec), 0, "{o:?}: errors {:?}", rec.errors);
    let got: BTreeSet<_> = rec.peers.iter().map(|p| p.peer).collect();
    assert_eq!(got.len(), sources.len(), "{o:?}: every peer once");
    assert_eq!(got, want, "{o:?} on {listen}: peers = clients' addresses");
    assert!(rec.peers.iter().all(|p| p.decoded_ns >= p.accepted_ns));
    let c = acceptor.counters();
    assert_eq!(c.peer_op_errors, 0, "{o:?}: {c:?}");
    let applied = acceptor
        .ring_setup_applied()
        .expect("a ring engine reports");
    let asked = o.ring_setup.unwrap_or(RingSetup::Defer);
    assert!(applied.starts_with(asked.name()), "{applied} for {asked}");
    rec
}

#[test]
fn uring_linked_gives_every_v4_peer_under_every_ring_setup() {
    for direct in [false, true] {
        if !supported(LINKED, direct) {
            continue;
        }
        for setup in [None, Some(RingSetup::Default), Some(RingSetup::Coop)] {
            drain_exact("127.0.0.1:0", &v4_sources(150), &opts(setup, direct), false);
        }
    }
}

#[test]
fn uring_linked_gives_every_v6_peer() {
    for direct in [false, true] {
        if !supported(LINKED, direct) {
            continue;
        }
        if bind("[::1]:0".parse().unwrap(), 16).is_err() {
            common::testskip::skip_part(
                common::testskip::Lack::Host,
                "IPv6: cannot listen on [::1]",
            );
            return;
        }
        let sources = vec![IpAddr::V6(Ipv6Addr::LOCALHOST); 60];
        drain_exact("[::1]:0", &sources, &opts(None, direct), false);
    }
}

#[test]
fn uring_linked_keeps_peers_of_connections_reset_before_accept() {
    for direct in [false, true] {
        if !supported(LINKED, direct) {
            continue;
        }
        drain_exact("127.0.0.1:0", &v4_sources(80), &opts(None, direct), true);
        if bind("[::1]:0".parse().unwrap(), 16).is_ok() {
            let sources = vec![IpAddr::V6(Ipv6Addr::LOCALHOST); 40];
            drain_exact("[::1]:0", &sources, &opts(None, direct), true);
        }
    }
}

/// A direct-descriptor table smaller than the queue: the engine arms no more accepts
/// than free entries (an accept the kernel cannot install would be dequeued and the
/// connection destroyed: ENFILE), so the rest wait in the queue for closes. Every
/// connection is accepted with its exact peer, none is lost, no back-off, no spin.
#[test]
fn uring_linked_small_direct_table_accepts_every_connection() {
    if !supported(LINKED, true) {
        return;
    }
    const N: usize = 150;
    let listener = bind("127.0.0.1:0".parse().unwrap(), 256).unwrap();
    let (_socks, want) = connect_all(listener.local_addr, &v4_sources(N), false).unwrap();
    let o = EngineOptions {
        direct_files: Some(16),
        ..opts(None, true)
    };
    let mut acceptor = engine::build(LINKED, &o).unwrap();
    let mut rec = Recorder::new(true);
    let lim = limits(Some(N as u64), RUN_DEADLINE);
    let (u0, s0) = common::affinity::thread_cpu_s();
    let start = Instant::now();
    acceptor.run(&listener, &lim, &mut rec).expect("engine run");
    let wall = start.elapsed().as_secs_f64();
    let (u1, s1) = common::affinity::thread_cpu_s();
    eprintln!(
        "accepted {} errors {:?} backoffs {} cpu {:.3}s wall {wall:.3}s",
        rec.accepted,
        rec.errors,
        rec.backoffs,
        (u1 - u0) + (s1 - s0)
    );
    assert_eq!(rec.accepted, N as u64, "every connection: {:?}", rec.errors);
    assert_eq!((rec.lost, rec.error_total(), rec.backoffs), (0, 0, 0));
    assert_eq!(rec.closed, N as u64);
    let got: BTreeSet<_> = rec.peers.iter().map(|p| p.peer).collect();
    assert_eq!(got, want, "exact peers");
    assert_eq!(listener.queue_info().unwrap().depth, 0, "queue drained");
    assert!(
        wall < 0.05 || (u1 - u0) + (s1 - s0) < 0.9 * wall,
        "spun the CPU"
    );
}

/// Stop (on the count, with the accept armed, and on the deadline) then re-bind the
/// port at once, five times, reusing one engine (its ring and direct table are kept).
#[test]
fn uring_linked_stops_cleanly_and_the_port_rebinds_at_once() {
    for direct in [false, true] {
        if !supported(LINKED, direct) {
            continue;
        }
        let mut listener = bind("127.0.0.1:0".parse().unwrap(), 64).unwrap();
        let addr = listener.local_addr;
        let mut acceptor = engine::build(LINKED, &opts(None, direct)).unwrap();
        for cycle in 0..5 {
            let mut rec = Recorder::new(true);
            if cycle % 2 == 0 {
                let (_s, want) = connect_all(addr, &v4_sources(3), false).unwrap();
                acceptor
                    .run(&listener, &limits(Some(1), RUN_DEADLINE), &mut rec)
                    .expect("engine run");
                // The others raced the cancel or stay queued; those accepted are exact.
                assert!(rec.accepted >= 1);
                let got: BTreeSet<_> = rec.peers.iter().map(|p| p.peer).collect();
                assert!(got.is_subset(&want));
            } else {
                acceptor
                    .run(
                        &listener,
                        &limits(None, Duration::from_millis(30)),
                        &mut rec,
                    )
                    .expect("engine run");
            }
            drop(listener);
            listener = bind(addr, 64).unwrap_or_else(|e| {
                panic!("direct={direct}: re-binding {addr} after stop {cycle} failed: {e}")
            });
        }
    }
}

/// A connection is done when it is closed: when `run` returns, every accepted
/// connection's close has completed (the client reads EOF at once), none is pending,
/// and the window that ends at the last close holds at most one CPU-second per second
/// of wall time on the acceptor's one thread (the CPU is measured over that window).
#[test]
fn uring_linked_closes_everything_inside_its_window() {
    use acceptbench::timing::timed_run;
    use std::io::Read;
    for setup in [RingSetup::Defer, RingSetup::Default] {
        for direct in [false, true] {
            if !supported(LINKED, direct) {
                continue;
            }
            let listener = bind("127.0.0.1:0".parse().unwrap(), 512).unwrap();
            let n = 400;
            let (socks, _) = connect_all(listener.local_addr, &v4_sources(n), false).unwrap();
            let mut acceptor = engine::build(LINKED, &opts(Some(setup), direct)).unwrap();
            let mut rec = Recorder::new(true);
            let t = timed_run(
                acceptor.as_mut(),
                &listener,
                &limits(Some(n as u64), RUN_DEADLINE),
                &mut rec,
            );
            t.result.as_ref().expect("engine run");
            let what = format!("{setup} direct={direct}");
            assert_eq!((t.accepted, t.closed), (n as u64, n as u64), "{what}");
            assert!(
                t.end_ns() >= t.last_held_ns && t.last_closed_ns > 0,
                "{what}"
            );
            assert!(
                t.cpu_s <= t.span_ns() as f64 * 1e-9 * 1.02 + 200e-6,
                "{what}: {} s of CPU in a {} ns window on one thread",
                t.cpu_s,
                t.span_ns()
            );
            for mut s in socks {
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut b = [0u8; 1];
                assert_eq!(
                    s.read(&mut b)
                        .expect("the server's close reached the client"),
                    0,
                    "{what}: EOF"
                );
            }
        }
    }
}

/// A kept SINGLE_ISSUER|DEFER_TASKRUN ring is tied to the thread that made it: the
/// engine, moved to another thread, makes a new ring there and still accepts.
#[test]
fn uring_linked_defer_ring_follows_the_engine_to_another_thread() {
    if !supported(LINKED, false) {
        return;
    }
    let listener = bind("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    let mut acceptor = engine::build(LINKED, &opts(Some(RingSetup::Defer), false)).unwrap();
    for round in 0..3 {
        let (_s, want) = connect_all(listener.local_addr, &v4_sources(5), false).unwrap();
        let (a, rec) = thread::scope(|s| {
            s.spawn(|| {
                let mut rec = Recorder::new(true);
                acceptor
                    .run(&listener, &limits(Some(5), RUN_DEADLINE), &mut rec)
                    .expect("engine run");
                (acceptor.ring_setup_applied(), rec)
            })
            .join()
            .unwrap()
        });
        let got: BTreeSet<_> = rec.peers.iter().map(|p| p.peer).collect();
        assert_eq!(got, want, "round {round}");
        if probe::probe_uring_cached().defer_taskrun {
            assert_eq!(a.as_deref(), Some("defer"));
        }
    }
}

#[test]
fn ring_setup_is_reported_for_every_ring_engine() {
    for kind in [EngineKind::Uring, EngineKind::Multishot, LINKED] {
        if !supported(kind, false) {
            continue;
        }
        for setup in RingSetup::ALL {
            let listener = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
            let mut a = engine::build(kind, &opts(Some(setup), false)).unwrap();
            assert_eq!(a.ring_setup_applied(), None, "nothing before the first run");
            let mut rec = Recorder::new(false);
            a.run(
                &listener,
                &limits(None, Duration::from_millis(20)),
                &mut rec,
            )
            .expect("engine run");
            let applied = a.ring_setup_applied().expect("reported after a run");
            let p = probe::probe_uring_cached();
            let available = match setup {
                RingSetup::Default => true,
                RingSetup::Coop => p.coop_taskrun,
                RingSetup::Defer => p.defer_taskrun,
            };
            if available {
                assert_eq!(applied, setup.name(), "{kind}");
            } else {
                assert!(
                    applied.contains("refused: EINVAL, needs Linux"),
                    "{applied}"
                );
            }
        }
    }
}

#[test]
fn direct_is_refused_for_other_engines() {
    let r = engine::build(EngineKind::Multishot, &opts(None, true));
    assert!(
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("uring-linked only")),
        "{:?}",
        r.err()
    );
}

/// A probe that lacks uring_cmd sockopts (forced, whatever this kernel has): the engine
/// is reported unsupported with the version that has it.
#[test]
fn forced_probe_without_uring_cmd_sockopt_names_linux_6_7() {
    let mut p = probe::probe_uring_cached().clone();
    if !p.setup_ok || !p.accept_multishot || !p.ext_arg || !p.close {
        common::testskip::skip(
            common::testskip::Lack::Kernel,
            "this kernel lacks more than uring_cmd sockopts",
        );
        return;
    }
    p.uring_cmd_sockopt = false;
    let s = acceptbench::engine::engine_support(LINKED, &p);
    assert!(!s.supported);
    assert!(
        s.reason.starts_with("needs Linux 6.7 (IORING_OP_URING_CMD"),
        "{}",
        s.reason
    );
    let forged = UringProbe {
        uring_cmd_sockopt: true,
        ..p
    };
    assert!(acceptbench::engine::engine_support(LINKED, &forged).supported);
}
