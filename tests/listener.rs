//! The listening socket on loopback: the backlog the kernel really applied (read back
//! from TCP_INFO and, when `ss` exists, from its Send-Q column), the somaxconn clamp,
//! and the errors a user can fix (zero backlog, address in use, address not here).

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use acceptbench::listener::{Listener, ListenerError, ListenerSpec};
use common::testskip::Lack;

fn spec(addr: &str, backlog: u32) -> ListenerSpec {
    ListenerSpec {
        addr: addr.parse().unwrap(),
        backlog,
        reuse_port: false,
        dual_stack: false,
    }
}

fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("read net.core.somaxconn")
        .trim()
        .parse()
        .expect("somaxconn is a number")
}

/// Send-Q of the listener on `addr` as `ss -ltn` shows it (the backlog limit), or None
/// when `ss` is not installed.
fn ss_send_q(addr: SocketAddr) -> Option<u32> {
    let out = match Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", addr.port())])
        .output()
    {
        Ok(out) if out.status.success() => out,
        Ok(out) => panic!("ss failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(e) => {
            common::testskip::skip_part(
                Lack::Program,
                &format!("the ss check: cannot run ss: {e}"),
            );
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!(":{}", addr.port())))
        .unwrap_or_else(|| panic!("ss does not list {addr}: {text:?}"));
    // State Recv-Q Send-Q Local:Port Peer:Port
    let fields: Vec<&str> = line.split_whitespace().collect();
    Some(fields[2].parse().expect("Send-Q is a number"))
}

#[test]
fn backlog_is_applied_as_requested() {
    let max = somaxconn();
    for backlog in [1, 8, 100] {
        if backlog > max {
            common::testskip::skip_part(
                Lack::Host,
                &format!("backlog {backlog}: above somaxconn {max}"),
            );
            continue;
        }
        let l = Listener::bind(&spec("127.0.0.1:0", backlog)).unwrap();
        assert_eq!(l.backlog_requested, backlog);
        assert_eq!(l.backlog_effective, backlog, "TCP_INFO limit");
        assert!(!l.is_clamped());
        assert_eq!(l.queue_info().unwrap().limit, backlog);
        if let Some(send_q) = ss_send_q(l.local_addr) {
            assert_eq!(send_q, backlog, "ss -ltn Send-Q");
        }
    }
}

#[test]
fn backlog_above_somaxconn_is_clamped_and_reported() {
    let max = somaxconn();
    let asked = max.saturating_add(100);
    let l = Listener::bind(&spec("127.0.0.1:0", asked)).unwrap();
    assert_eq!(l.backlog_requested, asked);
    assert_eq!(l.backlog_effective, max);
    assert_eq!(l.somaxconn, Some(max));
    assert!(l.is_clamped());
    if let Some(send_q) = ss_send_q(l.local_addr) {
        assert_eq!(send_q, max, "ss -ltn Send-Q shows the clamp");
    }
}

#[test]
fn zero_backlog_is_an_error() {
    let err = Listener::bind(&spec("127.0.0.1:0", 0)).unwrap_err();
    assert!(matches!(err, ListenerError::ZeroBacklog), "{err}");
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn port_in_use_is_reported_as_such() {
    let first = Listener::bind(&spec("127.0.0.1:0", 8)).unwrap();
    let addr = first.local_addr;
    let err = Listener::bind(&ListenerSpec {
        addr,
        backlog: 8,
        reuse_port: false,
        dual_stack: false,
    })
    .unwrap_err();
    match &err {
        ListenerError::AddrInUse { addr: a } => assert_eq!(*a, addr),
        other => panic!("expected AddrInUse, got {other}"),
    }
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn address_not_on_this_machine_is_reported() {
    // TEST-NET-1 (RFC 5737): never assigned to a host; bind fails, nothing is sent.
    let err = Listener::bind(&spec("192.0.2.1:0", 8)).unwrap_err();
    assert!(
        matches!(err, ListenerError::AddrNotAvailable { .. }),
        "{err}"
    );
}

#[test]
fn reuse_port_lets_two_listeners_share_a_port() {
    let a = Listener::bind(&ListenerSpec {
        reuse_port: true,
        dual_stack: false,
        ..spec("127.0.0.1:0", 8)
    })
    .unwrap();
    let b = Listener::bind(&ListenerSpec {
        reuse_port: true,
        dual_stack: false,
        addr: a.local_addr,
        backlog: 8,
    })
    .unwrap();
    assert_eq!(a.local_addr, b.local_addr);
}

#[test]
fn ipv6_listener_binds_loopback() {
    match Listener::bind(&spec("[::1]:0", 16)) {
        Ok(l) => {
            assert!(l.local_addr.is_ipv6());
            assert_ne!(l.local_addr.port(), 0);
            assert_eq!(l.backlog_effective, 16.min(somaxconn()));
        }
        Err(e) => common::testskip::skip(Lack::Host, &format!("IPv6 loopback not available: {e}")),
    }
}

#[test]
fn queue_depth_counts_unaccepted_connections() {
    let l = Listener::bind(&spec("127.0.0.1:0", 8)).unwrap();
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect_timeout(&l.local_addr, Duration::from_secs(5)).unwrap())
        .collect();
    // The handshake completes in softirq context; give it a moment on a busy machine.
    let until = Instant::now() + Duration::from_secs(2);
    let mut q = l.queue_info().unwrap();
    while q.depth < 3 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
        q = l.queue_info().unwrap();
    }
    assert_eq!(q.depth, 3);
    assert_eq!(q.limit, 8);
    drop(clients);
}

/// `[::]` listens for IPv6 only unless `dual_stack`: then an IPv4 client is accepted
/// too and reported as plain IPv4 (127.0.0.1:port, as the client sees itself), by
/// every engine. Without the flag the IPv4 connect is refused.
#[test]
fn dual_stack_takes_ipv4_clients_and_reports_them_as_ipv4() {
    use acceptbench::engine::{self, EngineKind, EngineOptions, Limits, StopFlag};
    use acceptbench::kernel::probe;
    use acceptbench::record::Recorder;
    for kind in EngineKind::ALL {
        let support = acceptbench::engine::engine_support(kind, probe::probe_uring_cached());
        if !support.supported {
            common::testskip::skip_part(
                Lack::Kernel,
                &format!("engine {kind}: {}", support.reason),
            );
            continue;
        }
        let mut s = spec("[::]:0", 16);
        s.dual_stack = true;
        let listener = match Listener::bind(&s) {
            Ok(l) => l,
            Err(e) => {
                common::testskip::skip(Lack::Host, &format!("cannot listen on [::]: {e}"));
                return;
            }
        };
        let port = listener.local_addr.port();
        let v4 = TcpStream::connect(("127.0.0.1", port)).expect("IPv4 client on dual stack");
        let v6 = TcpStream::connect(("::1", port)).expect("IPv6 client on dual stack");
        let want = [v4.local_addr().unwrap(), v6.local_addr().unwrap()];
        assert!(want[0].is_ipv4(), "{want:?}");
        let mut acceptor = engine::build(kind, &EngineOptions::default()).unwrap();
        let mut rec = Recorder::new(true);
        let limits = Limits {
            count: Some(2),
            deadline: Some(Instant::now() + Duration::from_secs(10)),
            stop: StopFlag::new(),
        };
        acceptor.run(&listener, &limits, &mut rec).unwrap();
        let mut got: Vec<SocketAddr> = rec.peers.iter().map(|p| p.peer).collect();
        got.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want, "{kind}");
    }

    let listener = Listener::bind(&spec("[::]:0", 16)).unwrap();
    let port = listener.local_addr.port();
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("v6-only takes no IPv4");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    TcpStream::connect(("::1", port)).expect("IPv6 client on v6-only");

    let mut v4 = spec("127.0.0.1:0", 16);
    v4.dual_stack = true;
    let err = Listener::bind(&v4).unwrap_err();
    assert!(
        matches!(err, ListenerError::DualStackNeedsIpv6 { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("[::]:0"), "{err}");
}
