//! Every engine on real loopback sockets: exact accounting (N connections made → N
//! accepted, each peer equal to the client's local address), IPv6, clean stop on the
//! flag and the deadline, and re-binding the same port right after an io_uring engine
//! stopped. Engines this kernel cannot run are skipped with the probe's reason.
//! Loopback only (127.0.0.0/8, ::1); every run is bounded by a count and a deadline.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use acceptbench::engine::{self, EngineError, EngineKind, EngineOptions, Limits, StopFlag};
use acceptbench::kernel::probe;
use acceptbench::listener::{Listener, ListenerError, ListenerSpec};
use acceptbench::record::{AcceptError, Recorder};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Safety net on every run: a broken engine fails the test instead of hanging it.
const RUN_DEADLINE: Duration = Duration::from_secs(10);

fn supported(kind: EngineKind) -> bool {
    let s = acceptbench::engine::engine_support(kind, probe::probe_uring_cached());
    if !s.supported {
        common::testskip::skip_part(
            common::testskip::Lack::Kernel,
            &format!("engine {kind}: {}", s.reason),
        );
    }
    s.supported
}

fn bind(addr: SocketAddr, backlog: u32) -> Result<Listener, ListenerError> {
    Listener::bind(&ListenerSpec {
        addr,
        backlog,
        reuse_port: false,
        dual_stack: false,
    })
}

/// Errors other than EINTR: an accept blocked with SO_RCVTIMEO returns EINTR (instead
/// of restarting) when task work arrives, e.g. the deferred teardown of an io_uring
/// engine's ring that ran earlier on the same thread; the engine counts it and
/// retries, which is correct.
fn hard_errors(rec: &Recorder) -> u64 {
    rec.error_total()
        - rec
            .errors
            .get(&AcceptError::Interrupted)
            .copied()
            .unwrap_or(0)
}

fn limits(count: Option<u64>, within: Duration) -> Limits {
    Limits {
        count,
        deadline: Some(Instant::now() + within),
        stop: StopFlag::new(),
    }
}

fn opts(inflight: usize) -> EngineOptions {
    EngineOptions {
        inflight,
        ..EngineOptions::default()
    }
}

/// Connects once from each of `sources` (port 0) to `target` on a thread; returns the
/// open client sockets (kept open until the server is done) and their local addresses.
fn connect_from(
    target: SocketAddr,
    sources: Vec<IpAddr>,
) -> thread::JoinHandle<io::Result<Vec<(Socket, SocketAddr)>>> {
    thread::spawn(move || {
        let mut clients = Vec::with_capacity(sources.len());
        for ip in sources {
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
            clients.push((s, local));
        }
        Ok(clients)
    })
}

/// 127.0.0.2, 127.0.0.3, … : `n` distinct loopback source addresses.
fn v4_sources(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            let k = i + 2;
            IpAddr::V4(Ipv4Addr::new(127, 0, (k / 250) as u8, (k % 250) as u8 + 1))
        })
        .collect()
}

/// Runs `kind` until `sources.len()` connections from `sources` were accepted and checks
/// the exact accounting.
fn exact_accounting(kind: EngineKind, listen: SocketAddr, sources: Vec<IpAddr>, inflight: usize) {
    let listener = match bind(listen, 512) {
        Ok(l) => l,
        Err(e) if listen.is_ipv6() => {
            common::testskip::skip_part(
                common::testskip::Lack::Host,
                &format!("IPv6 test for {kind}: cannot listen on {listen}: {e}"),
            );
            return;
        }
        Err(e) => panic!("cannot listen on {listen}: {e}"),
    };
    let n = sources.len();
    let mut acceptor = engine::build(kind, &opts(inflight)).expect("supported engine builds");
    assert_eq!(acceptor.kind(), kind);
    let clients = connect_from(listener.local_addr, sources);
    let mut rec = Recorder::new(true);
    acceptor
        .run(&listener, &limits(Some(n as u64), RUN_DEADLINE), &mut rec)
        .expect("engine run");
    let clients = clients
        .join()
        .expect("client thread")
        .expect("clients connect");
    assert_eq!(rec.accepted, n as u64, "{kind}: accepted count");
    assert_eq!(hard_errors(&rec), 0, "{kind}: errors {:?}", rec.errors);
    let client_addrs: BTreeSet<SocketAddr> = clients.iter().map(|(_, a)| *a).collect();
    let peers: BTreeSet<SocketAddr> = rec.peers.iter().map(|p| p.peer).collect();
    assert_eq!(client_addrs.len(), n, "client addresses are distinct");
    assert_eq!(
        peers, client_addrs,
        "{kind}: recorded peers = clients' local addresses"
    );
    assert_eq!(rec.peer_extract_ns.len(), n as u64);
    for p in &rec.peers {
        assert!(
            p.decoded_ns >= p.accepted_ns,
            "{kind}: decoded before accepted"
        );
    }
}

fn v4_accounting(kind: EngineKind) {
    if supported(kind) {
        exact_accounting(kind, "127.0.0.1:0".parse().unwrap(), v4_sources(200), 8);
    }
}

fn v6_accounting(kind: EngineKind) {
    if supported(kind) {
        let sources = vec![IpAddr::V6(Ipv6Addr::LOCALHOST); 50];
        exact_accounting(kind, "[::1]:0".parse().unwrap(), sources, 8);
    }
}

#[test]
fn std_accepts_every_v4_peer_exactly_once() {
    v4_accounting(EngineKind::Std);
}
#[test]
fn uring_accepts_every_v4_peer_exactly_once() {
    v4_accounting(EngineKind::Uring);
}
#[test]
fn uring_with_one_accept_in_flight_accepts_every_peer() {
    if supported(EngineKind::Uring) {
        exact_accounting(
            EngineKind::Uring,
            "127.0.0.1:0".parse().unwrap(),
            v4_sources(100),
            1,
        );
    }
}
#[test]
fn multishot_accepts_every_v4_peer_exactly_once() {
    v4_accounting(EngineKind::Multishot);
}
#[test]
fn uring_linked_accepts_every_v4_peer_exactly_once() {
    v4_accounting(EngineKind::UringLinked);
}
#[test]
fn tokio_uring_accepts_every_v4_peer_exactly_once() {
    v4_accounting(EngineKind::TokioUring);
}
#[test]
fn tokio_accepts_every_v4_peer_exactly_once() {
    v4_accounting(EngineKind::Tokio);
}
#[test]
fn compio_accepts_every_v4_peer_exactly_once() {
    v4_accounting(EngineKind::Compio);
}
#[test]
fn every_engine_accepts_ipv6_peers() {
    for kind in EngineKind::ALL {
        v6_accounting(kind);
    }
}

/// A port outside the ephemeral range (so no client socket grabs it between two
/// binds), free right now; returns the listener already bound on it.
fn fixed_port_listener() -> Listener {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    if low > 11_024 {
        let span = 10_000u32;
        // Every call starts 100 ports further on: tests run in parallel, and one that
        // started where another did could take that one's port in the instant between
        // its stop and its re-bind.
        static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let start = (std::process::id().wrapping_mul(7919) + call * 100) % span;
        for k in 0..span {
            let port = (low - span + (start + k) % span) as u16;
            if let Ok(l) = bind(SocketAddr::from(([127, 0, 0, 1], port)), 64) {
                return l;
            }
        }
    }
    bind("127.0.0.1:0".parse().unwrap(), 64).expect("bind a free port")
}

/// Starts and stops `kind` on one fixed port five times in a row, re-binding the port
/// at once after each stop: fails with EADDRINUSE if an armed accept survived the stop.
fn rebind_cycles(kind: EngineKind) {
    if !supported(kind) {
        return;
    }
    let mut listener = fixed_port_listener();
    let addr = listener.local_addr;
    for cycle in 0..5 {
        let mut acceptor = engine::build(kind, &opts(8)).expect("supported engine builds");
        let mut rec = Recorder::new(true);
        if cycle % 2 == 0 {
            // Stop on the count, with the other accepts still armed.
            let client = connect_from(addr, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
            acceptor
                .run(&listener, &limits(Some(1), RUN_DEADLINE), &mut rec)
                .expect("engine run");
            let client = client
                .join()
                .expect("client thread")
                .expect("client connects");
            assert_eq!(rec.accepted, 1, "{kind} cycle {cycle}");
            assert_eq!(rec.peers[0].peer, client[0].1);
        } else {
            // Stop on the deadline while idle.
            acceptor
                .run(
                    &listener,
                    &limits(None, Duration::from_millis(30)),
                    &mut rec,
                )
                .expect("engine run");
            assert_eq!(rec.accepted, 0);
        }
        // Re-bound while the engine (and the ring it keeps between runs) is still
        // alive: an accept left armed by the stop would hold the old listener whatever
        // the kernel's (asynchronous) ring teardown does later.
        drop(listener);
        listener = rebind(kind, addr, cycle);
        drop(acceptor);
    }
}

/// Binds `addr` again, while the stopped engine (and the ring it keeps) is still
/// alive: an accept the stop left armed holds the old listener for as long as its ring
/// lives, so it fails this for good. A hold that ends by itself is the kernel's: with a
/// busy loop pinned beside the test, about one run in twelve found the port still taken
/// at the first try, with only a TIME-WAIT socket on it a moment later and a re-bind
/// 50 ms later succeeding (never on an idle machine). So a re-bind gets 200 ms, and 1 s
/// for tokio-uring, whose runtime closes its ring inside `run` (the kernel tears a
/// closed ring down asynchronously); a retry is printed.
fn rebind(kind: EngineKind, addr: SocketAddr, cycle: usize) -> Listener {
    let patience = if kind == EngineKind::TokioUring {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(200)
    };
    let t0 = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        match bind(addr, 64) {
            Ok(l) => {
                if tries > 1 {
                    eprintln!(
                        "{kind}: re-bound {addr} after stop {cycle} at try {tries}, {:?}",
                        t0.elapsed()
                    );
                }
                return l;
            }
            Err(e) if t0.elapsed() >= patience => {
                panic!("{kind}: re-binding {addr} after stop {cycle} failed for {patience:?}: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

#[test]
fn uring_stops_cleanly_and_the_port_rebinds_at_once() {
    rebind_cycles(EngineKind::Uring);
}
#[test]
fn multishot_stops_cleanly_and_the_port_rebinds_at_once() {
    rebind_cycles(EngineKind::Multishot);
}
#[test]
fn uring_linked_stops_cleanly_and_the_port_rebinds_at_once() {
    rebind_cycles(EngineKind::UringLinked);
}
#[test]
fn tokio_uring_stops_cleanly_and_the_port_rebinds_at_once() {
    rebind_cycles(EngineKind::TokioUring);
}
#[test]
fn compio_stops_cleanly_and_the_port_rebinds_at_once() {
    rebind_cycles(EngineKind::Compio);
}
#[test]
fn blocking_engines_stop_cleanly_and_the_port_rebinds_at_once() {
    rebind_cycles(EngineKind::Std);
    rebind_cycles(EngineKind::Tokio);
}

#[test]
fn stop_flag_ends_an_idle_engine_promptly() {
    for kind in EngineKind::ALL.into_iter().filter(|&k| supported(k)) {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let mut acceptor = engine::build(kind, &opts(4)).unwrap();
        let lim = limits(None, RUN_DEADLINE);
        let stop = lim.stop.clone();
        let raiser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            stop.raise();
            Instant::now()
        });
        let mut rec = Recorder::new(false);
        acceptor.run(&listener, &lim, &mut rec).expect("engine run");
        let returned = Instant::now();
        let raised = raiser.join().unwrap();
        let lag = returned.saturating_duration_since(raised);
        assert!(
            lag < Duration::from_secs(1),
            "{kind}: stopped {lag:?} after the flag"
        );
        assert_eq!(rec.accepted, 0);
        assert_eq!(hard_errors(&rec), 0, "{kind}: idle wake-ups are not errors");
    }
}

#[test]
fn deadline_ends_an_idle_engine_promptly() {
    for kind in EngineKind::ALL.into_iter().filter(|&k| supported(k)) {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let mut acceptor = engine::build(kind, &opts(4)).unwrap();
        let start = Instant::now();
        let mut rec = Recorder::new(false);
        acceptor
            .run(
                &listener,
                &limits(None, Duration::from_millis(150)),
                &mut rec,
            )
            .expect("engine run");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(150), "{kind}: {took:?}");
        assert!(took < Duration::from_secs(1), "{kind}: took {took:?}");
    }
}

/// Engines run one after another on one listener (as a sweep does): each accepts its
/// share, and none is thrown off by what the previous one left (O_NONBLOCK, timeouts).
#[test]
fn engines_share_one_listener_in_turn() {
    let listener = bind("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let mut round = 0;
    for kind in EngineKind::ALL
        .into_iter()
        .chain(EngineKind::ALL)
        .filter(|&k| supported(k))
    {
        let sources = v4_sources(20 * (round + 1))[20 * round..].to_vec();
        round += 1;
        let mut acceptor = engine::build(kind, &opts(4)).unwrap();
        let clients = connect_from(listener.local_addr, sources);
        let mut rec = Recorder::new(true);
        acceptor
            .run(&listener, &limits(Some(20), RUN_DEADLINE), &mut rec)
            .expect("engine run");
        let clients = clients.join().unwrap().unwrap();
        let want: BTreeSet<_> = clients.iter().map(|(_, a)| *a).collect();
        let got: BTreeSet<_> = rec.peers.iter().map(|p| p.peer).collect();
        assert_eq!(got, want, "{kind} in round {round}");
        // An idle period after that must block (not spin): the std engine resets O_NONBLOCK.
        if kind == EngineKind::Std {
            assert!(!listener.socket().nonblocking().unwrap());
        }
    }
    assert!(
        !listener.socket().nonblocking().unwrap(),
        "O_NONBLOCK restored"
    );
}

#[test]
fn accept_delay_paces_every_engine() {
    for kind in EngineKind::ALL.into_iter().filter(|&k| supported(k)) {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 64).unwrap();
        let options = EngineOptions {
            inflight: 4,
            accept_delay: Some(Duration::from_millis(3)),
            ..EngineOptions::default()
        };
        let mut acceptor = engine::build(kind, &options).unwrap();
        let clients = connect_from(listener.local_addr, v4_sources(10));
        let start = Instant::now();
        let mut rec = Recorder::new(false);
        acceptor
            .run(&listener, &limits(Some(10), RUN_DEADLINE), &mut rec)
            .expect("engine run");
        let took = start.elapsed();
        clients.join().unwrap().unwrap();
        assert_eq!(rec.accepted, 10);
        assert!(took >= Duration::from_millis(30), "{kind}: {took:?}");
    }
}

#[test]
fn uring_rejects_zero_inflight() {
    match engine::build(EngineKind::Uring, &opts(0)) {
        Err(EngineError::InvalidOption { engine, reason }) => {
            assert_eq!(engine, EngineKind::Uring);
            assert!(reason.contains("inflight"), "{reason}");
        }
        Err(EngineError::Unsupported { reason, .. }) => {
            common::testskip::skip(
                common::testskip::Lack::Kernel,
                &format!("uring unsupported: {reason}"),
            );
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("inflight 0 accepted"),
    }
}

/// Out of file descriptors (EMFILE): the engine counts the error, backs off instead
/// of spinning, and leaves the connections queued; once fds are free again it accepts
/// every one of them. Runs in a child process because RLIMIT_NOFILE is per process.
#[test]
fn emfile_backs_off_and_keeps_connections_queued() {
    const CHILD_ENV: &str = "ACCEPTBENCH_TEST_EMFILE_ENGINE";
    if let Ok(name) = std::env::var(CHILD_ENV) {
        emfile_child(name.parse().expect("engine name"));
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    for kind in EngineKind::ALL {
        if !supported(kind) {
            continue;
        }
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "emfile_backs_off_and_keeps_connections_queued",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, kind.name())
            .output()
            .expect("run the child test");
        assert!(
            out.status.success(),
            "{kind}: child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn emfile_child(kind: EngineKind) {
    const N: usize = 10;
    let listener = bind("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    // The client sockets exist before the fd table is filled; connect needs no new fd.
    let clients: Vec<Socket> = (0..N)
        .map(|_| Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap())
        .collect();
    let mut acceptor = engine::build(kind, &opts(4)).unwrap();
    let limit = 4096.min(acceptbench::kernel::rlimit_nofile().0);
    // SAFETY: lowering our own soft limit; plain data.
    let ok = unsafe {
        libc::setrlimit(
            libc::RLIMIT_NOFILE,
            &libc::rlimit {
                rlim_cur: limit,
                rlim_max: acceptbench::kernel::rlimit_nofile().1,
            },
        )
    };
    assert_eq!(ok, 0);
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let fill = || {
        let mut fillers = Vec::new();
        while let Ok(f) = devnull.try_clone() {
            fillers.push(f);
        }
        fillers
    };
    // The engine starts first, with the fds it needs (ring, runtime, dup of the
    // listener: they differ per engine and per library version); once it waits for
    // connections every free fd is taken, then the clients connect. Not so for std,
    // which needs no fd of its own: accept4 reserves the new fd before it sleeps, so a
    // blocked accept keeps one free; there the table is filled before the run.
    let early = (kind == EngineKind::Std).then(fill);
    let run_for = Duration::from_millis(600);
    let (rec, cpu, wall, fillers) = thread::scope(|scope| {
        let engine = scope.spawn(|| {
            let (u0, s0) = common::affinity::thread_cpu_s();
            let start = Instant::now();
            let mut rec = Recorder::new(false);
            acceptor
                .run(&listener, &limits(None, run_for), &mut rec)
                .expect("engine run");
            let wall = start.elapsed().as_secs_f64();
            let (u1, s1) = common::affinity::thread_cpu_s();
            (rec, (u1 - u0) + (s1 - s0), wall)
        });
        thread::sleep(Duration::from_millis(150));
        let fillers = (early, fill());
        for c in &clients {
            c.connect(&SockAddr::from(listener.local_addr)).unwrap();
        }
        let (rec, cpu, wall) = engine.join().unwrap();
        (rec, cpu, wall, fillers)
    });
    assert_eq!(rec.accepted, 0, "{kind}");
    assert!(
        rec.errors.get(&AcceptError::Emfile).copied().unwrap_or(0) >= 1,
        "{kind}: {:?}",
        rec.errors
    );
    // At least 300 ms of the run had every fd taken: ~1 ms per back-off.
    assert!(rec.backoffs >= 10, "{kind}: backoffs {}", rec.backoffs);
    assert!(
        rec.backoffs <= 600,
        "{kind}: backoffs {} in {wall:.3} s",
        rec.backoffs
    );
    assert!(
        cpu < 0.5 * wall,
        "{kind}: spun the CPU: {cpu:.3} s CPU in {wall:.3} s"
    );
    assert_eq!(
        listener.queue_info().unwrap().depth,
        N as u32,
        "{kind}: connections stay queued"
    );
    drop(fillers);
    let mut rec = Recorder::new(true);
    acceptor
        .run(&listener, &limits(Some(N as u64), RUN_DEADLINE), &mut rec)
        .expect("engine run");
    assert_eq!(
        rec.accepted, N as u64,
        "{kind}: every queued connection accepted"
    );
    let want: BTreeSet<SocketAddr> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().as_socket().unwrap())
        .collect();
    let got: BTreeSet<_> = rec.peers.iter().map(|p| p.peer).collect();
    assert_eq!(got, want);
}

/// Clients that reset their connection (SO_LINGER 0, as load generators close) while it
/// still waits in the accept queue: every engine still accepts each one and records the
/// right peer (multishot cannot use getpeername here: it fails with ENOTCONN).
#[test]
fn connections_reset_before_accept_keep_their_peer() {
    for kind in EngineKind::ALL.into_iter().filter(|&k| supported(k)) {
        for listen in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = bind(listen.parse().unwrap(), 128) else {
                common::testskip::skip_part(
                    common::testskip::Lack::Host,
                    &format!("{listen} for {kind}: cannot listen there"),
                );
                continue;
            };
            let sources = if listener.local_addr.is_ipv6() {
                vec![IpAddr::V6(Ipv6Addr::LOCALHOST); 30]
            } else {
                v4_sources(30)
            };
            let clients = connect_from(listener.local_addr, sources)
                .join()
                .unwrap()
                .unwrap();
            let want: BTreeSet<_> = clients.iter().map(|(_, a)| *a).collect();
            for (s, _) in clients {
                s.set_linger(Some(Duration::ZERO)).unwrap();
            }
            let mut acceptor = engine::build(kind, &opts(4)).unwrap();
            let mut rec = Recorder::new(true);
            acceptor
                .run(&listener, &limits(Some(30), RUN_DEADLINE), &mut rec)
                .expect("engine run");
            let got: BTreeSet<_> = rec.peers.iter().map(|p| p.peer).collect();
            assert_eq!(got, want, "{kind} on {listen}: errors {:?}", rec.errors);
        }
    }
}
