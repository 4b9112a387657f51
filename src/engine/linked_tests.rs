//! `uring-linked`'s rare paths on real loopback sockets, forced through the engine's
//! test knobs: every slot busy (peer by system call, or waiting for a slot with direct
//! descriptors) and a failing in-ring getsockopt (its linked close cancelled, the peer
//! read by system call, the fd closed by us). Each checks exact peers and that no fd
//! or direct-table entry leaks (a later normal run on the same engine still works).

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::UringLinkedAcceptor;
use crate::engine::{Acceptor, EngineKind, EngineOptions, Limits, StopFlag};
use crate::kernel::probe;
use crate::listener::{Listener, ListenerSpec};
use crate::record::Recorder;

fn runnable(direct: bool) -> bool {
    let p = probe::probe_uring_cached();
    let s = crate::engine::engine_support(EngineKind::UringLinked, p);
    if !s.supported || (direct && !p.direct_descriptors) {
        eprintln!(
            "skipping: uring-linked (direct={direct}) unsupported: {}",
            s.reason
        );
        return false;
    }
    true
}

/// The fd checks count the whole process's fds: these tests run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Queues `n` connections, runs `a` until all are accepted, checks the peers exactly.
fn drain(a: &mut UringLinkedAcceptor, n: usize) -> Recorder {
    let l = Listener::bind(&ListenerSpec {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        backlog: 128,
        reuse_port: false,
        dual_stack: false,
    })
    .expect("listen on loopback");
    let clients: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(l.local_addr).expect("connect"))
        .collect();
    let want: BTreeSet<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    let mut rec = Recorder::new(true);
    let limits = Limits {
        count: Some(n as u64),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        stop: StopFlag::new(),
    };
    a.run(&l, &limits, &mut rec).expect("engine run");
    let got: BTreeSet<SocketAddr> = rec.peers.iter().map(|p| p.peer).collect();
    assert_eq!(
        rec.accepted,
        n as u64,
        "errors {:?} rearms {} counters {:?}",
        rec.errors,
        rec.rearms,
        a.counters()
    );
    assert_eq!(got, want, "exact peers");
    rec
}

fn engine(direct: bool) -> UringLinkedAcceptor {
    UringLinkedAcceptor::new(&EngineOptions {
        direct,
        ..EngineOptions::default()
    })
}

#[test]
fn every_slot_busy_never_loses_a_connection() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for direct in [false, true] {
        if !runnable(direct) {
            continue;
        }
        let mut a = engine(direct);
        a.engine.force_slots = Some(2);
        // A table as large as the queue: only the slots run short.
        a.engine.direct_files = Some(64);
        let fds = open_fds();
        drain(&mut a, 40);
        let c = a.counters();
        assert!(c.peer_syscall_fallbacks > 0, "direct={direct}: {c:?}");
        assert_eq!(c.peer_op_errors, 0);
        a.engine.force_slots = None;
        drain(&mut a, 10);
        // The ring is kept (one fd); nothing else stays open.
        // Other unit tests in this binary open sockets for a few ms now and then: a
        // leak is an excess that persists, not one that comes and goes.
        let settled = (0..100).any(|_| {
            let ok = open_fds() <= fds + 1;
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            ok
        });
        assert!(settled, "direct={direct}: fds leaked");
    }
}

#[test]
fn a_failed_getsockopt_falls_back_and_still_closes() {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for direct in [false, true] {
        if !runnable(direct) {
            continue;
        }
        let mut a = engine(direct);
        // SO_PEERNAME fails with EINVAL when optlen exceeds the address size.
        a.engine.force_optlen = Some(64);
        let fds = open_fds();
        let l = Listener::bind(&ListenerSpec {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            backlog: 128,
            reuse_port: false,
            dual_stack: false,
        })
        .unwrap();
        let clients: Vec<TcpStream> = (0..20)
            .map(|_| TcpStream::connect(l.local_addr).unwrap())
            .collect();
        let mut rec = Recorder::new(true);
        let limits = Limits {
            count: Some(20),
            deadline: Some(Instant::now() + Duration::from_millis(500)),
            stop: StopFlag::new(),
        };
        a.run(&l, &limits, &mut rec).expect("engine run");
        let c = a.counters();
        assert_eq!(c.peer_op_errors, 20, "direct={direct}: {c:?}");
        if direct {
            // No system call reaches a direct descriptor: counted, not recorded.
            assert_eq!(rec.accepted, 0);
            assert_eq!(rec.errors.values().sum::<u64>(), 20, "{:?}", rec.errors);
        } else {
            assert_eq!(rec.accepted, 20, "peers read by system call");
        }
        assert_eq!(c.close_errors, 0);
        drop(l);
        drop(clients);
        a.engine.force_optlen = None;
        drain(&mut a, 10);
        // Other unit tests in this binary open sockets for a few ms now and then: a
        // leak is an excess that persists, not one that comes and goes.
        let settled = (0..100).any(|_| {
            let ok = open_fds() <= fds + 1;
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            ok
        });
        assert!(settled, "direct={direct}: fds leaked");
    }
}
