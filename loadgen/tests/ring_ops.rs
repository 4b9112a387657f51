//! `--socket-ops ring`: sockets made (IORING_OP_SOCKET), set up (SO_LINGER by uring_cmd)
//! and closed (IORING_OP_CLOSE, linked behind the connect or queued later) in the ring.
//! Every attempt lands in one outcome, the server accepts what the client established,
//! records carry real local addresses, refusals are counted, and no descriptor is left
//! open. One test only: it counts this process's open descriptors, which tests running
//! beside it in the same binary would disturb.

mod common;

use std::sync::atomic::AtomicBool;

use common::{closed, dead_port, AcceptLoop};
use loadgen::{
    run_with, CloseMode, Config, MethodChoice, Mode, Outcome, Quiet, RingSetup, SocketOps,
};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn ring(mut c: Config, setup: RingSetup) -> Config {
    c.method = MethodChoice::Uring;
    c.socket_ops = SocketOps::Ring;
    c.ring_setup = setup;
    c.concurrency = 8;
    c
}

#[test]
fn ring_socket_ops_account_for_every_connection_and_leave_no_descriptor() {
    let probe = ring(closed(dead_port(), 1), RingSetup::Defer);
    if let Err(e) = run_with(&probe, &AtomicBool::new(false), &mut Quiet) {
        let e = e.to_string();
        assert!(e.contains("needs Linux") || e.contains("io_uring"), "{e}");
        ::common::testskip::skip(
            ::common::testskip::Lack::Kernel,
            &format!("this kernel cannot make sockets in the ring: {e}"),
        );
        return;
    }
    let before = open_fds();
    {
        let server = AcceptLoop::start();
        let mut accepted = 0;
        // (set-up, records kept → close queued after getsockname; none → close linked
        // behind the connect, close mode)
        for (setup, records, close) in [
            (RingSetup::Defer, false, CloseMode::Reset),
            (RingSetup::Defer, true, CloseMode::Reset),
            (RingSetup::Default, false, CloseMode::Graceful),
            (RingSetup::Coop, true, CloseMode::Graceful),
        ] {
            let mut c = ring(closed(server.addr, 300), setup);
            c.threads = 2;
            c.keep_records = records;
            c.close = close;
            if records {
                c.sources = Some(
                    loadgen::sources::SourceRange::parse("127.0.0.2-127.0.0.5").expect("range"),
                );
            }
            let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
            let r = &out.report;
            let what = format!("{setup:?} records={records} {close:?}");
            assert_eq!(
                (r.method.as_str(), r.socket_ops.as_str()),
                ("uring", "ring"),
                "{what}"
            );
            assert_eq!(r.ring_setup.as_deref(), Some(setup.name()), "{what}: {r:?}");
            assert!(r.counts_add_up(), "{what}: {r:?}");
            assert_eq!((r.attempted, r.established), (300, 300), "{what}: {r:?}");
            accepted += r.established;
            assert_eq!(server.wait_for(accepted), accepted, "{what}");
            if records {
                assert_eq!(out.records.len(), 300, "{what}");
                for rec in &out.records {
                    assert_eq!(rec.outcome, Outcome::Established, "{what}");
                    let ip = rec.local.ip().to_string();
                    assert!(
                        ip.starts_with("127.0.0.") && ip != "127.0.0.1",
                        "{what}: {ip}"
                    );
                    assert_ne!(rec.local.port(), 0, "{what}: a real local port");
                }
            }
        }
        // The default (auto) takes the ring where it works, and syscall means syscall.
        for (ops, want) in [(SocketOps::Auto, "ring"), (SocketOps::Syscall, "syscall")] {
            let mut c = closed(server.addr, 50);
            c.method = MethodChoice::Uring;
            c.concurrency = 4;
            c.socket_ops = ops;
            let r = run_with(&c, &AtomicBool::new(false), &mut Quiet)
                .expect("run")
                .report;
            assert_eq!(r.socket_ops, want, "{ops:?}: {r:?}");
            assert_eq!(r.established, 50, "{r:?}");
            accepted += 50;
        }
        assert_eq!(server.wait_for(accepted), accepted, "auto/syscall");
        // A burst: sockets held open until the round ends, then closed by the ring.
        let mut b = ring(closed(server.addr, 0), RingSetup::Defer);
        b.mode = Mode::Burst { rounds: 2 };
        b.connections = Some(50);
        b.concurrency = 50;
        let out = run_with(&b, &AtomicBool::new(false), &mut Quiet).expect("burst");
        assert_eq!(
            (out.report.attempted, out.report.established),
            (100, 100),
            "{:?}",
            out.report
        );
        accepted += 100;
        assert_eq!(server.wait_for(accepted), accepted, "burst");
    }
    // Refused: the connect fails, the linked close still runs (a hard link).
    let c = ring(closed(dead_port(), 40), RingSetup::Defer);
    let out = run_with(&c, &AtomicBool::new(false), &mut Quiet).expect("run");
    assert_eq!(out.report.errors.refused, 40, "{:?}", out.report);
    assert!(out.report.counts_add_up());
    // Every socket the ring made was closed (closes run asynchronously: allow them a moment).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while open_fds() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(open_fds(), before, "descriptors left open");
}
