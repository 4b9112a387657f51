//! `acceptbench join`: one acceptor's records (`listen --records`) joined with loadgen
//! records from any number of processes or hosts, for the same exact accounting and
//! end-to-end peer-extraction latency a sweep gets on one machine.
//!
//! Owns the checks that a client file belongs to the server's run (target address,
//! run id, overlapping time windows), the clock conversion between hosts, and the
//! per-client accounting. Matching itself is the sweep's ([`crate::join`]); the
//! files are written by [`output`]. Nothing here measures.
//!
//! Clocks: stamps are CLOCK_MONOTONIC of the host that took them. Files from the same
//! host and boot (same host name and boot id: network namespaces on one machine) share
//! that clock and are compared on it. Files from different hosts are compared through
//! each file's (CLOCK_MONOTONIC, CLOCK_REALTIME) anchor, so the end-to-end latency is
//! only as exact as the hosts' wall clocks agree (NTP: ~0.1–10 ms; PTP: ~µs).

pub mod output;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use loadgen::{ConnRecord, Outcome, RecordMeta};

use crate::config::JoinConfig;
use crate::join::{self, ClientConn};
use crate::record::PeerRecord;
use crate::serverrec::{self, ServerRecords};
use common::hist::new_histogram;

/// Why a client file cannot be joined with the server's: each names the file, what
/// disagrees, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// A version-1 loadgen file: no host, clock anchor or target.
    #[error("{file}: loadgen records version 1 carry no host, clock anchor or target, which join needs: record again with this loadgen (version {})", loadgen::record::VERSION)]
    NoHeader {
        /// The file.
        file: String,
    },
    /// loadgen connected somewhere the acceptor was not listening.
    #[error("{file}: loadgen's target was {target} but the acceptor listened on {listen}: this client file belongs to another server or run")]
    WrongServer {
        /// The file.
        file: String,
        /// loadgen's --target.
        target: String,
        /// The acceptor's listening address.
        listen: String,
    },
    /// Run ids differ.
    #[error("{file}: run id {client:?} but the server's is {server:?}: this client file belongs to another run")]
    WrongRun {
        /// The file.
        file: String,
        /// The client's run id.
        client: String,
        /// The server's run id.
        server: String,
    },
    /// The client's connections and the server's accepts do not overlap in time.
    #[error("{file}: the client connected from {client} but the server accepted from {server} ({clock}): the windows do not overlap within {tolerance_ms} ms, so this client file belongs to another run (or the clocks are that far apart: raise --clock-tolerance)")]
    NoOverlap {
        /// The file.
        file: String,
        /// The client's window.
        client: String,
        /// The server's window.
        server: String,
        /// Which clock compared them.
        clock: &'static str,
        /// The tolerance used.
        tolerance_ms: u128,
    },
}

/// One client file's accounting and latencies.
#[derive(Debug, Clone)]
pub struct HostJoin {
    /// Label: the host name, with the client's source IP when host names repeat.
    pub label: String,
    /// The records file.
    pub file: PathBuf,
    /// Host name from the file's header.
    pub host: String,
    /// Source IPs the client's connections used, sorted.
    pub source_ips: Vec<IpAddr>,
    /// `monotonic` (same host and boot as the server) or `realtime`.
    pub clock: &'static str,
    /// Connects attempted (warm-up included).
    pub attempted: u64,
    /// Connections established (warm-up included).
    pub established: u64,
    /// Server records whose peer address this client used.
    pub accepted: u64,
    /// Joined connections.
    pub matched: u64,
    /// Established by this client, never recorded by the acceptor.
    pub unmatched_client: u64,
    /// Recorded by the acceptor with this client's address, no connection left to match.
    pub unmatched_server: u64,
    /// Recorded by the acceptor with this client's IP but a port it never used.
    pub unknown_peer: u64,
    /// Outcomes other than established (refused, reset, timeout, pending, other).
    pub failed: u64,
    /// Connect latency (connect() intended → established, measured connections), ns.
    pub connect_ns: Histogram<u64>,
    /// End-to-end peer extraction (client connect() → server holds the peer), ns.
    pub peer_e2e_ns: Histogram<u64>,
    /// Clock offset estimate, see [`OffsetEstimate`].
    pub offset: Option<OffsetEstimate>,
    /// First connect and last outcome of the client, in the server's CLOCK_MONOTONIC, ns.
    pub window_ns: (i128, i128),
}

/// What the handshake timing says about the clocks, after the conversion join made.
///
/// The server cannot accept a connection before the handshake is through: the client
/// stamps connect() before its SYN leaves, and the server's accept needs SYN →,
/// SYN-ACK ←, ACK → (1.5 round trips). So for every connection `server accepted −
/// client connect()` = 1.5 round trips + wake-ups + the residual clock offset
/// (server − client), and its minimum bounds the offset from above. Taking the
/// handshake as 1.5 × the smallest connect() time the client saw (one round trip, plus
/// the client's own wake-up) gives an estimate. (The client's "established" stamp is
/// not used: it is taken when loadgen gets round to the completion, which can be long
/// after the server accepted.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffsetEstimate {
    /// Estimated residual offset, server clock − client clock, ns (0 = agreed).
    pub estimate_ns: i64,
    /// The offset is at most this, ns.
    pub upper_bound_ns: i64,
    /// Smallest connect() time (one round trip), ns.
    pub min_rtt_ns: u64,
    /// Connections the estimate used (addresses used once on both sides).
    pub pairs: u64,
}

/// The whole join.
#[derive(Debug)]
pub struct Joined {
    /// Per client file, in the order given.
    pub hosts: Vec<HostJoin>,
    /// Server records whose peer IP no client used.
    pub unknown_peer: u64,
    /// Server records.
    pub accepted: u64,
    /// Server-internal peer extraction (accept seen → peer decoded), ns.
    pub peer_internal_ns: Histogram<u64>,
    /// Server: first accept seen → last peer decoded, ns.
    pub server_span_ns: u64,
    /// The server's header.
    pub server: RecordMeta,
}

impl Joined {
    /// Joined connections over every client.
    pub fn matched(&self) -> u64 {
        self.hosts.iter().map(|h| h.matched).sum()
    }
    /// Server records whose peer address no client used.
    pub fn unknown_peers(&self) -> u64 {
        self.unknown_peer + self.hosts.iter().map(|h| h.unknown_peer).sum::<u64>()
    }
    /// Unmatched connections of every kind.
    pub fn unmatched(&self) -> u64 {
        self.unknown_peers()
            + self
                .hosts
                .iter()
                .map(|h| h.unmatched_client + h.unmatched_server)
                .sum::<u64>()
    }
    /// Σ of a per-host histogram.
    pub fn sum(&self, pick: impl Fn(&HostJoin) -> &Histogram<u64>) -> Histogram<u64> {
        let mut out = new_histogram();
        for h in &self.hosts {
            // Same bounds on both sides: adding cannot fail.
            let _ = out.add(pick(h));
        }
        out
    }
    /// True when any client was compared on the wall clock.
    pub fn uses_realtime(&self) -> bool {
        self.hosts.iter().any(|h| h.clock == "realtime")
    }
}

/// One client file as read.
pub struct ClientFile {
    /// Its path.
    pub path: PathBuf,
    /// Its header.
    pub meta: RecordMeta,
    /// Its records.
    pub records: Vec<ConnRecord>,
}

/// Reads a loadgen records file for a join: version 2 only.
pub fn read_client(path: &Path) -> anyhow::Result<ClientFile> {
    let f = loadgen::read_records_file(path)?;
    let meta = f.header.meta.ok_or_else(|| JoinError::NoHeader {
        file: path.display().to_string(),
    })?;
    Ok(ClientFile {
        path: path.to_path_buf(),
        meta,
        records: f.records,
    })
}

/// `acceptbench join`: read, check, join, write the results directory.
pub fn run(cfg: &JoinConfig) -> anyhow::Result<ExitCode> {
    let server = serverrec::read(&cfg.server)?;
    let clients = cfg
        .clients
        .iter()
        .map(|p| read_client(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let joined = join_files(&server, &clients, cfg.clock_tolerance)?;
    let dir = output::write(cfg, &joined).context("writing the join's results")?;
    crate::stdout::print(output::text(&joined, &dir))?;
    Ok(if joined.unmatched() > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Checks that every client file belongs to the server's run, then joins them.
pub fn join_files(
    server: &ServerRecords,
    clients: &[ClientFile],
    tolerance: Duration,
) -> Result<Joined, JoinError> {
    let smeta = server.meta();
    for c in clients {
        check_client(smeta, &server.records, c, tolerance)?;
    }
    Ok(join_hosts(smeta, &server.records, clients))
}

/// Joins client files with the acceptor's records (`server`, written under `smeta`'s
/// clock) without checking that they belong together: the sweep's own runs, whose
/// clients it started itself.
pub fn join_hosts(smeta: &RecordMeta, server: &[PeerRecord], clients: &[ClientFile]) -> Joined {
    let owner = owners(clients);
    let mut per_client: Vec<Vec<PeerRecord>> = vec![Vec::new(); clients.len()];
    let mut unknown_peer = 0;
    let mut peer_internal_ns = new_histogram();
    for r in server {
        peer_internal_ns.saturating_record(r.decoded_ns.saturating_sub(r.accepted_ns).max(1));
        match owner.of(&r.peer) {
            Some(i) => per_client[i].push(*r),
            None => unknown_peer += 1,
        }
    }
    let labels = labels(clients);
    let hosts = clients
        .iter()
        .zip(per_client)
        .zip(labels)
        .map(|((c, recs), label)| join_client(smeta, c, &recs, label))
        .collect();
    let first = server.iter().map(|r| r.accepted_ns).min();
    let last = server.iter().map(|r| r.decoded_ns).max();
    Joined {
        hosts,
        unknown_peer,
        accepted: server.len() as u64,
        peer_internal_ns,
        server_span_ns: match (first, last) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        },
        server: smeta.clone(),
    }
}

/// ns to add to a client's CLOCK_MONOTONIC stamp to express it in the server's.
fn shift_ns(server: &RecordMeta, client: &RecordMeta) -> i128 {
    if server.same_clock(client) {
        return 0;
    }
    (client.anchor_realtime_ns as i128 - client.anchor_mono_ns as i128)
        - (server.anchor_realtime_ns as i128 - server.anchor_mono_ns as i128)
}

fn clock_name(server: &RecordMeta, client: &RecordMeta) -> &'static str {
    if server.same_clock(client) {
        "monotonic"
    } else {
        "realtime"
    }
}

fn check_client(
    s: &RecordMeta,
    server_records: &[PeerRecord],
    c: &ClientFile,
    tolerance: Duration,
) -> Result<(), JoinError> {
    let file = c.path.display().to_string();
    let listen = s.addr;
    let target_ok = match (c.meta.addr, listen) {
        (Some(t), Some(l)) => {
            t.port() == l.port() && (l.ip().is_unspecified() || same_ip(t.ip(), l.ip()))
        }
        _ => false,
    };
    if !target_ok {
        let show = |a: Option<SocketAddr>| a.map_or("(none)".to_string(), |a| a.to_string());
        return Err(JoinError::WrongServer {
            file,
            target: show(c.meta.addr),
            listen: show(listen),
        });
    }
    if !c.meta.run_id.is_empty() && !s.run_id.is_empty() && c.meta.run_id != s.run_id {
        return Err(JoinError::WrongRun {
            file,
            client: c.meta.run_id.clone(),
            server: s.run_id.clone(),
        });
    }
    let (Some(s0), Some(s1)) = (
        server_records.iter().map(|r| r.accepted_ns).min(),
        server_records.iter().map(|r| r.decoded_ns).max(),
    ) else {
        return Ok(()); // nothing accepted: every client connection will show unmatched
    };
    let shift = shift_ns(s, &c.meta);
    let (Some(c0), Some(c1)) = (
        c.records.iter().map(|r| r.connect_start_ns).min(),
        c.records.iter().map(|r| r.done_ns).max(),
    ) else {
        return Ok(());
    };
    let (c0, c1) = (c0 as i128 + shift, c1 as i128 + shift);
    let tol = tolerance.as_nanos() as i128;
    if c0 > s1 as i128 + tol || (s0 as i128) > c1 + tol {
        let wall = |a: i128, b: i128| {
            format!(
                "{} to {}",
                utc(s.to_realtime_ns(0) + a),
                utc(s.to_realtime_ns(0) + b)
            )
        };
        return Err(JoinError::NoOverlap {
            file,
            client: wall(c0, c1),
            server: wall(s0 as i128, s1 as i128),
            clock: clock_name(s, &c.meta),
            tolerance_ms: tolerance.as_millis(),
        });
    }
    Ok(())
}

/// IPv4 and its IPv4-mapped IPv6 form are the same address.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Wall-clock ns since the epoch as RFC 3339 UTC with ms.
fn utc(ns: i128) -> String {
    let ns = ns.max(0) as u64;
    let t = std::time::UNIX_EPOCH + Duration::from_nanos(ns);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Which client owns a peer address: by IP when exactly one client used that IP,
/// else by (IP, port) — first client that used it.
struct Owners {
    by_ip: HashMap<IpAddr, Option<usize>>,
    by_addr: HashMap<SocketAddr, usize>,
}

impl Owners {
    fn of(&self, peer: &SocketAddr) -> Option<usize> {
        let ip = peer.ip().to_canonical();
        match self.by_ip.get(&ip) {
            Some(Some(i)) => Some(*i),
            Some(None) => self.by_addr.get(&SocketAddr::new(ip, peer.port())).copied(),
            None => None,
        }
    }
}

fn owners(clients: &[ClientFile]) -> Owners {
    let mut by_ip: HashMap<IpAddr, Option<usize>> = HashMap::new();
    let mut by_addr = HashMap::new();
    for (i, c) in clients.iter().enumerate() {
        for r in c
            .records
            .iter()
            .filter(|r| r.outcome == Outcome::Established)
        {
            let ip = r.local.ip().to_canonical();
            let e = by_ip.entry(ip).or_insert(Some(i));
            if *e != Some(i) {
                *e = None;
            }
            by_addr
                .entry(SocketAddr::new(ip, r.local.port()))
                .or_insert(i);
        }
    }
    Owners { by_ip, by_addr }
}

fn source_ips(c: &ClientFile) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = c
        .records
        .iter()
        .filter(|r| r.outcome == Outcome::Established)
        .map(|r| r.local.ip().to_canonical())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

/// Host names, with the first source IP added where a host name repeats (several
/// loadgen processes, or namespaces, on one host).
fn labels(clients: &[ClientFile]) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for c in clients {
        *seen.entry(c.meta.host.as_str()).or_insert(0) += 1;
    }
    clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let host = if c.meta.host.is_empty() {
                "unknown"
            } else {
                c.meta.host.as_str()
            };
            if seen[c.meta.host.as_str()] > 1 {
                match source_ips(c).first() {
                    Some(ip) => format!("{host}/{ip}"),
                    None => format!("{host}/{}", i + 1),
                }
            } else {
                host.to_string()
            }
        })
        .collect()
}

fn join_client(s: &RecordMeta, c: &ClientFile, server: &[PeerRecord], label: String) -> HostJoin {
    let shift = shift_ns(s, &c.meta);
    let to_server = |ns: u64| (ns as i128 + shift).clamp(0, u64::MAX as i128) as u64;
    let mut connect_ns = new_histogram();
    let mut conns = Vec::with_capacity(c.records.len());
    let mut failed = 0;
    for r in &c.records {
        if r.outcome != Outcome::Established {
            failed += 1;
            continue;
        }
        if !r.warmup {
            connect_ns.saturating_record(r.done_ns.saturating_sub(r.intended_ns).max(1));
        }
        conns.push(ClientConn {
            local: SocketAddr::new(r.local.ip().to_canonical(), r.local.port()),
            connect_start_ns: to_server(r.connect_start_ns),
            warmup: r.warmup,
        });
    }
    let canon: Vec<PeerRecord> = server
        .iter()
        .map(|r| PeerRecord {
            peer: SocketAddr::new(r.peer.ip().to_canonical(), r.peer.port()),
            ..*r
        })
        .collect();
    let j = join::join(&conns, &canon);
    let w0 = c
        .records
        .iter()
        .map(|r| r.connect_start_ns)
        .min()
        .unwrap_or(0);
    let w1 = c.records.iter().map(|r| r.done_ns).max().unwrap_or(0);
    HostJoin {
        label,
        file: c.path.clone(),
        host: c.meta.host.clone(),
        source_ips: source_ips(c),
        clock: clock_name(s, &c.meta),
        attempted: c.records.len() as u64,
        established: conns.len() as u64,
        accepted: server.len() as u64,
        matched: j.matched,
        unmatched_client: j.unmatched_client,
        unmatched_server: j.unmatched_server,
        unknown_peer: j.unknown_peer,
        failed,
        connect_ns,
        peer_e2e_ns: j.peer_e2e_ns,
        offset: estimate_offset(&c.records, &canon, shift),
        window_ns: (w0 as i128 + shift, w1 as i128 + shift),
    }
}

/// The offset estimate from addresses used exactly once on both sides (no port reuse,
/// so the pair is certain); `None` without such pairs.
fn estimate_offset(
    client: &[ConnRecord],
    server: &[PeerRecord],
    shift: i128,
) -> Option<OffsetEstimate> {
    let mut once: HashMap<SocketAddr, Option<&ConnRecord>> = HashMap::new();
    let mut min_rtt = u64::MAX;
    for r in client.iter().filter(|r| r.outcome == Outcome::Established) {
        min_rtt = min_rtt.min(r.done_ns.saturating_sub(r.connect_start_ns));
        let a = SocketAddr::new(r.local.ip().to_canonical(), r.local.port());
        once.entry(a).and_modify(|e| *e = None).or_insert(Some(r));
    }
    let mut seen: HashMap<SocketAddr, Option<&PeerRecord>> = HashMap::new();
    for r in server {
        seen.entry(r.peer)
            .and_modify(|e| *e = None)
            .or_insert(Some(r));
    }
    let mut min_d: Option<i128> = None;
    let mut pairs = 0;
    for (addr, s) in seen {
        let (Some(s), Some(Some(c))) = (s, once.get(&addr)) else {
            continue;
        };
        let d = s.accepted_ns as i128 - (c.connect_start_ns as i128 + shift);
        min_d = Some(min_d.map_or(d, |m| m.min(d)));
        pairs += 1;
    }
    let min_d = min_d?;
    let clamp = |v: i128| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    Some(OffsetEstimate {
        estimate_ns: clamp(min_d - (min_rtt as i128 * 3 / 2)),
        upper_bound_ns: clamp(min_d),
        min_rtt_ns: min_rtt,
        pairs,
    })
}

#[cfg(test)]
mod tests;
