//! The kernel's account of a run's connections, from the tracepoint records of
//! [`super::trace`]: each client socket's SYN, SYN retransmits and
//! establishment, each server child's creation and entry into the accept queue, joined
//! into connections by 4-tuple and time; then what that gives per run — connections
//! the server never had, SYN retransmits per connection, handshake and queue wait.
//!
//! Pure computation on plain data: no kernel access here (recording is
//! `perf::trace`'s), no opinion on runs (the caller hands in the accept stamps).
//!
//! What Linux 6.18 emits, by experiment (loopback, a listener with backlog 2):
//! - a connection that is served: client `CLOSE→SYN_SENT` (source port still 0: the
//!   port is bound after the state change, so a client socket's events are tied by
//!   its socket address, not its 4-tuple), client `SYN_SENT→ESTABLISHED` (on
//!   receiving the SYN-ACK), then server `LISTEN→SYN_RECV` and `SYN_RECV→ESTABLISHED`
//!   back to back on the child socket when the final ACK is processed: the child is
//!   created only then, and it is then in the accept queue. The request socket of
//!   the SYN (`TCP_NEW_SYN_RECV`) emits no state change.
//! - a SYN meeting a full accept queue (B+1 children) is dropped: the client
//!   retransmits (`tcp_retransmit_skb` in state SYN_SENT at 1 s, then 1 s apart for
//!   `tcp_syn_linear_timeouts` = 4 retransmits, then doubling) and stays SYN_SENT; no
//!   server event.
//! - client-only (the final ACK met a full queue): client `SYN_SENT→ESTABLISHED`
//!   and no server event at all; the ACK is dropped without a `kfree_skb` of reason
//!   `TCP_LISTEN_OVERFLOW` (none was seen: with syncookies on, the answered SYNs
//!   beyond the request queue are cookies, and their ACK is freed with reason
//!   `NO_SOCKET` at `cookie_v4_check`; a SYN dropped at a full queue is freed with
//!   no reason at all). It happens when several SYNs are
//!   answered before their ACKs arrive: a retransmit wave meeting a queue with a
//!   little room (backlog 2, 20 connects, 3 accepted at 1.5 s: the wave at 2 s got
//!   17 SYN-ACKs, 3 children, 14 client-only). The next segment the client sends
//!   (its FIN at close, or data) completes the handshake afresh: a child is created
//!   then if the queue has room (`LISTEN→SYN_RECV→ESTABLISHED` at the client's
//!   close, joined here to the same connection, which then is not client-only),
//!   otherwise it is dropped again and the client's FIN is retransmitted (state
//!   FIN_WAIT1) until a RST answers it.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::hist::{new_histogram, Percentiles};

use super::decode::{state, Event, Sample, Tp};
use super::trace::{Absent, Trace};

/// One connection as the kernel saw it. Stamps are CLOCK_MONOTONIC ns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConn {
    /// The client's end (None: no event of the client carried its port).
    pub client: Option<SocketAddr>,
    /// The server's end.
    pub server: Option<SocketAddr>,
    /// Client `CLOSE→SYN_SENT` (None: the client was not seen, or connected
    /// before recording began).
    pub syn_sent_ns: Option<u64>,
    /// Each SYN retransmit.
    pub syn_retransmits_ns: Vec<u64>,
    /// Client `SYN_SENT→ESTABLISHED`.
    pub client_established_ns: Option<u64>,
    /// Client socket closed (state CLOSE).
    pub client_closed_ns: Option<u64>,
    /// The client received a RST.
    pub client_reset: bool,
    /// Server child `LISTEN→SYN_RECV` (the final ACK arrived).
    pub child_created_ns: Option<u64>,
    /// Server child `SYN_RECV→ESTABLISHED`: it entered the accept queue.
    pub child_established_ns: Option<u64>,
    /// Server child closed.
    pub child_closed_ns: Option<u64>,
    /// Accepted (the caller's stamp for this client address).
    pub accepted_ns: Option<u64>,
}

impl KernelConn {
    /// Established on the client with no server child ever established.
    pub fn client_only(&self) -> bool {
        self.client_established_ns.is_some() && self.child_established_ns.is_none()
    }

    /// SYN sent → server child established.
    pub fn handshake_ns(&self) -> Option<u64> {
        self.child_established_ns?.checked_sub(self.syn_sent_ns?)
    }

    /// Server child established → accepted.
    pub fn queue_wait_ns(&self) -> Option<u64> {
        self.accepted_ns?.checked_sub(self.child_established_ns?)
    }
}

/// An accept the caller recorded: the peer's address and when accept returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The client's address as accept gave it.
    pub peer: SocketAddr,
    /// CLOCK_MONOTONIC ns.
    pub at_ns: u64,
}

/// The `nth` SYN retransmit across connections: how many needed it and when it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wave {
    /// 1 for the first retransmit.
    pub nth: usize,
    /// Connections that sent it.
    pub connections: u64,
    /// Its delay after the SYN, median over those connections (ns).
    pub after_syn_p50_ns: u64,
    /// Its delay after the SYN, largest (ns).
    pub after_syn_max_ns: u64,
}

/// What the kernel's records give for one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KernelAccount {
    /// Every connection, client attempts and server children joined.
    pub connections: Vec<KernelConn>,
    /// Client sockets that sent a SYN to the port.
    pub syn_sent: u64,
    /// Of those, established on the client.
    pub client_established: u64,
    /// Server children established (entered the accept queue).
    pub queued: u64,
    /// Established on the client with no server child established: connections
    /// the server never had.
    pub client_only: u64,
    /// SYN sent, never established on the client.
    pub never_established: u64,
    /// Server children matched to an accept (None: no accepts given).
    pub accepted: Option<u64>,
    /// Server children established but never accepted (None: no accepts given).
    pub queued_not_accepted: Option<u64>,
    /// SYN retransmits, all connections.
    pub syn_retransmits: u64,
    /// `[i]`: connections (client attempts) that needed exactly `i` SYN retransmits.
    pub retransmits_per_connection: Vec<u64>,
    /// Per nth retransmit, how many and when.
    pub waves: Vec<Wave>,
    /// SYN-ACKs the listener resent.
    pub synack_retransmits: u64,
    /// RSTs received (either end).
    pub resets_received: u64,
    /// RSTs sent (either end, with the port at one end).
    pub resets_sent: u64,
    /// Records of the host-wide events (`tcp_send_reset`, `kfree_skb`) lost: then
    /// `resets_sent` and `overflow_drops` may be short; the rest is unaffected.
    pub lost_host_wide: u64,
    /// Packets dropped for a full accept queue (`kfree_skb` reason
    /// TCP_LISTEN_OVERFLOW; the host's listeners, not only the run's).
    pub overflow_drops: u64,
    /// SYN sent → server child established, per connection.
    pub handshake: Option<Percentiles>,
    /// Server child established → accepted, per connection.
    pub queue_wait: Option<Percentiles>,
    /// Records the kernel lost (full rings), records that did not decode and records
    /// it counted but never delivered: non-zero means the counts above may be short.
    pub lost_records: u64,
    /// Of those, counted by the kernel but never delivered ([`Trace::undelivered`]).
    pub undelivered: u64,
    /// The recorder stopped by its time limit before the run ended.
    pub cut_short: bool,
    /// Tracepoints this kernel could not give, and why (their figures stay zero).
    pub absent: Vec<Absent>,
}

impl KernelAccount {
    /// Whether the account is whole (no record lost, none undecoded, not cut short).
    pub fn complete(&self) -> bool {
        self.lost_records == 0 && !self.cut_short
    }

    /// What the account lacks in records, for a note (None: nothing lost): `N trace
    /// records lost or undecoded (M of them counted by the kernel but never
    /// delivered …)`.
    pub fn shortfall(&self) -> Option<String> {
        if self.lost_records == 0 {
            return None;
        }
        let undelivered = if self.undelivered > 0 {
            format!(
                " ({} of them counted by the kernel but never delivered to its ring, with no lost-record notice)",
                self.undelivered
            )
        } else {
            String::new()
        };
        Some(format!(
            "{} trace records lost or undecoded{undelivered}",
            self.lost_records
        ))
    }

    /// Whether tracepoint `tp` was recorded: the figures drawn from it are zero, not
    /// measured, where it was not (then [`KernelAccount::absent`] says why).
    pub fn recorded(&self, tp: Tp) -> bool {
        !self.absent.iter().any(|a| a.event == tp.name())
    }
}

/// Per-socket histories, before the join.
#[derive(Default)]
struct Sides {
    clients: Vec<KernelConn>,
    children: Vec<KernelConn>,
    synack_retransmits: u64,
    resets_received: u64,
    resets_sent: u64,
    overflow_drops: u64,
}

/// Follows each socket by its kernel address: a client from `CLOSE→SYN_SENT` (or its
/// first SYN retransmit, when it connected before recording began) until `CLOSE`;
/// a server child from `LISTEN→SYN_RECV` until `CLOSE`. An address reused by a
/// later socket starts a new history.
fn follow(samples: &[Sample], port: u16) -> Sides {
    let mut f = Follower {
        port,
        ..Follower::default()
    };
    for smp in samples {
        let t = smp.time_ns;
        match smp.event {
            Event::State {
                sk,
                old,
                new,
                src,
                dst,
            } => f.state(t, sk, (old, new), src, dst),
            Event::Retransmit {
                sk,
                state: st,
                src,
                dst,
            } if st == state::SYN_SENT => f.syn_retransmit(t, sk, src, dst),
            Event::Retransmit { .. } => {}
            Event::SynackRetransmit { .. } => f.s.synack_retransmits += 1,
            Event::ReceiveReset { sk, .. } => {
                f.s.resets_received += 1;
                if let Some(&i) = f.live_client.get(&sk) {
                    f.s.clients[i].client_reset = true;
                }
            }
            Event::SendReset { .. } => f.s.resets_sent += 1,
            Event::OverflowDrop { .. } => f.s.overflow_drops += 1,
        }
    }
    f.s
}

/// The histories so far and which socket addresses are live (their socket not yet
/// closed), client and server side.
#[derive(Default)]
struct Follower {
    port: u16,
    s: Sides,
    live_client: HashMap<u64, usize>,
    live_child: HashMap<u64, usize>,
}

impl Follower {
    fn state(&mut self, t: u64, sk: u64, (old, new): (i32, i32), src: SocketAddr, dst: SocketAddr) {
        let s = &mut self.s;
        if old == state::CLOSE && new == state::SYN_SENT && dst.port() == self.port {
            self.live_client.insert(sk, s.clients.len());
            s.clients.push(KernelConn {
                server: Some(dst),
                syn_sent_ns: Some(t),
                ..KernelConn::default()
            });
        } else if old == state::LISTEN && new == state::SYN_RECV && src.port() == self.port {
            self.live_child.insert(sk, s.children.len());
            s.children.push(KernelConn {
                client: Some(dst),
                server: Some(src),
                child_created_ns: Some(t),
                ..KernelConn::default()
            });
        } else if let Some(&i) = self.live_client.get(&sk) {
            let c = &mut s.clients[i];
            if src.port() != 0 {
                c.client = Some(src);
            }
            if old == state::SYN_SENT && new == state::ESTABLISHED {
                c.client_established_ns = Some(t);
            }
            if new == state::CLOSE {
                c.client_closed_ns = Some(t);
                self.live_client.remove(&sk);
            }
        } else if let Some(&i) = self.live_child.get(&sk) {
            let c = &mut s.children[i];
            if old == state::SYN_RECV && new == state::ESTABLISHED {
                c.child_established_ns = Some(t);
            }
            if new == state::CLOSE {
                c.child_closed_ns = Some(t);
                self.live_child.remove(&sk);
            }
        }
    }

    /// A SYN retransmit; the first record of a client that connected before
    /// recording began.
    fn syn_retransmit(&mut self, t: u64, sk: u64, src: SocketAddr, dst: SocketAddr) {
        let clients = &mut self.s.clients;
        let i = *self.live_client.entry(sk).or_insert_with(|| {
            clients.push(KernelConn {
                server: Some(dst),
                ..KernelConn::default()
            });
            clients.len() - 1
        });
        clients[i].client = Some(src);
        clients[i].syn_retransmits_ns.push(t);
    }
}

/// Joins each server child to the client socket with the same 4-tuple whose SYN
/// went last before the child was created; a child with no such client (the
/// client on another host) is a connection of its own.
fn join(sides: &mut Sides) -> Vec<KernelConn> {
    let mut by_tuple: HashMap<(SocketAddr, SocketAddr), Vec<usize>> = HashMap::new();
    for (i, c) in sides.clients.iter().enumerate() {
        if let (Some(a), Some(b)) = (c.client, c.server) {
            by_tuple.entry((a, b)).or_default().push(i);
        }
    }
    let mut conns = std::mem::take(&mut sides.clients);
    let mut joined = vec![false; conns.len()];
    for child in std::mem::take(&mut sides.children) {
        let created = child.child_created_ns.unwrap_or(0);
        let candidate = child
            .client
            .zip(child.server)
            .and_then(|key| by_tuple.get(&key))
            .and_then(|ids| {
                ids.iter()
                    .copied()
                    .filter(|&i| !joined[i] && conns[i].syn_sent_ns.is_none_or(|s| s <= created))
                    .max_by_key(|&i| conns[i].syn_sent_ns)
            });
        match candidate {
            Some(i) => {
                joined[i] = true;
                let c = &mut conns[i];
                c.child_created_ns = child.child_created_ns;
                c.child_established_ns = child.child_established_ns;
                c.child_closed_ns = child.child_closed_ns;
            }
            None => conns.push(child),
        }
    }
    conns
}

/// Gives each queued connection its accept: the caller's stamp for the same client
/// address, the first at or after the child entered the queue.
fn match_accepts(conns: &mut [KernelConn], accepts: &[Accepted]) -> u64 {
    let mut by_peer: HashMap<SocketAddr, Vec<u64>> = HashMap::new();
    for a in accepts {
        by_peer
            .entry(crate::sockaddr::unmap_v4(a.peer))
            .or_default()
            .push(a.at_ns);
    }
    for stamps in by_peer.values_mut() {
        stamps.sort_unstable();
    }
    let mut matched = 0;
    for c in conns.iter_mut() {
        let (Some(client), Some(queued)) = (c.client, c.child_established_ns) else {
            continue;
        };
        let Some(stamps) = by_peer.get_mut(&crate::sockaddr::unmap_v4(client)) else {
            continue;
        };
        if let Some(pos) = stamps.iter().position(|&t| t >= queued) {
            c.accepted_ns = Some(stamps.remove(pos));
            matched += 1;
        }
    }
    matched
}

fn percentiles(values: impl Iterator<Item = u64>) -> Option<Percentiles> {
    let mut h = new_histogram();
    for v in values {
        // Values beyond the histogram's auto-resized range cannot occur (u64 ns).
        let _ = h.record(v.max(1));
    }
    Percentiles::measured(&h)
}

fn waves(conns: &[KernelConn]) -> Vec<Wave> {
    let most = conns
        .iter()
        .map(|c| c.syn_retransmits_ns.len())
        .max()
        .unwrap_or(0);
    (1..=most)
        .map(|nth| {
            let mut after: Vec<u64> = conns
                .iter()
                .filter_map(|c| {
                    let at = *c.syn_retransmits_ns.get(nth - 1)?;
                    at.checked_sub(c.syn_sent_ns?)
                })
                .collect();
            after.sort_unstable();
            let sent = conns
                .iter()
                .filter(|c| c.syn_retransmits_ns.len() >= nth)
                .count() as u64;
            Wave {
                nth,
                connections: sent,
                after_syn_p50_ns: after
                    .get(after.len().saturating_sub(1) / 2)
                    .copied()
                    .unwrap_or(0),
                after_syn_max_ns: after.last().copied().unwrap_or(0),
            }
        })
        .collect()
}

/// The account of `trace` for the run's `port`; `accepts` (None: not known, e.g. an
/// external server) gives queue waits and the queued-but-never-accepted count.
pub fn account(trace: &Trace, port: u16, accepts: Option<&[Accepted]>) -> KernelAccount {
    let mut sides = follow(&trace.samples, port);
    let mut conns = join(&mut sides);
    let accepted = accepts.map(|a| match_accepts(&mut conns, a));
    let clients = conns
        .iter()
        .filter(|c| c.syn_sent_ns.is_some() || !c.syn_retransmits_ns.is_empty());
    let mut per_connection = Vec::new();
    for c in clients.clone() {
        let n = c.syn_retransmits_ns.len();
        if per_connection.len() <= n {
            per_connection.resize(n + 1, 0);
        }
        per_connection[n] += 1;
    }
    let queued = conns
        .iter()
        .filter(|c| c.child_established_ns.is_some())
        .count() as u64;
    KernelAccount {
        syn_sent: clients.clone().count() as u64,
        client_established: clients
            .clone()
            .filter(|c| c.client_established_ns.is_some())
            .count() as u64,
        queued,
        client_only: conns.iter().filter(|c| c.client_only()).count() as u64,
        never_established: clients
            .filter(|c| c.client_established_ns.is_none())
            .count() as u64,
        accepted,
        queued_not_accepted: accepted.map(|a| queued - a),
        syn_retransmits: conns
            .iter()
            .map(|c| c.syn_retransmits_ns.len() as u64)
            .sum(),
        retransmits_per_connection: per_connection,
        waves: waves(&conns),
        synack_retransmits: sides.synack_retransmits,
        resets_received: sides.resets_received,
        resets_sent: sides.resets_sent,
        lost_host_wide: trace.lost_host_wide,
        overflow_drops: sides.overflow_drops,
        handshake: percentiles(conns.iter().filter_map(KernelConn::handshake_ns)),
        queue_wait: percentiles(conns.iter().filter_map(KernelConn::queue_wait_ns)),
        lost_records: trace.lost + trace.undecoded + trace.undelivered,
        undelivered: trace.undelivered,
        cut_short: trace.cut_short,
        absent: trace.absent.clone(),
        connections: conns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::{CLOSE, ESTABLISHED, LISTEN, SYN_RECV, SYN_SENT};

    const PORT: u16 = 8080;
    const MS: u64 = 1_000_000;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn st(t: u64, sk: u64, old: i32, new: i32, src: &str, dst: &str) -> Sample {
        Sample {
            time_ns: t,
            cpu: 0,
            event: Event::State {
                sk,
                old,
                new,
                src: a(src),
                dst: a(dst),
            },
        }
    }

    fn syn_rtx(t: u64, sk: u64, src: &str) -> Sample {
        Sample {
            time_ns: t,
            cpu: 1,
            event: Event::Retransmit {
                sk,
                state: SYN_SENT,
                src: a(src),
                dst: a("10.0.0.1:8080"),
            },
        }
    }

    const SRV: &str = "10.0.0.1:8080";

    /// A served connection from client port `p` on socket `sk` (child `sk + 1`), the
    /// SYN at `t`, `rtx` retransmits 1 s, 3 s … after it.
    fn served(t: u64, sk: u64, p: u16, rtx: usize) -> Vec<Sample> {
        let cl = format!("10.0.0.2:{p}");
        let mut v = vec![st(t, sk, CLOSE, SYN_SENT, "10.0.0.2:0", SRV)];
        let mut at = t;
        for k in 0..rtx {
            at = t + ((2u64 << k) - 1) * 1000 * MS;
            v.push(syn_rtx(at, sk, &cl));
        }
        v.push(st(at + 10_000, sk, SYN_SENT, ESTABLISHED, &cl, SRV));
        v.push(st(at + 20_000, sk + 1, LISTEN, SYN_RECV, SRV, &cl));
        v.push(st(at + 25_000, sk + 1, SYN_RECV, ESTABLISHED, SRV, &cl));
        v
    }

    fn trace(mut samples: Vec<Sample>) -> Trace {
        samples.sort_by_key(|s| s.time_ns);
        Trace {
            samples,
            ..Trace::default()
        }
    }

    #[test]
    fn served_client_only_and_never_established_are_told_apart() {
        let mut s = served(0, 100, 40000, 0);
        s.extend(served(MS, 200, 40001, 2));
        // Client-only: SYN, one retransmit, established on the client, no child.
        s.push(st(2 * MS, 300, CLOSE, SYN_SENT, "10.0.0.2:0", SRV));
        s.push(syn_rtx(1002 * MS, 300, "10.0.0.2:40002"));
        s.push(st(
            1002 * MS + 9,
            300,
            SYN_SENT,
            ESTABLISHED,
            "10.0.0.2:40002",
            SRV,
        ));
        // Never established: SYN, three retransmits, closed by the client.
        s.push(st(3 * MS, 400, CLOSE, SYN_SENT, "10.0.0.2:0", SRV));
        for k in [1000, 3000, 7000] {
            s.push(syn_rtx(3 * MS + k * MS, 400, "10.0.0.2:40003"));
        }
        s.push(st(9000 * MS, 400, SYN_SENT, CLOSE, "10.0.0.2:40003", SRV));
        let accepts = [
            Accepted {
                peer: a("10.0.0.2:40000"),
                at_ns: 500_000,
            },
            Accepted {
                peer: a("[::ffff:10.0.0.2]:40001"),
                at_ns: 3001 * MS + 25_000 + 1_000_000,
            },
        ];
        let acc = account(&trace(s), PORT, Some(&accepts));
        assert_eq!(acc.connections.len(), 4);
        assert_eq!(
            (
                acc.syn_sent,
                acc.client_established,
                acc.queued,
                acc.client_only,
                acc.never_established
            ),
            (4, 3, 2, 1, 1)
        );
        assert_eq!((acc.accepted, acc.queued_not_accepted), (Some(2), Some(0)));
        assert_eq!(acc.syn_retransmits, 2 + 1 + 3);
        assert_eq!(acc.retransmits_per_connection, vec![1, 1, 1, 1]);
        assert_eq!(acc.waves.len(), 3);
        assert_eq!(
            (
                acc.waves[0].connections,
                acc.waves[1].connections,
                acc.waves[2].connections
            ),
            (3, 2, 1)
        );
        assert_eq!(acc.waves[0].after_syn_p50_ns, 1000 * MS);
        assert_eq!(acc.waves[1].after_syn_max_ns, 3000 * MS);
        // Handshake: SYN → child established; the first connection's is 25 µs.
        let h = acc.handshake.unwrap();
        assert_eq!(h.count, 2);
        assert_eq!(acc.connections[0].handshake_ns(), Some(25_000));
        assert_eq!(acc.connections[0].queue_wait_ns(), Some(500_000 - 25_000));
        assert_eq!(acc.connections[1].queue_wait_ns(), Some(1_000_000));
        assert_eq!(acc.queue_wait.unwrap().count, 2);
        assert!(acc.complete());
    }

    #[test]
    fn a_reused_socket_and_port_are_joined_by_time() {
        // The same client socket address and 4-tuple twice: the second child joins
        // the second SYN, not the first.
        let mut s = served(0, 100, 40000, 0);
        s.push(st(50_000, 100, ESTABLISHED, CLOSE, "10.0.0.2:40000", SRV));
        s.push(st(60_000, 101, ESTABLISHED, CLOSE, SRV, "10.0.0.2:40000"));
        s.extend(served(10 * MS, 100, 40000, 0));
        let acc = account(&trace(s), PORT, None);
        assert_eq!(acc.connections.len(), 2);
        assert_eq!(acc.queued, 2);
        assert_eq!(acc.client_only, 0);
        assert_eq!(acc.connections[0].child_closed_ns, Some(60_000));
        assert_eq!(
            acc.connections[1].child_established_ns,
            Some(10 * MS + 25_000)
        );
        assert_eq!(acc.connections[1].child_closed_ns, None);
        assert_eq!((acc.accepted, acc.queue_wait), (None, None));
    }

    #[test]
    fn a_child_without_its_client_is_not_client_only() {
        // The client is on another host: only the server's events.
        let s = vec![
            st(10, 7, LISTEN, SYN_RECV, SRV, "10.0.0.9:5000"),
            st(20, 7, SYN_RECV, ESTABLISHED, SRV, "10.0.0.9:5000"),
        ];
        let acc = account(&trace(s), PORT, None);
        assert_eq!(
            (
                acc.connections.len(),
                acc.queued,
                acc.client_only,
                acc.syn_sent
            ),
            (1, 1, 0, 0)
        );
        assert_eq!(acc.handshake, None);
    }

    #[test]
    fn lost_records_make_the_account_incomplete() {
        let mut t = trace(served(0, 1, 40000, 0));
        t.lost = 3;
        t.undecoded = 1;
        t.undelivered = 2;
        let acc = account(&t, PORT, None);
        assert_eq!((acc.lost_records, acc.undelivered), (6, 2));
        assert!(!acc.complete());
    }
}
