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
                "a{i}:n={},p50={},p99={},cpu={:.1},stalled={}",
                a.accepted,
                us(a.peer_p50_ns),
                us(a.peer_p99_ns),
                a.cpu_s * 1e3,
                a.stalled
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// µs with one decimal; empty when the acceptor timed no connection.
fn us(ns: Option<u64>) -> String {
    ns.map_or(String::new(), |ns| format!("{:.1}", ns as f64 / 1e3))
}

/// One acceptor's entry of the `per_acceptor` column, parsed back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AcceptorEntry {
    /// Connections accepted.
    pub accepted: u64,
    /// Peer latency p50, µs (None: the acceptor timed no connection).
    pub p50_us: Option<f64>,
    /// Peer latency p99, µs.
    pub p99_us: Option<f64>,
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
                    "p50" => e.p50_us = absent_or(x)?,
                    "p99" => e.p99_us = absent_or(x)?,
                    "cpu" => e.cpu_ms = x.parse().ok()?,
                    "stalled" => e.stalled = x.parse().ok()?,
                    _ => {}
                }
            }
            Some(e)
        })
        .collect()
}

/// An empty value is absent; anything else must parse.
fn absent_or(x: &str) -> Option<Option<f64>> {
    if x.is_empty() {
        Some(None)
    } else {
        x.parse().ok().map(Some)
    }
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
                peer_p50_ns: Some(12_300),
                peer_p99_ns: Some(45_600),
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
            "a0:n=10,p50=12.3,p99=45.6,cpu=2.0,stalled=0;a1:n=5,p50=,p99=,cpu=0.0,stalled=0"
        );
        let back = parse_per_acceptor(&s).unwrap();
        assert_eq!(
            back[0],
            AcceptorEntry {
                accepted: 10,
                p50_us: Some(12.3),
                p99_us: Some(45.6),
                cpu_ms: 2.0,
                stalled: 0
            }
        );
        assert_eq!(back[1].accepted, 5);
        assert_eq!((back[1].p50_us, back[1].p99_us), (None, None));
        assert!(parse_per_acceptor("a0:n=x").is_none());
    }
}
