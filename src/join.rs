//! Joins the client's per-connection records with the acceptor's: end-to-end
//! peer-extraction latency, and the accounting check that every connection the
//! client completed was accepted exactly once with the right peer address.
//!
//! A client address (ip, port) can be reused within a run once its previous
//! connection is closed, so records are matched per address in time order: each
//! server record takes the earliest unmatched client connect of that address that
//! started before the server decoded the peer.

use std::collections::HashMap;
use std::net::SocketAddr;

use hdrhistogram::Histogram;

use crate::record::PeerRecord;
use common::hist::new_histogram;

/// One established client connection, as the join needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConn {
    /// The client's local address (the peer the server should see).
    pub local: SocketAddr,
    /// CLOCK_MONOTONIC ns when the client called connect().
    pub connect_start_ns: u64,
    /// Made during the warm-up: joined (the server accepted it too) but not measured.
    pub warmup: bool,
}

/// The outcome of a join.
#[derive(Debug)]
pub struct Joined {
    /// Client connections that the server accepted with the same address.
    pub matched: u64,
    /// Established client connections the server never recorded.
    pub unmatched_client: u64,
    /// Server records with no client connection left to match (address known to the client).
    pub unmatched_server: u64,
    /// Server records whose peer address the client never used: a wrong peer address.
    pub unknown_peer: u64,
    /// End-to-end peer-extraction latency: client connect() called → server holds the peer, ns.
    pub peer_e2e_ns: Histogram<u64>,
    /// The same latency per acceptor ([`join_owned`]; one entry for [`join`]).
    pub peer_e2e_by_acceptor_ns: Vec<Histogram<u64>>,
}

impl Joined {
    /// All unmatched connections, both sides.
    pub fn unmatched(&self) -> u64 {
        self.unmatched_client + self.unmatched_server + self.unknown_peer
    }
}

/// Matches `client` connections with `server` records.
pub fn join(client: &[ClientConn], server: &[PeerRecord]) -> Joined {
    join_owned(client, server, &[], 1)
}

/// [`join`] for the merged records of `acceptors` acceptors: `owner[i]` is the
/// acceptor that recorded `server[i]` (missing entries count as acceptor 0); each
/// matched latency also goes to its acceptor's histogram.
pub fn join_owned(
    client: &[ClientConn],
    server: &[PeerRecord],
    owner: &[u16],
    acceptors: usize,
) -> Joined {
    let mut out = Joined {
        matched: 0,
        unmatched_client: 0,
        unmatched_server: 0,
        unknown_peer: 0,
        peer_e2e_ns: new_histogram(),
        peer_e2e_by_acceptor_ns: (0..acceptors.max(1)).map(|_| new_histogram()).collect(),
    };
    let m = pairs(client, server);
    for &(ci, si) in &m.pairs {
        out.matched += 1;
        let (c, rec) = (&client[ci], &server[si]);
        if !c.warmup {
            let ns = (rec.decoded_ns - c.connect_start_ns).max(1);
            out.peer_e2e_ns.saturating_record(ns);
            let a = owner.get(si).copied().unwrap_or(0) as usize;
            if let Some(h) = out.peer_e2e_by_acceptor_ns.get_mut(a) {
                h.saturating_record(ns);
            }
        }
    }
    out.unmatched_client = m.unmatched_client;
    out.unmatched_server = m.unmatched_server;
    out.unknown_peer = m.unknown_peer;
    out
}

/// When the server held each client connection's peer (`decoded_ns`), by the same
/// matching as [`join`]: `None` for a connection the server never recorded.
pub fn held_times(client: &[ClientConn], server: &[PeerRecord]) -> Vec<Option<u64>> {
    let mut held = vec![None; client.len()];
    for (ci, si) in pairs(client, server).pairs {
        held[ci] = Some(server[si].decoded_ns);
    }
    held
}

/// The (client index, server index) pairs of [`join`]'s matching: the same
/// connections, the same order of choice.
pub fn matched_pairs(client: &[ClientConn], server: &[PeerRecord]) -> Vec<(usize, usize)> {
    pairs(client, server).pairs
}

/// The matching itself: (client index, server index) pairs and what was left over.
struct Matching {
    pairs: Vec<(usize, usize)>,
    unmatched_client: u64,
    unmatched_server: u64,
    unknown_peer: u64,
}

fn pairs(client: &[ClientConn], server: &[PeerRecord]) -> Matching {
    // Per address: (connect start, client index) in time order.
    let mut by_addr: HashMap<SocketAddr, Vec<(u64, usize)>> = HashMap::with_capacity(client.len());
    for (i, c) in client.iter().enumerate() {
        by_addr
            .entry(c.local)
            .or_default()
            .push((c.connect_start_ns, i));
    }
    for starts in by_addr.values_mut() {
        starts.sort_unstable();
    }
    let mut server_sorted: Vec<(usize, &PeerRecord)> = server.iter().enumerate().collect();
    server_sorted.sort_unstable_by_key(|(_, r)| r.decoded_ns);

    // Next unmatched client connect per address (index into its sorted starts).
    let mut next: HashMap<SocketAddr, usize> = HashMap::with_capacity(by_addr.len());
    let mut out = Matching {
        pairs: Vec::with_capacity(server.len()),
        unmatched_client: 0,
        unmatched_server: 0,
        unknown_peer: 0,
    };
    for (idx, rec) in server_sorted {
        let Some(starts) = by_addr.get(&rec.peer) else {
            out.unknown_peer += 1;
            continue;
        };
        let i = next.entry(rec.peer).or_insert(0);
        // Client connects of this address that began before the peer was decoded and
        // were never matched belong to connections the server did not see; skip them
        // only if a later one also began before this record (port reuse).
        while *i + 1 < starts.len() && starts[*i + 1].0 <= rec.decoded_ns {
            *i += 1;
            out.unmatched_client += 1;
        }
        match starts.get(*i) {
            Some(&(start, ci)) if start <= rec.decoded_ns => {
                out.pairs.push((ci, idx));
                *i += 1;
            }
            _ => out.unmatched_server += 1,
        }
    }
    for (addr, starts) in &by_addr {
        let used = next.get(addr).copied().unwrap_or(0);
        out.unmatched_client += (starts.len() - used) as u64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], port))
    }
    fn c(port: u16, t: u64) -> ClientConn {
        ClientConn {
            local: addr(port),
            connect_start_ns: t,
            warmup: false,
        }
    }
    fn s(port: u16, t: u64) -> PeerRecord {
        PeerRecord {
            peer: addr(port),
            accepted_ns: t,
            decoded_ns: t,
        }
    }

    #[test]
    fn matches_every_connection_once_and_measures_latency() {
        let client = [c(1, 100), c(2, 110), c(1, 500)];
        let server = [s(1, 150), s(2, 170), s(1, 560)];
        let j = join(&client, &server);
        assert_eq!((j.matched, j.unmatched()), (3, 0));
        assert_eq!(j.peer_e2e_ns.len(), 3);
        assert_eq!(j.peer_e2e_ns.max(), 60);
    }

    #[test]
    fn reports_each_kind_of_mismatch() {
        // Port 1 reused: the server missed the first connection.
        // Port 9: the server saw a peer the client never used.
        // Port 3: the client never saw an established connection the server recorded twice.
        let client = [c(1, 100), c(1, 500), c(3, 10)];
        let server = [s(1, 560), s(9, 50), s(3, 20), s(3, 30)];
        let j = join(&client, &server);
        assert_eq!(
            held_times(&client, &server),
            [None, Some(560), Some(20)],
            "the first port-1 connect was never seen"
        );
        assert_eq!(j.matched, 2);
        assert_eq!(j.unmatched_client, 1);
        assert_eq!(j.unknown_peer, 1);
        assert_eq!(j.unmatched_server, 1);
    }

    #[test]
    fn warm_up_connections_are_matched_but_not_measured() {
        let mut w = c(1, 100);
        w.warmup = true;
        let j = join(&[w, c(2, 200)], &[s(1, 150), s(2, 230)]);
        assert_eq!((j.matched, j.unmatched()), (2, 0));
        assert_eq!(j.peer_e2e_ns.len(), 1);
        assert_eq!(j.peer_e2e_ns.max(), 30);
    }

    #[test]
    fn a_server_record_before_the_connect_is_not_matched() {
        let j = join(&[c(1, 100)], &[s(1, 50)]);
        assert_eq!(
            (j.matched, j.unmatched_client, j.unmatched_server),
            (0, 1, 1)
        );
    }
}
