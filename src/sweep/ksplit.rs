//! `sweep --trace kernel`: each joined connection's peer-extraction latency split at
//! the kernel's stamp of its server child entering the accept queue — handshake
//! (the client's `connect()` called → child established), queue wait (→ accept
//! returned, the engine's stamp) and decode (→ the peer held). The three parts are
//! differences of four CLOCK_MONOTONIC stamps taken in that order, so they add up to
//! the join's peer latency exactly; a connection whose stamps are out of order is
//! left out and counted (it would mean the clocks or the join disagree).
//!
//! For an external server accepted = held = served (the client saw it close or
//! answer): the queue wait is then queue plus service, and there is no decode.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use common::hist::{new_histogram, Percentiles};
use hdrhistogram::Histogram;

use super::ktrace::KernelTrace;
use crate::join::{matched_pairs, ClientConn};
use crate::record::PeerRecord;
use crate::report::row::SummaryRow;

/// One connection's four stamps, CLOCK_MONOTONIC ns, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitConn {
    /// The client's address.
    pub client: SocketAddr,
    /// The client called `connect()` (loadgen's record).
    pub connect_ns: u64,
    /// The server child entered the accept queue (`SYN_RECV→ESTABLISHED`).
    pub child_established_ns: u64,
    /// Accept returned (the engine's record); external: served.
    pub accepted_ns: u64,
    /// The decoded peer was held (the engine's record); external: served.
    pub held_ns: u64,
}

impl SplitConn {
    /// `connect()` → child established.
    pub fn handshake_ns(&self) -> u64 {
        self.child_established_ns - self.connect_ns
    }
    /// Child established → accept returned (external: → served).
    pub fn queue_wait_ns(&self) -> u64 {
        self.accepted_ns - self.child_established_ns
    }
    /// Accept returned → peer held.
    pub fn decode_ns(&self) -> u64 {
        self.held_ns - self.accepted_ns
    }
    /// `connect()` → peer held: the join's peer-extraction latency.
    pub fn peer_ns(&self) -> u64 {
        self.held_ns - self.connect_ns
    }
}

/// The split of a run's joined connections.
#[derive(Debug, Default)]
pub struct Split {
    /// Every measured (not warm-up) joined connection the kernel's account has a
    /// child for, stamps in order.
    pub conns: Vec<SplitConn>,
    /// Joined connections whose stamps were out of order (left out).
    pub disordered: u64,
    /// Measured joined connections with no server child in the kernel's account.
    pub without_child: u64,
    /// The kernel's account was recorded (else everything above is empty).
    pub recorded: bool,
}

/// Splits each measured connection the join matched (`client` with `peers`) at its
/// server child's establishment, found in the kernel's account by client address
/// and accept stamp. Empty when the account was not recorded.
pub fn split(k: &KernelTrace, client: &[ClientConn], peers: &[PeerRecord]) -> Split {
    let KernelTrace::Recorded(k) = k else {
        return Split::default();
    };
    let queued: HashMap<(SocketAddr, u64), u64> = k
        .connections
        .iter()
        .filter_map(|c| {
            let addr = crate::peer::unmap_v4(c.client?);
            Some(((addr, c.accepted_ns?), c.child_established_ns?))
        })
        .collect();
    let mut out = Split {
        recorded: true,
        ..Split::default()
    };
    for (ci, si) in matched_pairs(client, peers) {
        let (c, p) = (&client[ci], &peers[si]);
        if c.warmup {
            continue;
        }
        let Some(&child) = queued.get(&(crate::peer::unmap_v4(p.peer), p.accepted_ns)) else {
            out.without_child += 1;
            continue;
        };
        let s = SplitConn {
            client: c.local,
            connect_ns: c.connect_start_ns,
            child_established_ns: child,
            accepted_ns: p.accepted_ns,
            held_ns: p.decoded_ns,
        };
        if s.connect_ns <= s.child_established_ns
            && s.child_established_ns <= s.accepted_ns
            && s.accepted_ns <= s.held_ns
        {
            out.conns.push(s);
        } else {
            out.disordered += 1;
        }
    }
    out
}

impl Split {
    fn histogram(&self, part: fn(&SplitConn) -> u64) -> Histogram<u64> {
        let mut h = new_histogram();
        for c in &self.conns {
            h.saturating_record(part(c).max(1));
        }
        h
    }

    /// `kernel-handshake`, `kernel-queue-wait` (external: `kernel-queue-service`)
    /// and, for our engines, `kernel-decode` (ns); none without a split connection.
    pub fn histograms(&self, external: bool) -> Vec<(&'static str, Histogram<u64>)> {
        if self.conns.is_empty() {
            return Vec::new();
        }
        let mut v = vec![("kernel-handshake", self.histogram(SplitConn::handshake_ns))];
        if external {
            v.push((
                "kernel-queue-service",
                self.histogram(SplitConn::queue_wait_ns),
            ));
        } else {
            v.push((
                "kernel-queue-wait",
                self.histogram(SplitConn::queue_wait_ns),
            ));
            v.push(("kernel-decode", self.histogram(SplitConn::decode_ns)));
        }
        v
    }

    /// Percentiles of handshake, queue wait and decode.
    pub fn percentiles(&self) -> [Option<Percentiles>; 3] {
        [
            SplitConn::handshake_ns,
            SplitConn::queue_wait_ns,
            SplitConn::decode_ns,
        ]
        .map(|f| Percentiles::measured(&self.histogram(f)))
    }

    /// What the row's notes must say: connections the split left out.
    pub fn note(&self) -> Option<String> {
        (self.disordered > 0).then(|| {
            format!(
                "--trace kernel: {} joined connections' stamps out of order (connect() ≤ child established ≤ accept returned ≤ peer held failed): left out of the latency split",
                self.disordered
            )
        })
    }
}

/// Fills the row's latency-split columns (`kernel_handshake_*`, `kernel_queue_wait_*`,
/// `kernel_decode_*`, `kernel_split_connections`); decode left empty for an `external`
/// server, everything when the account was not recorded.
pub fn fill(row: &mut SummaryRow, split: &Split, external: bool) {
    if !split.recorded {
        return;
    }
    let [handshake, queue_wait, decode] = split.percentiles();
    row.kernel_handshake_p50_ns = handshake.map(|p| p.p50);
    row.kernel_handshake_p99_ns = handshake.map(|p| p.p99);
    row.kernel_queue_wait_p50_ns = queue_wait.map(|p| p.p50);
    row.kernel_queue_wait_p99_ns = queue_wait.map(|p| p.p99);
    if !external {
        row.kernel_decode_p50_ns = decode.map(|p| p.p50);
        row.kernel_decode_p99_ns = decode.map(|p| p.p99);
    }
    row.kernel_split_connections = Some(split.conns.len() as u64);
}

/// At most this many connections go into a split file (the first held): a file of
/// a closed-loop second would be ~2 MB, of this many ~110 kB.
pub const CSV_MAX_CONNECTIONS: usize = 1_000;

/// Writes `path`: one line per split connection (the first
/// [`CSV_MAX_CONNECTIONS`]), its stamps (ns, CLOCK_MONOTONIC) and the parts they give.
pub fn write_csv(path: &Path, split: &Split) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    writeln!(
        out,
        "client,connect_ns,child_established_ns,accepted_ns,held_ns,handshake_ns,queue_wait_ns,decode_ns,peer_ns"
    )?;
    for c in split.conns.iter().take(CSV_MAX_CONNECTIONS) {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            c.client,
            c.connect_ns,
            c.child_established_ns,
            c.accepted_ns,
            c.held_ns,
            c.handshake_ns(),
            c.queue_wait_ns(),
            c.decode_ns(),
            c.peer_ns()
        )?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::account::{KernelAccount, KernelConn};

    fn a(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], p))
    }

    fn kc(p: u16, child: u64, accepted: u64) -> KernelConn {
        KernelConn {
            client: Some(a(p)),
            child_established_ns: Some(child),
            accepted_ns: Some(accepted),
            ..KernelConn::default()
        }
    }

    #[test]
    fn the_parts_add_up_and_disordered_stamps_are_left_out() {
        let k = KernelTrace::Recorded(Box::new(KernelAccount {
            connections: vec![kc(1, 150, 400), kc(2, 260, 300), kc(4, 90, 500)],
            ..KernelAccount::default()
        }));
        let cl = |p, t, warmup| ClientConn {
            local: a(p),
            connect_start_ns: t,
            warmup,
        };
        let client = [
            cl(1, 100, false),
            cl(2, 200, false),
            cl(3, 210, false),
            cl(4, 100, false),
            cl(5, 10, true),
        ];
        let peer = |p, acc, held| PeerRecord {
            peer: a(p),
            accepted_ns: acc,
            decoded_ns: held,
        };
        let peers = [
            peer(1, 400, 410),
            peer(2, 300, 330),
            peer(3, 250, 260),
            // The kernel's child before connect(): out of order.
            peer(4, 500, 501),
            peer(5, 20, 30),
        ];
        let s = split(&k, &client, &peers);
        assert_eq!((s.conns.len(), s.disordered, s.without_child), (2, 1, 1));
        let c = *s.conns.iter().find(|c| c.client == a(1)).unwrap();
        assert_eq!(
            (c.handshake_ns(), c.queue_wait_ns(), c.decode_ns()),
            (50, 250, 10)
        );
        for c in &s.conns {
            assert_eq!(
                c.handshake_ns() + c.queue_wait_ns() + c.decode_ns(),
                c.peer_ns()
            );
        }
        let [h, q, d] = s.percentiles();
        assert_eq!(
            (h.unwrap().count, q.unwrap().max, d.unwrap().min),
            (2, 250, 10)
        );
        assert_eq!(s.histograms(false).len(), 3);
        assert_eq!(s.histograms(true)[1].0, "kernel-queue-service");
        assert!(s.note().unwrap().contains("1 joined connections"));
        let mut row = SummaryRow::default();
        fill(&mut row, &s, true);
        assert_eq!(row.kernel_split_connections, Some(2));
        assert_eq!(
            (
                row.kernel_queue_wait_p99_ns.is_some(),
                row.kernel_decode_p50_ns
            ),
            (true, None)
        );
        let none = split(&KernelTrace::Off, &client, &peers);
        assert!(none.conns.is_empty() && none.histograms(false).is_empty());
        let mut row = SummaryRow::default();
        fill(&mut row, &none, false);
        assert_eq!(row.kernel_split_connections, None);
    }
}
