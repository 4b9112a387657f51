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
use common::ktrace::account::KernelConn;

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
    /// Stall runs: the stall.csv row and the run's timeline.
    pub stall: Option<super::stall::StallOut>,
    /// ssh client hosts: one hosts.csv row per host.
    pub hosts: Vec<crate::hostjoin::output::HostRow>,
    /// `--trace kernel`: each joined connection's latency split (empty without it).
    pub kernel_split: super::ksplit::Split,
    /// `--trace kernel`, a first round's run: the kernel's per-connection timeline
    /// (`common::ktrace::timeline` CSV, [`TIMELINE_MAX_CONNECTIONS`] of them chosen by
    /// [`timeline_window`]).
    pub kernel_timeline: Option<Vec<u8>>,
}

/// At most this many connections go into a run's timeline file.
pub const TIMELINE_MAX_CONNECTIONS: usize = 1_000;

/// The `max` consecutive connections (in SYN order) a timeline file keeps: from a
/// tenth of `max` before the first one that is not plainly accepted (a SYN
/// retransmitted, client-only, never established, never accepted), so that a stall's
/// retry waves or a burst's overflow are in the file with what came just before
/// them; the first `max` when every connection was plain; never past the end.
pub fn timeline_window(conns: &[KernelConn], max: usize) -> std::ops::Range<usize> {
    use common::ktrace::timeline::Outcome;
    let first = conns
        .iter()
        .position(|c| Outcome::of(c) != Outcome::Accepted || !c.syn_retransmits_ns.is_empty())
        .unwrap_or(0);
    let start = first
        .saturating_sub(max / 10)
        .min(conns.len().saturating_sub(max));
    start..(start + max).min(conns.len())
}

/// The timeline CSV of a first round's recorded account.
fn kernel_timeline(p: &Planned, k: &super::ktrace::KernelTrace) -> Option<Vec<u8>> {
    let super::ktrace::KernelTrace::Recorded(k) = k else {
        return None;
    };
    if p.round != 1 {
        return None;
    }
    let mut first = crate::kernel::account::KernelAccount {
        connections: Vec::new(),
        ..(**k).clone()
    };
    first.connections =
        k.connections[timeline_window(&k.connections, TIMELINE_MAX_CONNECTIONS)].to_vec();
    let mut buf = Vec::new();
    common::ktrace::timeline::write_timeline_csv(&first, &mut buf).ok()?;
    Some(buf)
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
            row: planned_row(p, status, why.to_string()),
            histograms: Vec::new(),
            queue: None,
            client_connect: None,
            stall: None,
            hosts: Vec::new(),
            kernel_split: Default::default(),
            kernel_timeline: None,
        }
    }
}

/// The columns a run has from its plan alone: what ran, where in the plan, and its status.
fn planned_row(p: &Planned, status: Status, note: String) -> SummaryRow {
    SummaryRow {
        engine: p.label(),
        inflight: p.inflight,
        accept_flags: p
            .accept_flags
            .map_or_else(String::new, |f| f.name().to_string()),
        peer_op: p
            .peer_op
            .map_or_else(String::new, |op| op.name().to_string()),
        backlog: p.backlog,
        mode: p.mode.name().into(),
        acceptors: p.acceptors,
        sharing: p.sharing.name().into(),
        repetition: p.round,
        position: p.position,
        status: Some(status),
        note,
        stall_ms: p.stall.map(|c| c.duration.as_secs_f64() * 1e3),
        stall_load: p.stall.map_or_else(String::new, |c| c.load.to_string()),
        // The untraced run of a `--trace off,kernel` sweep says so.
        kernel_trace: if p.trace_paired && !p.trace {
            "off".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

/// The client's established connections, read once from loadgen's records.
struct ClientSide {
    /// Connect latency of measured (not warm-up) connections; from the intended start in
    /// rate mode (no coordinated omission).
    connect: Histogram<u64>,
    /// Every established connection, warm-up included, for the join.
    established: Vec<ClientConn>,
    /// connect() → established of every established connection, ns.
    latencies: Vec<u64>,
    /// Measured connects that waited for a SYN retransmit.
    stalls: u64,
}

impl ClientSide {
    fn of(p: &Planned, records: &[loadgen::ConnRecord]) -> ClientSide {
        let from_intended = p.mode == Mode::Rate;
        let mut c = ClientSide {
            connect: new_histogram(),
            established: Vec::with_capacity(records.len()),
            latencies: Vec::new(),
            stalls: 0,
        };
        for r in records {
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
                c.connect.saturating_record(latency);
                if connect_ns >= overflow::RETRY_THRESHOLD_NS {
                    c.stalls += 1;
                }
            }
            c.latencies.push(connect_ns);
            c.established.push(ClientConn {
                local: r.local,
                connect_start_ns: r.connect_start_ns,
                warmup: r.warmup,
            });
        }
        c
    }
}

/// Builds the row of a measured run: joins client and server records, fills every column.
pub fn finished(p: &Planned, m: Measured) -> FinishedRun {
    let client = ClientSide::of(p, &m.client.records);
    let j = join::join_owned(
        &client.established,
        &m.rec.peers,
        &m.owner,
        m.per_acceptor.len().max(1),
    );
    let stall = match &m.figures {
        ModeFigures::Stall(f, facts) => Some(super::stall::analyse(p, &m, f, facts)),
        _ => None,
    };
    let split = super::ksplit::split(&m.kernel, &client.established, &m.rec.peers);
    let (mut status, mut notes) = status_and_notes(p, &m, &j, client.stalls);
    notes.extend(split.note());
    if let Some(Err(why)) = &stall {
        notes.push(why.clone());
        status = Status::Failed;
    }
    let mut row = planned_row(p, status, notes.join("; "));
    acceptor_columns(&mut row, p, &m, &j);
    super::ktrace::fill(&mut row, &m.kernel);
    super::ksplit::fill(&mut row, &split, p.external.is_some());
    accounting_columns(&mut row, &m, &client, &j);
    latency_columns(&mut row, &client, &j, &m.rec.peer_extract_ns);
    let hosts = host_columns(&mut row, &m);
    let mut queue = None;
    if let ModeFigures::Overflow(f) | ModeFigures::Stall(f, _) = m.figures {
        overflow_columns(&mut row, &f, &client.latencies, m.released_ns, p.mode);
        queue = Some((f.samples, f.t0_ns));
    }
    let stall = stall.and_then(Result::ok).map(|mut s| {
        s.row.status = row.status.map_or("", |st| st.name()).to_string();
        row.recovered = Some(s.row.recovered);
        row.recover_ms = s.row.recover_ms;
        s
    });
    FinishedRun {
        row,
        histograms: [
            vec![
                ("connect", client.connect),
                ("peer", j.peer_e2e_ns),
                ("peer-internal", m.rec.peer_extract_ns),
            ],
            split.histograms(p.external.is_some()),
        ]
        .into_iter()
        .flatten()
        .collect(),
        queue,
        client_connect: Some(client_connect(&m.client.report)),
        stall,
        hosts,
        kernel_split: split,
        kernel_timeline: kernel_timeline(p, &m.kernel),
    }
}

/// An external server's run: its `peer` histogram is the served latency (connect()
/// → the server's first byte or close), named `served`; it has no internal one.
/// In a burst the client waits for the server as in closed and rate (it is continued
/// once the burst has arrived). In drain the client resets its connections without
/// waiting for the server, so served is not seen: the row says so instead, and drops
/// the join's notes and histograms, which would read "never accepted".
pub fn as_external(run: &mut FinishedRun, mode: Mode) {
    run.histograms.retain(|(m, _)| *m != "peer-internal");
    let unseen = match mode {
        Mode::Drain => Some("drain: the clients reset their connections once queued, so served is not seen; accepted = connections the server took from its queue after SIGCONT, timed until sock_diag saw the queue empty (not until the last close)"),
        _ => None,
    };
    if let Some(why) = unseen {
        run.histograms.retain(|(m, _)| *m == "connect");
        let kept: Vec<&str> = run
            .row
            .note
            .split("; ")
            .filter(|n| !n.starts_with("client-only:") && !n.contains("never accepted"))
            .collect();
        run.row.note = kept.join("; ");
        run.row.add_note(why);
        // No join was possible: its columns measured nothing.
        let r = &mut run.row;
        (
            r.matched,
            r.unmatched,
            r.unmatched_client,
            r.unmatched_server,
        ) = (0, 0, 0, 0);
        return;
    }
    for (m, _) in run.histograms.iter_mut() {
        if *m == "peer" {
            *m = "served";
        }
    }
    let r = &run.row;
    let (est, served) = (r.established, r.accepted);
    run.row.add_note(&format!(
        "served {served} of {est} established (the server closed or answered them; accepted, matched and the peer columns count served connections, unmatched_client the established ones never served: client-only or reset)"
    ));
}

/// Failed when the run says why, incomplete when interrupted, else ok; and the notes a
/// reader needs beside the row (stalls, unmatched connections and what they mean).
fn status_and_notes(
    p: &Planned,
    m: &Measured,
    j: &join::Joined,
    stalls: u64,
) -> (Status, Vec<String>) {
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
        ModeFigures::Overflow(f) | ModeFigures::Stall(f, _) => queue_overflowed(f),
        _ => false,
    };
    notes.extend(unmatched_notes(j, overflowed, m.env.netns));
    notes.extend(super::ktrace::note(&m.kernel));
    let status = if m.failure.is_some() {
        Status::Failed
    } else if m.interrupted {
        Status::Incomplete
    } else {
        Status::Ok
    };
    (status, notes)
}

/// ssh client hosts: each host's records joined with the acceptor's on their own
/// (through the wall clocks for another machine, as `acceptbench join` does), the
/// per-host columns, and how close together the hosts started. Returns their
/// hosts.csv rows (none for a local client).
fn host_columns(row: &mut SummaryRow, m: &Measured) -> Vec<crate::hostjoin::output::HostRow> {
    use crate::hostjoin::{self, output::HostRow, ClientFile};
    let hosts = &m.client.hosts;
    if hosts.is_empty() {
        return Vec::new();
    }
    let files: Vec<ClientFile> = hosts
        .iter()
        .map(|h| ClientFile {
            path: h.label.clone().into(),
            meta: h.meta.clone(),
            records: h.records.clone(),
        })
        .collect();
    let here = common::record_header::RecordMeta::here(None, "");
    let j = hostjoin::join_hosts(&here, &m.rec.peers, &files);
    row.client_hosts = hosts
        .iter()
        .map(|h| h.label.as_str())
        .collect::<Vec<_>>()
        .join(",");
    row.per_host = hosts
        .iter()
        .zip(&j.hosts)
        .map(|(h, hj)| {
            format!(
                "{}:est={},acc={},matched={}",
                h.label, hj.established, hj.accepted, hj.matched
            )
        })
        .collect::<Vec<_>>()
        .join(";");
    // Each loadgen's start by its own wall clock, less its offset from ours.
    let starts: Vec<i128> = hosts
        .iter()
        .map(|h| h.meta.anchor_realtime_ns as i128 - h.offset_ns.0 as i128)
        .collect();
    if let (Some(lo), Some(hi)) = (starts.iter().min(), starts.iter().max()) {
        let spread_ms = (hi - lo) as f64 / 1e6;
        let within_ms = hosts.iter().map(|h| h.offset_ns.1).max().unwrap_or(0) as f64 / 1e6;
        row.host_start_spread_ms = Some(spread_ms);
        row.add_note(&format!(
            "{} ssh client hosts started within {spread_ms:.1} ms of each other (by their clocks, less the offsets preflight estimated to ±{within_ms:.1} ms)",
            hosts.len()
        ));
    }
    j.hosts.iter().map(HostRow::of).collect()
}

/// The acceptor side: window, rates, CPU, per-acceptor split, errors, and the listener
/// settings the run really had.
fn acceptor_columns(row: &mut SummaryRow, p: &Planned, m: &Measured, j: &join::Joined) {
    let mut per = m.per_acceptor.clone();
    for (a, h) in per.iter_mut().zip(&j.peer_e2e_by_acceptor_ns) {
        let l = Percentiles::measured(h);
        a.peer_p50_ns = l.map(|l| l.p50);
        a.peer_p99_ns = l.map(|l| l.p99);
        a.stalled = h.count_between(overflow::RETRY_THRESHOLD_NS, u64::MAX);
    }
    let counts: Vec<u64> = per.iter().map(|a| a.accepted).collect();
    let futile = p
        .engine
        .counts_futile_wakeups()
        .then_some(m.rec.futile_wakeups);
    row.backlog_effective = m.backlog_effective;
    row.acceptor_cpus = m.acceptor_cpus.clone();
    row.slow_acceptor = m.slow_acceptor.clone();
    row.per_acceptor = crate::report::per_acceptor::format_per_acceptor(&per);
    row.acceptor_fairness = (counts.len() > 1)
        .then(|| acceptors::fairness(&counts))
        .flatten();
    row.futile_wakeups = futile;
    row.futile_per_accept = futile
        .filter(|_| m.rec.accepted > 0)
        .map(|f| f as f64 / m.rec.accepted as f64);
    row.ring_setup = m.ring_setup.clone().unwrap_or_default();
    row.duration_s = m.window_s;
    row.accepts_per_s = m.accepts_per_s;
    row.accept_window_s = m.accept_window_s;
    row.peers_held_per_s = m.peers_held_per_s;
    row.peer_window_s = m.peer_window_s;
    row.acceptor_cpu_s = m.cpu_s;
    row.acceptor_cpu_us_per_accept = m
        .cpu_s
        .filter(|_| m.window_accepts > 0)
        .map(|s| s * 1e6 / m.window_accepts as f64);
    kernel_use_columns(row, m);
    row.accept_errors = m.rec.error_total();
    if m.rec.lost > 0 {
        row.add_note(&crate::summary::lost_text(m.rec.lost));
    }
    if p.accept_flags.is_some() && m.rec.accepted > 0 {
        let per = |n: u64| Some(n as f64 / m.rec.accepted as f64);
        row.sock_nonempty_per_accept = per(m.rec.sock_nonempty);
        row.accept_eagain_per_accept = per(m.rec.accept_eagain);
    }
    row.netns = m.env.netns.into();
    row.somaxconn = m.env.somaxconn;
    row.tcp_syncookies = m.env.syncookies;
    row.tcp_abort_on_overflow = m.env.abort_on_overflow;
}

/// Every connection accounted for, and the client's own figures and errors.
fn accounting_columns(row: &mut SummaryRow, m: &Measured, client: &ClientSide, j: &join::Joined) {
    let report = &m.client.report;
    let errors = &report.errors;
    row.attempted = report.attempted + report.warmup_attempted;
    // Every connection the client established, warm-up included: the acceptor
    // accepted those too, and the accounting (established = accepted = matched)
    // covers them. Latencies, accepts/s and CPU leave them out.
    row.established = client.established.len() as u64;
    row.accepted = m.rec.accepted;
    row.matched = j.matched;
    row.unmatched = j.unmatched();
    row.unmatched_client = j.unmatched_client;
    row.unmatched_server = j.unmatched_server;
    row.unknown_peer = j.unknown_peer;
    row.client_conns_per_s = report.conns_per_s;
    row.loadgen_cpu_s = report.cpu_user_s + report.cpu_sys_s;
    row.refused = errors.refused;
    row.reset = errors.reset;
    row.timeout = errors.timeout;
    row.pending = report.pending;
    row.client_other_errors = errors.addr_unavailable + errors.other;
}

/// The acceptors' use of the kernel per connection accepted (see
/// [`crate::kernel::perf`]): empty without a timed connection, and the perf counts
/// empty where perf did not count.
fn kernel_use_columns(row: &mut SummaryRow, m: &Measured) {
    let Some(u) = m.usage.filter(|_| m.usage_accepts > 0) else {
        return;
    };
    let per = |x: u64| Some(x as f64 / m.usage_accepts as f64);
    row.acceptor_user_s = Some(u.user_s);
    row.acceptor_sys_s = Some(u.sys_s);
    row.vol_cs_per_accept = per(u.vol_cs);
    row.invol_cs_per_accept = per(u.invol_cs);
    row.syscalls_per_accept = u.counts.and_then(|c| per(c.syscalls));
    row.uring_enters_per_accept = u.counts.and_then(|c| c.uring_enters).and_then(per);
}

/// Connect, end-to-end peer and peer-internal percentiles; SYN-retransmit stalls.
fn latency_columns(
    row: &mut SummaryRow,
    client: &ClientSide,
    j: &join::Joined,
    peer_internal: &Histogram<u64>,
) {
    // An empty histogram (no connection timed in the window) leaves its columns empty.
    let c = Percentiles::measured(&client.connect);
    let pe = Percentiles::measured(&j.peer_e2e_ns);
    let pi = Percentiles::measured(peer_internal);
    row.connect_p50_ns = c.map(|c| c.p50);
    row.connect_p99_ns = c.map(|c| c.p99);
    row.connect_p999_ns = c.map(|c| c.p999);
    row.connect_max_ns = c.map(|c| c.max);
    row.peer_p50_ns = pe.map(|p| p.p50);
    row.peer_p99_ns = pe.map(|p| p.p99);
    row.peer_p999_ns = pe.map(|p| p.p999);
    row.peer_max_ns = pe.map(|p| p.max);
    row.peer_internal_p50_ns = pi.map(|p| p.p50);
    row.peer_internal_p99_ns = pi.map(|p| p.p99);
    row.syn_retry_stalls = client.stalls;
    let absent: Vec<&str> = [("connect", c.is_none()), ("peer", pe.is_none())]
        .iter()
        .filter_map(|&(name, none)| none.then_some(name))
        .collect();
    if !absent.is_empty() && row.is_ok() {
        row.add_note(&format!(
            "no connection was timed in the window: {} latency left empty, not 0",
            absent.join(" and ")
        ));
    }
}

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

    #[test]
    fn a_timeline_keeps_the_window_where_connections_stop_being_plain() {
        let plain = KernelConn {
            syn_sent_ns: Some(1),
            client_established_ns: Some(2),
            child_established_ns: Some(3),
            accepted_ns: Some(4),
            ..KernelConn::default()
        };
        let retried = KernelConn {
            syn_retransmits_ns: vec![1_000_000_001],
            ..plain.clone()
        };
        let mut conns = vec![plain.clone(); 3000];
        assert_eq!(
            timeline_window(&conns, 1000),
            0..1000,
            "all plain: the first"
        );
        conns[1500] = retried;
        assert_eq!(timeline_window(&conns, 1000), 1400..2400);
        conns[2950].accepted_ns = None;
        conns[1500] = plain;
        assert_eq!(
            timeline_window(&conns, 1000),
            2000..3000,
            "near the end: the last"
        );
        assert_eq!(timeline_window(&conns[..10], 1000), 0..10);
    }
}
