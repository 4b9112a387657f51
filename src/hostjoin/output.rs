//! The join's results directory, shaped like a sweep's: `summary.csv` (one
//! [`SummaryRow`]), `cells.csv`, `hosts.csv` (one row per client file), `hgrm/`
//! (connect and peer-extraction distributions, total and per host), `meta.json`
//! and `README.md` with the command and the per-host table.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{HostJoin, Joined};
use crate::config::JoinConfig;
use crate::kernel::probe;
use crate::report::row::{Status, SummaryRow};
use crate::report::table::{Align, Table};
use crate::report::{cells, csv::SummaryWriter, hgrm, meta::Meta, RunDir};
use common::hist::Percentiles;

use Align::{Left as L, Right as R};

/// One row of `hosts.csv`: one client file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRow {
    /// Host name, with its source IP when host names repeat.
    pub host: String,
    /// The client's records file as given.
    pub file: String,
    /// Source IPs the client used, space-separated.
    pub source_ips: String,
    /// Clock the join compared on: monotonic (same host and boot as the server) or realtime.
    pub clock: String,
    /// Connects attempted (warm-up included).
    pub attempted: u64,
    /// Connections the client saw established (warm-up included).
    pub established: u64,
    /// Server records with this client's addresses.
    pub accepted: u64,
    /// Joined connections.
    pub matched: u64,
    /// Established by the client, never recorded by the acceptor.
    pub unmatched_client: u64,
    /// Recorded by the acceptor with this client's address, no connection left to match.
    pub unmatched_server: u64,
    /// Recorded by the acceptor with this client's IP and a port it never used.
    pub unknown_peer: u64,
    /// Connects that did not establish (refused, reset, timeout, pending, other).
    pub failed: u64,
    /// Connect latency p50, ns.
    pub connect_p50_ns: Option<u64>,
    /// Connect latency p99, ns.
    pub connect_p99_ns: Option<u64>,
    /// End-to-end peer extraction p50, ns (realtime clock: offset included).
    pub peer_p50_ns: Option<u64>,
    /// End-to-end peer extraction p99, ns.
    pub peer_p99_ns: Option<u64>,
    /// Estimated residual clock offset, server − client, ns (empty without pairs).
    pub offset_estimate_ns: Option<i64>,
    /// The residual offset is at most this, ns.
    pub offset_upper_bound_ns: Option<i64>,
    /// Smallest connect() time seen by this client (one round trip), ns.
    pub min_rtt_ns: Option<u64>,
}

impl HostRow {
    /// The row of one joined client.
    pub fn of(h: &HostJoin) -> HostRow {
        let c = Percentiles::measured(&h.connect_ns);
        let p = Percentiles::measured(&h.peer_e2e_ns);
        HostRow {
            host: h.label.clone(),
            file: h.file.display().to_string(),
            source_ips: h
                .source_ips
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            clock: h.clock.to_string(),
            attempted: h.attempted,
            established: h.established,
            accepted: h.accepted,
            matched: h.matched,
            unmatched_client: h.unmatched_client,
            unmatched_server: h.unmatched_server,
            unknown_peer: h.unknown_peer,
            failed: h.failed,
            connect_p50_ns: c.map(|c| c.p50),
            connect_p99_ns: c.map(|c| c.p99),
            peer_p50_ns: p.map(|p| p.p50),
            peer_p99_ns: p.map(|p| p.p99),
            offset_estimate_ns: h.offset.map(|o| o.estimate_ns),
            offset_upper_bound_ns: h.offset.map(|o| o.upper_bound_ns),
            min_rtt_ns: h.offset.map(|o| o.min_rtt_ns),
        }
    }
}

/// The summary row of a join: every client together.
pub fn summary_row(cfg: &JoinConfig, j: &Joined) -> SummaryRow {
    let connect = j.sum(|h| &h.connect_ns);
    let peer = j.sum(|h| &h.peer_e2e_ns);
    let (c, p, pi) = (
        Percentiles::measured(&connect),
        Percentiles::measured(&peer),
        Percentiles::measured(&j.peer_internal_ns),
    );
    let established: u64 = j.hosts.iter().map(|h| h.established).sum();
    let unmatched_client: u64 = j.hosts.iter().map(|h| h.unmatched_client).sum();
    let unmatched_server: u64 = j.hosts.iter().map(|h| h.unmatched_server).sum();
    let window = j
        .hosts
        .iter()
        .map(|h| h.window_ns)
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
    let client_span_s = window.map_or(0.0, |(a, b)| (b - a).max(0) as f64 * 1e-9);
    let server_span_s = j.server_span_ns as f64 * 1e-9;
    let mut notes = vec![format!("joined: {} client file(s)", j.hosts.len())];
    if j.uses_realtime() {
        notes.push("peer latency across hosts from CLOCK_REALTIME: accurate only to the hosts' clock sync (see hosts.csv offset columns)".into());
    }
    if j.unmatched() > 0 {
        notes.push(format!(
            "UNMATCHED connections: {unmatched_client} established by a client but never accepted, {unmatched_server} accepted with no client connection left, {} accepted with an address no client used",
            j.unknown_peers()
        ));
    }
    SummaryRow {
        engine: cfg.engine.clone(),
        backlog: cfg.backlog,
        mode: cfg.mode.clone(),
        repetition: 1,
        position: 1,
        status: Some(Status::Ok),
        note: notes.join("; "),
        duration_s: server_span_s,
        attempted: j.hosts.iter().map(|h| h.attempted).sum(),
        established,
        accepted: j.accepted,
        matched: j.matched(),
        unmatched: j.unmatched(),
        unmatched_client,
        unmatched_server,
        unknown_peer: j.unknown_peers(),
        accepts_per_s: if j.accepted > 1 && server_span_s > 0.0 {
            (j.accepted - 1) as f64 / server_span_s
        } else {
            0.0
        },
        client_conns_per_s: if client_span_s > 0.0 {
            established as f64 / client_span_s
        } else {
            0.0
        },
        connect_p50_ns: c.map(|c| c.p50),
        connect_p99_ns: c.map(|c| c.p99),
        connect_p999_ns: c.map(|c| c.p999),
        connect_max_ns: c.map(|c| c.max),
        peer_p50_ns: p.map(|p| p.p50),
        peer_p99_ns: p.map(|p| p.p99),
        peer_p999_ns: p.map(|p| p.p999),
        peer_max_ns: p.map(|p| p.max),
        peer_internal_p50_ns: pi.map(|p| p.p50),
        peer_internal_p99_ns: pi.map(|p| p.p99),
        client_other_errors: j.hosts.iter().map(|h| h.failed).sum(),
        netns: format!("hosts:{}", j.hosts.len()),
        ..Default::default()
    }
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the results directory under `cfg.out`; returns its path.
pub fn write(cfg: &JoinConfig, j: &Joined) -> io::Result<PathBuf> {
    let u = crate::kernel::uname();
    let dir = RunDir::create(&cfg.out, &u.release, &u.nodename)?;
    let row = summary_row(cfg, j);
    let mut meta = Meta::collect(&cfg.command, probe::probe_uring(), (0, Vec::new()));
    meta.notes.push(format!(
        "acceptbench join of {} client file(s) with the acceptor's records {} (server host {:?}, listening on {}); kernel, CPU and sysctls here are the joining machine's",
        j.hosts.len(),
        cfg.server.display(),
        j.server.host,
        j.server.addr.map_or("?".into(), |a| a.to_string()),
    ));
    let mut summary = SummaryWriter::create(&dir.summary_csv())?;
    summary.append(&row)?;
    cells::write(
        &dir.cells_csv(),
        &cells::aggregate(std::slice::from_ref(&row)),
    )?;
    let h = |metric: &str| dir.hgrm(&cfg.engine, cfg.backlog, &cfg.mode, 1, metric);
    hgrm::write_file(&h("connect"), &j.sum(|h| &h.connect_ns))?;
    hgrm::write_file(&h("peer"), &j.sum(|h| &h.peer_e2e_ns))?;
    hgrm::write_file(&h("peer-internal"), &j.peer_internal_ns)?;
    for host in &j.hosts {
        let label = file_safe(&host.label);
        hgrm::write_file(&h(&format!("connect-{label}")), &host.connect_ns)?;
        hgrm::write_file(&h(&format!("peer-{label}")), &host.peer_e2e_ns)?;
    }
    let rows: Vec<HostRow> = j.hosts.iter().map(HostRow::of).collect();
    write_hosts_csv(&dir.path.join("hosts.csv"), &rows)?;
    meta.finished_utc = crate::report::meta::now_utc();
    meta.incomplete = false;
    meta.write(&dir.meta_json())?;
    crate::report::write_atomic(&dir.readme(), readme(&meta, &row, &rows, j).as_bytes())?;
    Ok(dir.path)
}

/// Writes hosts.csv.
pub fn write_hosts_csv(path: &Path, rows: &[HostRow]) -> io::Result<()> {
    let mut w = csv::Writer::from_path(path).map_err(io::Error::other)?;
    for r in rows {
        w.serialize(r).map_err(io::Error::other)?;
    }
    w.flush()
}

/// Reads hosts.csv back.
pub fn read_hosts_csv(path: &Path) -> io::Result<Vec<HostRow>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
    r.deserialize()
        .collect::<Result<Vec<HostRow>, _>>()
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

/// `p50 / p99` in ms with three decimals.
/// `p50 / p99` in ms, `—` where nothing was timed.
fn pair_ms(p50_ns: Option<u64>, p99_ns: Option<u64>) -> String {
    pair(p50_ns, p99_ns, 1e6, 3)
}

fn pair(a: Option<u64>, b: Option<u64>, unit_ns: f64, decimals: usize) -> String {
    let one = |v: Option<u64>| {
        v.map_or("—".into(), |ns| {
            format!("{:.*}", decimals, ns as f64 / unit_ns)
        })
    };
    format!("{} / {}", one(a), one(b))
}

fn clock_text(j: &Joined) -> String {
    if j.uses_realtime() {
        "Clients on other hosts are compared through each file's (CLOCK_MONOTONIC, CLOCK_REALTIME) anchor: the peer-extraction latency of those clients includes the hosts' clock offset, so it is only as accurate as their clock sync (NTP: 0.1–10 ms; PTP: µs). The offset columns estimate what remains: the server cannot accept before the handshake (1.5 round trips after the client's connect() stamp) is through, so min(server accepted − client connect()) bounds the offset (server − client) from above, and subtracting 1.5 × the smallest connect() time estimates it. The latencies are not corrected by it.".into()
    } else {
        "Every client ran on the server's host and boot (same host name and boot id), so all stamps are one CLOCK_MONOTONIC, as in a sweep: the peer-extraction latency is exact. The offset columns are a sanity check: with one clock the true offset is 0, so the estimate shows how far the handshake-based estimate itself is off (wake-up delays).".into()
    }
}

fn readme(meta: &Meta, row: &SummaryRow, rows: &[HostRow], j: &Joined) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# acceptbench join: {} client file(s), one acceptor\n",
        rows.len()
    );
    let _ = writeln!(
        s,
        "Command (git `{}`):\n\n```\n{}\n```\n",
        meta.git_rev, meta.command
    );
    let _ = writeln!(
        s,
        "Server: host {:?}, listening on {}, run id {:?}. Joined on {} (Linux {}), {}.\n",
        j.server.host,
        j.server.addr.map_or("?".into(), |a| a.to_string()),
        j.server.run_id,
        meta.host,
        meta.kernel_release,
        meta.finished_utc
    );
    let _ = writeln!(s, "Clocks: {}\n", clock_text(j));
    let _ = writeln!(
        s,
        "Files: `summary.csv` (one row, all clients), `hosts.csv` (one row per client file), `hgrm/` (connect, peer = client connect() → server holds the peer, peer-internal; total and per host), `meta.json`.\n"
    );
    let _ = writeln!(s, "## Accounting\n");
    let _ = writeln!(s, "{}", accounting_table(row).render());
    let _ = writeln!(s, "## Per client host\n");
    s.push_str(&hosts_table(rows).render());
    s
}

/// The whole run's accounting and latencies, one row.
fn accounting_table(row: &SummaryRow) -> Table {
    let mut all = Table::new(&[
        ("", L),
        ("established", R),
        ("accepted", R),
        ("matched", R),
        ("unmatched client", R),
        ("unmatched server", R),
        ("unknown peer", R),
        ("accepts/s", R),
        ("connect p50 / p99 ms", L),
        ("peer p50 / p99 ms", L),
        ("peer-internal p50 / p99 µs", L),
    ]);
    all.row(vec![
        "all".into(),
        row.established.to_string(),
        row.accepted.to_string(),
        row.matched.to_string(),
        row.unmatched_client.to_string(),
        row.unmatched_server.to_string(),
        row.unknown_peer.to_string(),
        format!("{:.0}", row.accepts_per_s),
        pair_ms(row.connect_p50_ns, row.connect_p99_ns),
        pair_ms(row.peer_p50_ns, row.peer_p99_ns),
        pair(row.peer_internal_p50_ns, row.peer_internal_p99_ns, 1e3, 1),
    ]);
    all
}

/// One row per client file.
fn hosts_table(rows: &[HostRow]) -> Table {
    let mut hosts = Table::new(&[
        ("host", L),
        ("source IPs", L),
        ("clock", L),
        ("established", R),
        ("accepted", R),
        ("matched", R),
        ("unmatched client / server", L),
        ("failed", R),
        ("connect p50 / p99 ms", L),
        ("peer p50 / p99 ms", L),
        ("offset estimate (≤ bound) µs", L),
        ("min RTT µs", R),
    ]);
    for r in rows {
        let off = match (r.offset_estimate_ns, r.offset_upper_bound_ns) {
            (Some(e), Some(b)) => format!("{:.1} (≤ {:.1})", e as f64 / 1e3, b as f64 / 1e3),
            _ => "—".into(),
        };
        hosts.row(vec![
            r.host.clone(),
            r.source_ips.clone(),
            r.clock.clone(),
            r.established.to_string(),
            r.accepted.to_string(),
            r.matched.to_string(),
            format!("{} / {}", r.unmatched_client, r.unmatched_server),
            r.failed.to_string(),
            pair_ms(r.connect_p50_ns, r.connect_p99_ns),
            pair_ms(r.peer_p50_ns, r.peer_p99_ns),
            off,
            r.min_rtt_ns
                .map_or("—".into(), |v| format!("{:.1}", v as f64 / 1e3)),
        ]);
    }
    hosts
}

/// What `join` prints: the accounting per host and where the files went.
pub fn text(j: &Joined, dir: &Path) -> String {
    let mut s = String::new();
    for h in &j.hosts {
        let _ = writeln!(
            s,
            "{}: established {} accepted {} matched {} unmatched client {} server {} ({} clock)",
            h.label,
            h.established,
            h.accepted,
            h.matched,
            h.unmatched_client,
            h.unmatched_server,
            h.clock
        );
    }
    let _ = writeln!(
        s,
        "all: accepted {} matched {} unmatched {} (unknown peers {})",
        j.accepted,
        j.matched(),
        j.unmatched(),
        j.unknown_peers()
    );
    let _ = writeln!(s, "results: {}", dir.display());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_csv_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.csv");
        let rows = vec![
            HostRow {
                host: "vm/10.77.0.2".into(),
                source_ips: "10.77.0.2".into(),
                clock: "monotonic".into(),
                established: 5,
                matched: 5,
                offset_estimate_ns: Some(-3),
                ..Default::default()
            },
            HostRow {
                host: "b".into(),
                clock: "realtime".into(),
                ..Default::default()
            },
        ];
        write_hosts_csv(&path, &rows).unwrap();
        assert_eq!(read_hosts_csv(&path).unwrap(), rows);
    }
}
