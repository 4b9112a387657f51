//! Turns a run's figures into its summary row and histograms ([`FinishedRun`]), which
//! the sweep hands to its sinks. Plain data in, plain data out: nothing is written here.

use hdrhistogram::Histogram;

use super::plan::Planned;
use super::run::{Measured, ModeFigures};
use crate::acceptors;
use crate::config::Mode;
use crate::join::{self, ClientConn};
use crate::overflow;
use crate::report::row::{Status, SummaryRow};
use common::hist::new_histogram;
use common::hist::Percentiles;

/// One finished run: its row and what goes beside it in the results directory.
pub struct FinishedRun {
    /// The summary.csv row.
    pub row: SummaryRow,
    /// Latency histograms (ns) by metric name: `connect`, `peer`, `peer-internal`.
    pub histograms: Vec<(&'static str, Histogram<u64>)>,
    /// Burst/overload: the accept-queue samples (one set per listener) and their time 0.
    pub queue: Option<(Vec<overflow::sampler::Samples>, u64)>,
    /// How loadgen connected (see [`client_connect`]); `None` when it did not run.
    pub client_connect: Option<String>,
}

/// How a loadgen run connected, from its report: `uring (ring default, socket ops ring)`,
/// `epoll`, … with the reason when it is not what was asked for.
pub fn client_connect(r: &loadgen::Report) -> String {
    let mut s = r.method.clone();
    if let Some(setup) = &r.ring_setup {
        s += &format!(" (ring {setup}, socket ops {})", r.socket_ops);
    }
    if let Some(n) = &r.method_note {
        s += &format!(": {n}");
    }
    s
}

impl FinishedRun {
    /// A run that produced no figures: skipped (unsupported engine) or failed before
    /// measuring anything.
    pub fn without_figures(p: &Planned, status: Status, why: &str) -> FinishedRun {
        FinishedRun {
            row: SummaryRow {
                engine: p.engine.name().into(),
                inflight: p.inflight,
                backlog: p.backlog,
                mode: p.mode.name().into(),
                acceptors: p.acceptors,
                sharing: p.sharing.name().into(),
                repetition: p.round,
                position: p.position,
                status: Some(status),
                note: why.to_string(),
                ..Default::default()
            },
            histograms: Vec::new(),
            queue: None,
            client_connect: None,
        }
    }
}

/// Builds the row of a measured run: joins client and server records, fills every column.
pub fn finished(p: &Planned, m: Measured) -> FinishedRun {
    let report = &m.client.report;
    let from_intended = p.mode == Mode::Rate;
    let mut connect = new_histogram();
    let mut established = Vec::with_capacity(m.client.records.len());
    let mut latencies = Vec::new();
    let mut stalls = 0;
    for r in &m.client.records {
        if r.outcome != loadgen::Outcome::Established {
            continue;
        }
        let start = if from_intended {
            r.intended_ns
        } else {
            r.connect_start_ns
        };
        let latency = r.done_ns.saturating_sub(start).max(1);
        let connect_ns = r.done_ns.saturating_sub(r.connect_start_ns);
        if !r.warmup {
            connect.saturating_record(latency);
            if connect_ns >= overflow::RETRY_THRESHOLD_NS {
                stalls += 1;
            }
        }
        latencies.push(connect_ns);
        established.push(ClientConn {
            local: r.local,
            connect_start_ns: r.connect_start_ns,
            warmup: r.warmup,
        });
    }
    let n_acc = m.per_acceptor.len().max(1);
    let j = join::join_owned(&established, &m.rec.peers, &m.owner, n_acc);
    let mut per = m.per_acceptor.clone();
    for (a, h) in per.iter_mut().zip(&j.peer_e2e_by_acceptor_ns) {
        let l = Percentiles::of(h);
        a.peer_p50_ns = l.p50;
        a.peer_p99_ns = l.p99;
        a.stalled = h.count_between(overflow::RETRY_THRESHOLD_NS, u64::MAX);
    }
    let counts: Vec<u64> = per.iter().map(|a| a.accepted).collect();
    let futile = p
        .engine
        .counts_futile_wakeups()
        .then_some(m.rec.futile_wakeups);
    let c = Percentiles::of(&connect);
    let pe = Percentiles::of(&j.peer_e2e_ns);
    let pi = Percentiles::of(&m.rec.peer_extract_ns);
    let mut notes = Vec::new();
    if let Some(why) = &m.failure {
        notes.push(why.clone());
    }
    if m.interrupted {
        notes.push("interrupted (Ctrl-C) during the run".into());
    }
    if stalls > 0 && !p.mode.is_overflow() {
        notes.push(format!(
            "{stalls} connects waited for a SYN retransmit (the accept queue overflowed): throughput and latency ratios left empty"
        ));
    }
    let overflowed = match &m.figures {
        ModeFigures::Overflow(f) => queue_overflowed(f),
        _ => false,
    };
    notes.extend(unmatched_notes(&j, overflowed, m.env.netns));
    let status = if m.failure.is_some() {
        Status::Failed
    } else if m.interrupted {
        Status::Incomplete
    } else {
        Status::Ok
    };
    let errors = &report.errors;
    let mut row = SummaryRow {
        engine: p.engine.name().into(),
        inflight: p.inflight,
        backlog: p.backlog,
        backlog_effective: m.backlog_effective,
        mode: p.mode.name().into(),
        acceptors: p.acceptors,
        sharing: p.sharing.name().into(),
        acceptor_cpus: m.acceptor_cpus.clone(),
        slow_acceptor: m.slow_acceptor.clone(),
        per_acceptor: crate::report::per_acceptor::format_per_acceptor(&per),
        acceptor_fairness: (counts.len() > 1)
            .then(|| acceptors::fairness(&counts))
            .flatten(),
        futile_wakeups: futile,
        futile_per_accept: futile
            .filter(|_| m.rec.accepted > 0)
            .map(|f| f as f64 / m.rec.accepted as f64),
        ring_setup: m.ring_setup.clone().unwrap_or_default(),
        repetition: p.round,
        position: p.position,
        status: Some(status),
        note: notes.join("; "),
        duration_s: m.window_s,
        attempted: report.attempted + report.warmup_attempted,
        // Every connection the client established, warm-up included: the acceptor
        // accepted those too, and the accounting (established = accepted = matched)
        // covers them. Latencies, accepts/s and CPU leave them out.
        established: established.len() as u64,
        accepted: m.rec.accepted,
        matched: j.matched,
        unmatched: j.unmatched(),
        unmatched_client: j.unmatched_client,
        unmatched_server: j.unmatched_server,
        unknown_peer: j.unknown_peer,
        accepts_per_s: m.accepts_per_s,
        accept_window_s: m.accept_window_s,
        peers_held_per_s: m.peers_held_per_s,
        peer_window_s: m.peer_window_s,
        client_conns_per_s: report.conns_per_s,
        acceptor_cpu_s: m.cpu_s,
        acceptor_cpu_us_per_accept: if m.window_accepts > 0 {
            m.cpu_s * 1e6 / m.window_accepts as f64
        } else {
            0.0
        },
        loadgen_cpu_s: report.cpu_user_s + report.cpu_sys_s,
        accept_errors: m.rec.error_total(),
        connect_p50_ns: c.p50,
        connect_p99_ns: c.p99,
        connect_p999_ns: c.p999,
        connect_max_ns: c.max,
        peer_p50_ns: pe.p50,
        peer_p99_ns: pe.p99,
        peer_p999_ns: pe.p999,
        peer_max_ns: pe.max,
        peer_internal_p50_ns: pi.p50,
        peer_internal_p99_ns: pi.p99,
        syn_retry_stalls: stalls,
        refused: errors.refused,
        reset: errors.reset,
        timeout: errors.timeout,
        pending: report.pending,
        client_other_errors: errors.addr_unavailable + errors.other,
        netns: m.env.netns.into(),
        somaxconn: m.env.somaxconn,
        tcp_syncookies: m.env.syncookies,
        tcp_abort_on_overflow: m.env.abort_on_overflow,
        ..Default::default()
    };
    let mut queue = None;
    if let ModeFigures::Overflow(f) = m.figures {
        overflow_columns(&mut row, &f, &latencies, m.released_ns, p.mode);
        queue = Some((f.samples, f.t0_ns));
    }
    FinishedRun {
        row,
        histograms: vec![
            ("connect", connect),
            ("peer", j.peer_e2e_ns),
            ("peer-internal", m.rec.peer_extract_ns),
        ],
        queue,
        client_connect: Some(client_connect(report)),
    }
}

/// True when the run's accept queue overflowed: a listener's queue was seen full
/// (deeper than its limit: it holds backlog+1) or `ListenOverflows` grew.
fn queue_overflowed(f: &overflow::Figures) -> bool {
    f.samples.iter().any(|s| s.max_depth() > s.limit())
        || f.counters.get("ListenOverflows").is_some_and(|&n| n > 0)
}

/// What the join's unmatched connections mean. Connections the client established and
/// the acceptor never saw are *client-only* when the queue overflowed: the full queue
/// dropped their final ACK (or a SYN-cookie handshake completed on the client only),
/// an outcome of the overflow, not a fault of the harness — the same call in a private
/// namespace and on the host, since the queue samples are this run's listener's own.
/// What the host cannot tell apart is the cause per connection: its TcpExt counters
/// include other traffic. Every other unmatched connection is flagged loudly.
fn unmatched_notes(j: &join::Joined, overflowed: bool, netns: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let unexplained_client = if overflowed { 0 } else { j.unmatched_client };
    if overflowed && j.unmatched_client > 0 {
        notes.push(format!(
            "client-only: {} connections established by the client were never accepted (the full accept queue dropped their final ACK, or a SYN-cookie handshake completed on the client only){}",
            j.unmatched_client,
            if netns == "host" {
                "; on the host's namespace the TcpExt counters include other traffic, so which drop (ListenOverflows, SYN cookies) each one met cannot be told apart"
            } else {
                ""
            }
        ));
    }
    if unexplained_client + j.unmatched_server + j.unknown_peer > 0 {
        notes.push(format!(
            "UNMATCHED connections: {unexplained_client} established by the client but never accepted, {} accepted with no client connection left, {} accepted with an address the client never used",
            j.unmatched_server, j.unknown_peer
        ));
    }
    notes
}

/// Fills the burst/overload columns of `row`.
fn overflow_columns(
    row: &mut SummaryRow,
    f: &overflow::Figures,
    latencies_ns: &[u64],
    released_ns: u64,
    mode: Mode,
) {
    let counter = |name: &str| f.counters.get(name).copied();
    let maxes: Vec<u32> = f.samples.iter().map(|s| s.max_depth()).collect();
    row.queue_max = maxes.iter().copied().max();
    row.queue_max_per_listener = Some(
        maxes
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(";"),
    );
    row.queue_mean = Some(f.samples.iter().map(|s| s.mean_depth()).sum());
    row.queue_limit = f.samples.first().map(|s| s.limit());
    row.listen_overflows = counter("ListenOverflows");
    row.listen_drops = counter("ListenDrops");
    if mode == Mode::Burst {
        row.listen_overflows_paused = f.counters_paused.get("ListenOverflows").copied();
    }
    row.reqq_full_drop = counter("TCPReqQFullDrop");
    row.reqq_full_do_cookies = counter("TCPReqQFullDoCookies");
    row.syncookies_sent = counter("SyncookiesSent");
    let modes = overflow::retry_modes(latencies_ns.iter().copied());
    let retried: u64 = modes.iter().map(|(_, n)| n).sum();
    row.syn_retry_modes = Some(overflow::format_modes(&modes));
    row.established_immediately = Some(row.established.saturating_sub(retried));
    row.overflow_outcome = Some(overflow::outcome(
        retried,
        row.timeout + row.pending,
        row.unmatched_client,
        row.reset,
    ));
    if mode == Mode::Burst && released_ns > 0 {
        // Drained when the last listener ran empty.
        let empties: Option<Vec<u64>> = f
            .samples
            .iter()
            .map(|s| s.first_empty_after(released_ns))
            .collect();
        row.drain_ms = empties
            .and_then(|e| e.into_iter().max())
            .map(|t| (t - released_ns) as f64 / 1e6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(client: u64, server: u64, unknown: u64) -> join::Joined {
        join::Joined {
            matched: 10,
            unmatched_client: client,
            unmatched_server: server,
            unknown_peer: unknown,
            peer_e2e_ns: new_histogram(),
            peer_e2e_by_acceptor_ns: Vec::new(),
        }
    }

    #[test]
    fn client_only_is_one_call_in_a_namespace_and_on_the_host() {
        for netns in ["private", "host"] {
            let notes = unmatched_notes(&joined(45, 0, 0), true, netns);
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].starts_with("client-only: 45 "), "{notes:?}");
            assert_eq!(
                notes[0].contains("cannot be told apart"),
                netns == "host",
                "{notes:?}"
            );
        }
        // No overflow: nothing explains them, and they are flagged.
        let notes = unmatched_notes(&joined(45, 0, 0), false, "host");
        assert!(
            notes[0].starts_with("UNMATCHED connections: 45 "),
            "{notes:?}"
        );
        // Server-side mismatches are never explained by an overflow.
        let notes = unmatched_notes(&joined(3, 2, 1), true, "private");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[1].contains("0 established by the client but never accepted, 2 accepted with no client connection left, 1 accepted"), "{notes:?}");
        assert!(unmatched_notes(&joined(0, 0, 0), true, "host").is_empty());
    }
}
