//! The `per_acceptor` column of summary.csv: each acceptor's count, latencies, CPU and
//! stalls in one compact text (`a0:n=…,p50=…;a1:…`), written and parsed back here.

use crate::acceptors::PerAcceptor;

/// The `per_acceptor` column: `a0:n=…,p50=…,p99=…,cpu=…,stalled=…;a1:…` (latencies
/// in µs with one decimal, CPU in ms): readable, and split by `;`, `:`, `,` and `=`
/// in a script.
pub fn format_per_acceptor(per: &[PerAcceptor]) -> String {
    per.iter()
        .enumerate()
        .map(|(i, a)| {
            format!(
                "a{i}:n={},p50={:.1},p99={:.1},cpu={:.1},stalled={}",
                a.accepted,
                a.peer_p50_ns as f64 / 1e3,
                a.peer_p99_ns as f64 / 1e3,
                a.cpu_s * 1e3,
                a.stalled
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// One acceptor's entry of the `per_acceptor` column, parsed back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AcceptorEntry {
    /// Connections accepted.
    pub accepted: u64,
    /// Peer latency p50, µs.
    pub p50_us: f64,
    /// Peer latency p99, µs.
    pub p99_us: f64,
    /// Thread CPU, ms.
    pub cpu_ms: f64,
    /// Connections that waited for a SYN retransmit.
    pub stalled: u64,
}

/// Parses a `per_acceptor` column back (fields by name; missing ones stay 0).
pub fn parse_per_acceptor(s: &str) -> Option<Vec<AcceptorEntry>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(';')
        .map(|part| {
            let (_, fields) = part.split_once(':')?;
            let mut e = AcceptorEntry::default();
            for f in fields.split(',') {
                let (k, x) = f.split_once('=')?;
                match k {
                    "n" => e.accepted = x.parse().ok()?,
                    "p50" => e.p50_us = x.parse().ok()?,
                    "p99" => e.p99_us = x.parse().ok()?,
                    "cpu" => e.cpu_ms = x.parse().ok()?,
                    "stalled" => e.stalled = x.parse().ok()?,
                    _ => {}
                }
            }
            Some(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_acceptor_round_trips() {
        let per = vec![
            PerAcceptor {
                accepted: 10,
                cpu_s: 0.002,
                peer_p50_ns: 12_300,
                peer_p99_ns: 45_600,
                stalled: 0,
            },
            PerAcceptor {
                accepted: 5,
                ..Default::default()
            },
        ];
        let s = format_per_acceptor(&per);
        assert_eq!(
            s,
            "a0:n=10,p50=12.3,p99=45.6,cpu=2.0,stalled=0;a1:n=5,p50=0.0,p99=0.0,cpu=0.0,stalled=0"
        );
        let back = parse_per_acceptor(&s).unwrap();
        assert_eq!(
            back[0],
            AcceptorEntry {
                accepted: 10,
                p50_us: 12.3,
                p99_us: 45.6,
                cpu_ms: 2.0,
                stalled: 0
            }
        );
        assert_eq!(back[1].accepted, 5);
        assert!(parse_per_acceptor("a0:n=x").is_none());
    }
}
