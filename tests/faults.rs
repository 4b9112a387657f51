//! Faults the kernel injects into an engine run: accept failing with an errno outside
//! the known list (EPERM from a seccomp filter, as an LSM or a sandbox would), and the
//! listener's blocking mode as each engine leaves it. Loopback only; every run is
//! bounded by a deadline.

mod support;

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use acceptbench::engine::{self, EngineError, EngineKind, EngineOptions, Limits, StopFlag};
use acceptbench::kernel::probe;
use acceptbench::listener::{Listener, ListenerSpec};
use acceptbench::record::Recorder;

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

fn bind_v4(backlog: u32) -> Listener {
    Listener::bind(&ListenerSpec {
        addr: "127.0.0.1:0".parse().unwrap(),
        backlog,
        reuse_port: false,
        dual_stack: false,
    })
    .unwrap()
}

fn limits(count: Option<u64>, within: Duration) -> Limits {
    Limits {
        count,
        deadline: Some(Instant::now() + within),
        stop: StopFlag::new(),
    }
}

/// Runs `kind` on a fresh thread whose accept calls fail with EPERM, with one client
/// queued; returns the run's result, the recorder, CPU seconds and wall seconds.
#[cfg(target_arch = "x86_64")]
fn run_with_eperm(kind: EngineKind) -> (Result<(), EngineError>, Recorder, f64, f64) {
    let listener = bind_v4(16);
    let _client = TcpStream::connect(listener.local_addr).unwrap();
    thread::spawn(move || {
        support::Deny::syscalls(
            &[libc::SYS_accept4 as u32, libc::SYS_accept as u32],
            libc::EPERM,
        )
        .install()
        .expect("install the seccomp filter");
        let mut acceptor = engine::build(kind, &EngineOptions::default()).unwrap();
        let mut rec = Recorder::new(false);
        let (u0, s0) = common::affinity::thread_cpu_s();
        let start = Instant::now();
        let result = acceptor.run(&listener, &limits(None, Duration::from_secs(20)), &mut rec);
        let wall = start.elapsed().as_secs_f64();
        let (u1, s1) = common::affinity::thread_cpu_s();
        (result, rec, (u1 - u0) + (s1 - s0), wall)
    })
    .join()
    .unwrap()
}

/// EPERM on every accept (a seccomp or LSM denial): the engine backs off between
/// tries instead of spinning, and after `MAX_SAME_ERRNO` in a row stops with an error
/// that names the errno. io_uring accepts do not pass through seccomp, so only the
/// engines calling accept4(2) are driven here; uring and multishot share the policy
/// through the same `on_accept_error`.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_repeating_unknown_accept_errno_stops_the_run_without_spinning() {
    for kind in [EngineKind::Std, EngineKind::Tokio] {
        let (result, rec, cpu, wall) = run_with_eperm(kind);
        let err = result.expect_err("the run must stop on repeated EPERM");
        match &err {
            EngineError::AcceptKeepsFailing {
                engine,
                errno,
                count,
            } => {
                assert_eq!(*engine, kind);
                assert_eq!(*errno, libc::EPERM);
                assert_eq!(*count, engine::MAX_SAME_ERRNO);
            }
            other => panic!("{kind}: unexpected error {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("EPERM (Operation not permitted, errno 1)") && msg.contains("seccomp"),
            "{msg}"
        );
        assert_eq!(
            rec.other_errnos.get(&libc::EPERM).copied(),
            Some(engine::MAX_SAME_ERRNO),
            "{kind}"
        );
        assert_eq!(rec.backoffs, engine::MAX_SAME_ERRNO - 1, "{kind}");
        assert!(wall < 15.0, "{kind}: took {wall:.1} s");
        assert!(
            cpu < 0.5 * wall,
            "{kind}: spun the CPU: {cpu:.3} s CPU in {wall:.3} s"
        );
    }
}

/// Every engine leaves the listener's O_NONBLOCK flag (shared by every dup of the fd)
/// as it found it, whether it found it set or clear, so engines that run one after
/// another on one listener (a sweep, a server switching engines) each get what they
/// rely on and give it back.
#[test]
fn every_engine_restores_the_blocking_mode_it_found() {
    for kind in EngineKind::ALL.into_iter().filter(|&k| supported(k)) {
        for start_nonblocking in [false, true] {
            let listener = bind_v4(16);
            listener
                .socket()
                .set_nonblocking(start_nonblocking)
                .unwrap();
            let _client = TcpStream::connect(listener.local_addr).unwrap();
            let mut acceptor = engine::build(kind, &EngineOptions::default()).unwrap();
            let mut rec = Recorder::new(false);
            acceptor
                .run(
                    &listener,
                    &limits(Some(1), Duration::from_secs(10)),
                    &mut rec,
                )
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(rec.accepted, 1, "{kind}");
            assert_eq!(
                listener.socket().nonblocking().unwrap(),
                start_nonblocking,
                "{kind} changed O_NONBLOCK (found {start_nonblocking})"
            );
        }
    }
}

/// The guard itself: sets the mode asked for, and puts back the one found both on
/// `restore` and on drop (an engine's early return).
#[test]
fn blocking_mode_guard_restores_on_restore_and_on_drop() {
    let listener = bind_v4(4);
    for found in [false, true] {
        for asked in [false, true] {
            listener.socket().set_nonblocking(found).unwrap();
            let guard = listener.set_blocking_mode(asked).unwrap();
            assert_eq!(guard.was_nonblocking(), found);
            assert_eq!(listener.socket().nonblocking().unwrap(), asked);
            guard.restore().unwrap();
            assert_eq!(listener.socket().nonblocking().unwrap(), found);
            {
                let _guard = listener.set_blocking_mode(asked).unwrap();
                assert_eq!(listener.socket().nonblocking().unwrap(), asked);
            }
            assert_eq!(listener.socket().nonblocking().unwrap(), found);
        }
    }
}

/// `listen`'s summary reports back-offs, EMFILE, unknown errnos by name, multishot
/// re-arms and the io_uring counters, in text and JSON.
#[test]
fn listen_summary_reports_backoffs_emfile_and_rearms() {
    use acceptbench::summary::ListenSummary;
    let mut rec = Recorder::new(false);
    for _ in 0..3 {
        rec.error(libc::EMFILE);
    }
    rec.error(libc::EPERM);
    rec.backoffs = 4;
    rec.rearms = 2;
    let mut s = ListenSummary::new(
        "multishot",
        "127.0.0.1:1".into(),
        (8, 8),
        &rec,
        1.0,
        (0.1, 0.1),
        Default::default(),
    );
    s.engine_counters.cancels = 1;
    let text = s.to_text();
    assert!(
        text.contains("back-offs 4 (EMFILE 3), multishot re-arms 2, CQ overflows 0, CQEs dropped 0, cancels 1"),
        "{text}"
    );
    assert!(text.contains("other errnos: EPERM=1"), "{text}");
    let v: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert_eq!(v["backoffs"], 4);
    assert_eq!(v["emfile"], 3);
    assert_eq!(v["errors"]["emfile"], 3);
    assert_eq!(v["other_errnos"]["EPERM"], 1);
    assert_eq!(v["rearms"], 2);
    assert_eq!(v["engine_counters"]["cancels"], 1);
}
