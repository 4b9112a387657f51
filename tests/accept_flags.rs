//! Engine `uring` with the accept flags of Linux 6.10 (`--accept-flags`): every
//! setting accepts every queued connection exactly once with its peer; the counts the
//! flags add (SOCK_NONEMPTY hints, DONTWAIT accepts that found the queue empty) are
//! what the kernel did; the flags are refused, by name, where they mean nothing.
//! Settings the kernel lacks are skipped with the probe's reason. Loopback only;
//! every run is bounded by a count and a deadline.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use acceptbench::engine::{self, AcceptFlags, EngineKind, EngineOptions, Limits, StopFlag};
use acceptbench::kernel::probe;
use acceptbench::listener::{Listener, ListenerSpec};
use acceptbench::record::Recorder;
use assert_cmd::Command;

fn runnable(f: AcceptFlags) -> bool {
    let p = probe::probe_uring_cached();
    let s = engine::engine_support(EngineKind::Uring, p);
    if !s.supported {
        common::testskip::skip_part(
            common::testskip::Lack::Kernel,
            &format!("engine uring unsupported here: {}", s.reason),
        );
        return false;
    }
    if let Some(why) = f
        .needs_6_10()
        .then(|| engine::accept_flags_unsupported(p))
        .flatten()
    {
        common::testskip::skip_part(
            common::testskip::Lack::Kernel,
            &format!("accept flags {f}: {why}"),
        );
        return false;
    }
    true
}

fn listener() -> Listener {
    Listener::bind(&ListenerSpec {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        backlog: 256,
        reuse_port: false,
        dual_stack: false,
    })
    .expect("listen on loopback")
}

fn opts(f: AcceptFlags, inflight: usize) -> EngineOptions {
    EngineOptions {
        accept_flags: f,
        inflight,
        ..EngineOptions::default()
    }
}

/// Runs `uring` with `o` on `l` until `n` connections were accepted (10 s at most).
fn run(l: &Listener, o: &EngineOptions, n: usize) -> Recorder {
    let mut a = engine::build(EngineKind::Uring, o).expect("supported engine builds");
    let mut rec = Recorder::new(true);
    let limits = Limits {
        count: Some(n as u64),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        stop: StopFlag::new(),
    };
    a.run(l, &limits, &mut rec).expect("engine run");
    rec
}

fn peers(rec: &Recorder) -> BTreeSet<SocketAddr> {
    rec.peers.iter().map(|p| p.peer).collect()
}

#[test]
fn every_setting_drains_a_full_queue_with_exact_peers() {
    const N: usize = 120;
    for f in AcceptFlags::ALL {
        if !runnable(f) {
            continue;
        }
        for q in [1, 8] {
            let l = listener();
            let clients: Vec<TcpStream> = (0..N)
                .map(|_| TcpStream::connect(l.local_addr).expect("connect"))
                .collect();
            let want: BTreeSet<SocketAddr> =
                clients.iter().map(|c| c.local_addr().unwrap()).collect();
            let rec = run(&l, &opts(f, q), N);
            let at = format!("{f} q{q}");
            assert_eq!(rec.accepted, N as u64, "{at}: {:?}", rec.errors);
            assert_eq!(rec.error_total(), 0, "{at}: {:?}", rec.errors);
            assert_eq!(peers(&rec), want, "{at}: exact peers");
            assert_eq!(rec.closed, N as u64, "{at}");
            if probe::probe_uring_cached().accept_flags && f != AcceptFlags::PollFirst {
                // The queue held N: most completions left more behind them.
                assert!(rec.sock_nonempty > 0, "{at}: no SOCK_NONEMPTY hint");
            }
            if f == AcceptFlags::Plain || f == AcceptFlags::PollFirst {
                assert_eq!(rec.accept_eagain, 0, "{at}: only DONTWAIT sees EAGAIN");
            }
        }
    }
}

/// DONTWAIT accepts armed on an empty queue come back EAGAIN (counted, not errors),
/// re-arm with POLL_FIRST, and take the connections that arrive later.
#[test]
fn dontwait_on_an_empty_queue_counts_eagain_and_still_accepts_all() {
    const N: usize = 20;
    for f in [AcceptFlags::DontWait, AcceptFlags::NonEmpty] {
        if !runnable(f) {
            continue;
        }
        let l = listener();
        let target = l.local_addr;
        let late = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            (0..N)
                .map(|_| TcpStream::connect(target).expect("connect"))
                .collect::<Vec<_>>()
        });
        let rec = run(&l, &opts(f, 4), N);
        let clients = late.join().expect("client thread");
        let want: BTreeSet<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        assert_eq!(rec.accepted, N as u64, "{f}: {:?}", rec.errors);
        assert_eq!(
            rec.error_total(),
            0,
            "{f}: EAGAIN is no error: {:?}",
            rec.errors
        );
        assert_eq!(peers(&rec), want, "{f}");
        if f == AcceptFlags::DontWait {
            // Each of the 4 slots' first DONTWAIT accept found nothing queued.
            assert!(rec.accept_eagain >= 4, "{f}: eagain {}", rec.accept_eagain);
        }
    }
}

#[test]
fn accept_flags_are_refused_for_other_engines_by_name() {
    for kind in [
        EngineKind::Std,
        EngineKind::Multishot,
        EngineKind::UringLinked,
    ] {
        let r = engine::build(kind, &opts(AcceptFlags::PollFirst, 1));
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("apply to engine uring only"), "{kind}: {e:?}");
    }
    let listen = Command::cargo_bin("acceptbench")
        .unwrap()
        .args([
            "listen",
            "--engine",
            "multishot",
            "--accept-flags",
            "dontwait",
        ])
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&listen.stderr);
    assert_eq!(listen.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--accept-flags has no effect here") && err.contains("give --engine uring"),
        "{err}"
    );
    let sweep = Command::cargo_bin("acceptbench")
        .unwrap()
        .args([
            "sweep",
            "--engines",
            "std,multishot",
            "--accept-flags",
            "none,poll-first",
        ])
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&sweep.stderr);
    assert_eq!(sweep.status.code(), Some(2), "{err}");
    assert!(err.contains("add uring to --engines"), "{err}");
    let bad = Command::cargo_bin("acceptbench")
        .unwrap()
        .args(["listen", "--engine", "uring", "--accept-flags", "fast"])
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains("none, poll-first, dontwait, nonempty"),
        "{err}"
    );
}
