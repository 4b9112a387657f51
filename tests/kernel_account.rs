//! The kernel's account on real sockets (root: tracefs, perf, a private network
//! namespace per test): a listener with backlog 2 that never accepts, and one that
//! accepts a few once SYNs have been retried, each hit by 20 non-blocking connects.
//! The account must agree with what the clients and the server saw, exactly.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use acceptbench::kernel::account::{account, Accepted, KernelAccount};
use acceptbench::kernel::netns::{enter_private, NetnsSettings};
use acceptbench::kernel::perf::trace::{Recorder, TraceSpec};
use common::testskip::{skip, Lack};
use socket2::{Domain, Socket, Type};

const BACKLOG: i32 = 2;
const CLIENTS: usize = 20;

/// What one scenario saw from outside the kernel's records.
struct Seen {
    account: KernelAccount,
    client_connected: usize,
    server_accepted: usize,
}

/// Whether a non-blocking connect has completed (the socket has a peer).
fn connected(s: &Socket) -> bool {
    s.take_error().ok().flatten().is_none() && s.peer_addr().is_ok()
}

fn accept_now(l: &Socket, into: &mut Vec<Accepted>) -> Option<TcpStream> {
    let (s, peer) = l.accept().ok()?;
    into.push(Accepted {
        peer: peer.as_socket()?,
        at_ns: common::clock::mono_ns(),
    });
    Some(s.into())
}

/// In a private namespace: a listener with backlog 2, 20 connects, `wait` before
/// accepting `early` connections, then `rest` more, then a final check of the
/// clients; the trace covers all of it. Err: why it cannot run here.
fn scenario(early: usize, wait: Duration, rest: Duration) -> Result<Seen, String> {
    enter_private(&NetnsSettings::default()).map_err(|e| e.to_string())?;
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    let addr: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    l.bind(&addr.into()).map_err(|e| e.to_string())?;
    l.listen(BACKLOG).map_err(|e| e.to_string())?;
    let server = l
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or("no local address")?;
    let rec = Recorder::start(&TraceSpec::port(server.port())).map_err(|e| e.to_string())?;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        c.set_nonblocking(true).map_err(|e| e.to_string())?;
        // EINPROGRESS is the expected answer of a non-blocking connect.
        let _ = c.connect(&server.into());
        clients.push(c);
    }
    std::thread::sleep(wait);
    let mut accepts = Vec::new();
    let mut held = Vec::new();
    held.extend((0..early).filter_map(|_| accept_now(&l, &mut accepts)));
    std::thread::sleep(rest);
    let client_connected = clients.iter().filter(|c| connected(c)).count();
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    // Whatever else is in the queue (at most backlog + 1).
    held.extend((0..=BACKLOG).filter_map(|_| accept_now(&l, &mut accepts)));
    let trace = rec.finish();
    Ok(Seen {
        account: account(&trace, server.port(), Some(&accepts)),
        client_connected,
        server_accepted: accepts.len(),
    })
}

fn run(early: usize, wait: Duration, rest: Duration) -> Option<Seen> {
    match std::thread::spawn(move || scenario(early, wait, rest)).join() {
        Ok(Ok(seen)) => Some(seen),
        Ok(Err(why)) => {
            skip(
                Lack::Root,
                &format!("the kernel's account cannot be recorded here: {why}"),
            );
            None
        }
        Err(_) => panic!("the scenario panicked"),
    }
}

/// Never accepting until the end: the queue holds backlog + 1 = 3; the other 17 SYNs
/// are dropped at the full queue and retried (first retransmit 1 s after the SYN), and
/// never established — as the clients saw.
#[test]
fn a_full_queue_holds_b_plus_one_and_the_rest_retry_their_syn() {
    let Some(seen) = run(0, Duration::from_millis(1500), Duration::ZERO) else {
        return;
    };
    let k = &seen.account;
    assert!(k.complete(), "lost {} records", k.lost_records);
    assert_eq!(k.syn_sent, CLIENTS as u64);
    assert_eq!(k.queued, BACKLOG as u64 + 1);
    assert_eq!(k.client_established, seen.client_connected as u64);
    assert_eq!(seen.client_connected, BACKLOG as usize + 1);
    assert_eq!(k.client_only, 0);
    assert_eq!(k.never_established, (CLIENTS - 3) as u64);
    // The three that got in needed no retransmit; each other one needed one by now.
    assert_eq!(
        k.retransmits_per_connection,
        vec![3, (CLIENTS - 3) as u64],
        "tracepoints not recorded: {:?}",
        k.absent
    );
    let first = k.waves[0];
    assert_eq!(first.connections, (CLIENTS - 3) as u64);
    assert!(
        (900_000_000..1_300_000_000).contains(&first.after_syn_p50_ns),
        "first SYN retransmit {} ns after the SYN",
        first.after_syn_p50_ns
    );
    assert_eq!((k.accepted, k.queued_not_accepted), (Some(3), Some(0)));
    let h = k.handshake.expect("three handshakes");
    assert_eq!(h.count, 3);
    assert!(h.max < 100_000_000, "loopback handshake took {} ns", h.max);
    assert!(k.queue_wait.expect("three queue waits").p50 >= 1_400_000_000);
}

/// Accepting 3 after 1.5 s: the next SYN retransmit wave (2 s after the SYNs: the first
/// `tcp_syn_linear_timeouts` retransmits are 1 s apart, Linux 6.5+) finds a
/// queue with room; its SYNs are all answered before their ACKs arrive, the queue
/// fills again with 3 children, and the other clients are established with no server
/// child — client-only, counted by the kernel exactly as clients minus server saw.
#[test]
fn client_only_connections_are_counted_exactly() {
    let Some(seen) = run(3, Duration::from_millis(1500), Duration::from_millis(2200)) else {
        return;
    };
    let k = &seen.account;
    eprintln!(
        "clients connected {}, server accepted {}, kernel: client established {}, queued {}, client-only {}, SYN retransmits {:?}, resets received {}",
        seen.client_connected, seen.server_accepted, k.client_established, k.queued, k.client_only, k.retransmits_per_connection, k.resets_received
    );
    assert!(k.complete(), "lost {} records", k.lost_records);
    assert_eq!(k.client_established, seen.client_connected as u64);
    assert_eq!(k.queued, seen.server_accepted as u64);
    assert_eq!(
        k.client_only,
        (seen.client_connected - seen.server_accepted) as u64,
        "kernel: {k:#?}"
    );
    assert!(
        k.client_only > 0,
        "no client-only connection happened: {k:#?}"
    );
    assert_eq!(k.queued_not_accepted, Some(0));
    assert_eq!(
        k.queue_wait.map(|q| q.count),
        Some(seen.server_accepted as u64)
    );
}

/// A dual-stack listener's child of an IPv4 client is an AF_INET6 socket with mapped
/// addresses, the client's socket AF_INET: they still join into one connection.
#[test]
fn a_dual_stack_child_joins_its_ipv4_client() {
    let scenario = || -> Result<KernelAccount, String> {
        enter_private(&NetnsSettings::default()).map_err(|e| e.to_string())?;
        let l = Socket::new(Domain::IPV6, Type::STREAM, None).map_err(|e| e.to_string())?;
        l.set_only_v6(false).map_err(|e| e.to_string())?;
        let any: SocketAddr = "[::]:0".parse().map_err(|e| format!("{e}"))?;
        l.bind(&any.into()).map_err(|e| e.to_string())?;
        l.listen(8).map_err(|e| e.to_string())?;
        let port = l
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .ok_or("no local address")?
            .port();
        let rec = Recorder::start(&TraceSpec::port(port)).map_err(|e| e.to_string())?;
        let c = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        let mut accepts = Vec::new();
        let s = accept_now(&l, &mut accepts).ok_or("accept failed")?;
        drop((c, s));
        let trace = rec.finish();
        Ok(account(&trace, port, Some(&accepts)))
    };
    let k = match std::thread::spawn(scenario).join() {
        Ok(Ok(k)) => k,
        Ok(Err(why)) => {
            skip(
                Lack::Root,
                &format!("the kernel's account cannot be recorded here: {why}"),
            );
            return;
        }
        Err(_) => panic!("the scenario panicked"),
    };
    assert_eq!(k.connections.len(), 1, "{:#?}", k.connections);
    assert_eq!(
        (k.syn_sent, k.client_established, k.queued, k.client_only),
        (1, 1, 1, 0)
    );
    assert_eq!(k.accepted, Some(1));
    assert!(k.connections[0].queue_wait_ns().is_some());
}
