//! The per-connection timeline of a [`KernelAccount`] as CSV: one row per connection
//! with every stamp the kernel gave it (CLOCK_MONOTONIC ns; empty where it has none),
//! the SYN retransmits as a `;`-list, and its outcome. Written by `listen --trace
//! kernel --trace-out FILE`, `loadgen --trace kernel --trace-out FILE` and the sweep;
//! read back by `acceptbench plot timeline`.
//!
//! Columns: `client,server,syn_sent_ns,syn_retransmits_ns,client_established_ns,
//! child_created_ns,child_established_ns,accepted_ns,client_closed_ns,child_closed_ns,
//! client_reset,outcome`. Outcome is one of [`Outcome`]'s names, derived from the
//! stamps (a reader recomputes it and does not trust the column).

use std::io::{BufRead, Write};
use std::net::SocketAddr;

use super::account::{KernelAccount, KernelConn};

/// The header line.
pub const HEADER: &str = "client,server,syn_sent_ns,syn_retransmits_ns,client_established_ns,child_created_ns,child_established_ns,accepted_ns,client_closed_ns,child_closed_ns,client_reset,outcome";

/// What became of one connection, by the kernel's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (the accepting command's stamp).
    Accepted,
    /// Its server child entered the accept queue (accept not known, or never).
    Queued,
    /// Established on the client, no server child ever established.
    ClientOnly,
    /// The client's SYN never got established (refused, timed out, gave up).
    NeverEstablished,
    /// A server child whose client is not on this host.
    ServerOnly,
}

impl Outcome {
    /// The outcome of `c`.
    pub fn of(c: &KernelConn) -> Outcome {
        let client_seen = c.syn_sent_ns.is_some() || !c.syn_retransmits_ns.is_empty();
        if c.accepted_ns.is_some() {
            Outcome::Accepted
        } else if c.child_established_ns.is_some() && !client_seen {
            Outcome::ServerOnly
        } else if c.child_established_ns.is_some() {
            Outcome::Queued
        } else if c.client_only() {
            Outcome::ClientOnly
        } else {
            Outcome::NeverEstablished
        }
    }

    /// Its name in the CSV.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Queued => "queued",
            Outcome::ClientOnly => "client-only",
            Outcome::NeverEstablished => "never-established",
            Outcome::ServerOnly => "server-only",
        }
    }
}

/// A timeline file that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// Reading failed.
    #[error("cannot read the timeline: {0}")]
    Io(#[from] std::io::Error),
    /// The first line is not [`HEADER`].
    #[error("not a kernel timeline CSV: the first line is {0:?}, expected the header written by --trace-out")]
    Header(String),
    /// A row that does not parse.
    #[error("timeline line {line}: {why}")]
    Row {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

fn stamp(v: Option<u64>) -> String {
    v.map_or(String::new(), |v| v.to_string())
}

fn addr(v: Option<SocketAddr>) -> String {
    v.map_or(String::new(), |a| a.to_string())
}

/// Writes the account's connections, one row each, in the account's order.
pub fn write_timeline_csv(k: &KernelAccount, mut out: impl Write) -> std::io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for c in &k.connections {
        let rtx: Vec<String> = c.syn_retransmits_ns.iter().map(u64::to_string).collect();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            addr(c.client),
            addr(c.server),
            stamp(c.syn_sent_ns),
            rtx.join(";"),
            stamp(c.client_established_ns),
            stamp(c.child_created_ns),
            stamp(c.child_established_ns),
            stamp(c.accepted_ns),
            stamp(c.client_closed_ns),
            stamp(c.child_closed_ns),
            u8::from(c.client_reset),
            Outcome::of(c).name()
        )?;
    }
    out.flush()
}

/// Reads a file written by [`write_timeline_csv`] back into its connections.
pub fn read_timeline_csv(input: impl BufRead) -> Result<Vec<KernelConn>, TimelineError> {
    let mut lines = input.lines();
    let header = lines.next().transpose()?.unwrap_or_default();
    if header.trim_end() != HEADER {
        return Err(TimelineError::Header(header));
    }
    let mut conns = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        conns.push(parse_row(&line).map_err(|why| TimelineError::Row { line: i + 2, why })?);
    }
    Ok(conns)
}

fn parse_row(line: &str) -> Result<KernelConn, String> {
    let f: Vec<&str> = line.trim_end().split(',').collect();
    if f.len() != 12 {
        return Err(format!("{} fields, expected 12", f.len()));
    }
    let addr = |s: &str| -> Result<Option<SocketAddr>, String> {
        (!s.is_empty())
            .then(|| s.parse().map_err(|_| format!("bad address {s:?}")))
            .transpose()
    };
    let ns = |s: &str| -> Result<Option<u64>, String> {
        (!s.is_empty())
            .then(|| s.parse().map_err(|_| format!("bad stamp {s:?}")))
            .transpose()
    };
    let rtx = f[3]
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("bad retransmit stamp {s:?}")))
        .collect::<Result<Vec<u64>, String>>()?;
    Ok(KernelConn {
        client: addr(f[0])?,
        server: addr(f[1])?,
        syn_sent_ns: ns(f[2])?,
        syn_retransmits_ns: rtx,
        client_established_ns: ns(f[4])?,
        child_created_ns: ns(f[5])?,
        child_established_ns: ns(f[6])?,
        accepted_ns: ns(f[7])?,
        client_closed_ns: ns(f[8])?,
        child_closed_ns: ns(f[9])?,
        client_reset: match f[10] {
            "0" => false,
            "1" => true,
            other => return Err(format!("client_reset {other:?} is neither 0 nor 1")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_timeline_written_reads_back_equal() {
        let conns = vec![
            KernelConn {
                client: a("127.0.0.1:40000"),
                server: a("127.0.0.1:8080"),
                syn_sent_ns: Some(100),
                syn_retransmits_ns: vec![1_000_000_100, 2_000_000_100],
                client_established_ns: Some(2_000_000_200),
                child_created_ns: Some(2_000_000_300),
                child_established_ns: Some(2_000_000_301),
                accepted_ns: Some(2_000_000_900),
                client_closed_ns: Some(2_000_001_000),
                child_closed_ns: Some(2_000_001_100),
                client_reset: false,
            },
            KernelConn {
                client: a("[::1]:40001"),
                server: a("[::1]:8080"),
                syn_sent_ns: Some(200),
                client_established_ns: Some(300),
                client_reset: true,
                ..KernelConn::default()
            },
            KernelConn {
                server: a("127.0.0.1:8080"),
                syn_sent_ns: Some(400),
                syn_retransmits_ns: vec![1_000_000_400],
                ..KernelConn::default()
            },
            KernelConn {
                client: a("10.0.0.9:5000"),
                server: a("10.0.0.1:8080"),
                child_created_ns: Some(10),
                child_established_ns: Some(20),
                ..KernelConn::default()
            },
        ];
        let k = KernelAccount {
            connections: conns.clone(),
            ..KernelAccount::default()
        };
        let mut buf = Vec::new();
        write_timeline_csv(&k, &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        let outcomes: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.rsplit(',').next())
            .collect();
        assert_eq!(
            outcomes,
            [
                "accepted",
                "client-only",
                "never-established",
                "server-only"
            ]
        );
        assert!(text.contains(",1000000100;2000000100,"), "{text}");
        assert_eq!(read_timeline_csv(&buf[..]).unwrap(), conns);
    }

    #[test]
    fn a_bad_timeline_is_refused_with_its_line() {
        let e = read_timeline_csv(&b"a,b\n"[..]).unwrap_err();
        assert!(e.to_string().contains("not a kernel timeline CSV"), "{e}");
        let text = format!("{HEADER}\n1.2.3.4:5,,x,,,,,,,,0,accepted\n");
        let e = read_timeline_csv(text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("line 2: bad stamp \"x\""), "{e}");
    }
}
