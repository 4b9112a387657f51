//! The run directory's README.md: the exact command and a table of headline figures,
//! rendered from the same rows that went into summary.csv.

use std::fmt::Write as _;

use super::cells::CellRow;
use super::meta::Meta;
use super::row::{Status, SummaryRow};

/// Renders the README of a run.
pub fn render(meta: &Meta, rows: &[SummaryRow], cells: &[CellRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# acceptbench run on Linux {}\n", meta.kernel_release);
    if meta.incomplete {
        let _ = writeln!(
            s,
            "**Incomplete run**: interrupted or failed before every planned run finished; the rows below are what was measured.\n"
        );
    }
    let _ = writeln!(
        s,
        "Command (from the repository root, git `{}`):\n",
        meta.git_rev
    );
    let _ = writeln!(s, "```\n{}\n```\n", meta.command);
    let _ = writeln!(
        s,
        "Machine: {} CPUs ({}), virtualised: {}, acceptor on CPU {}, loadgen on CPUs {:?}{}. Started {}, finished {}.\n",
        meta.cpus,
        meta.cpu_model,
        meta.virtualised,
        meta.server_cpu,
        meta.client_cpus,
        if meta.client_connect.is_empty() {
            String::new()
        } else {
            format!("; loadgen connected {}", meta.client_connect.join(", "))
        },
        meta.started_utc,
        if meta.finished_utc.is_empty() { "—" } else { &meta.finished_utc }
    );
    let _ = writeln!(
        s,
        "Files: `summary.csv` (one row per run), `cells.csv` (per engine, backlog and mode: medians over the ok runs with confidence intervals, ratios to std), columns of both in ../README.md; `meta.json` (kernel, sysctls, versions), `hgrm/` (latency percentile distributions, µs).\n"
    );
    cells_tables(&mut s, cells);
    let over: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| matches!(r.mode.as_str(), "burst" | "overload"))
        .collect();
    if !over.is_empty() {
        let _ = writeln!(s, "## Backlog overflow\n");
        let _ = writeln!(
            s,
            "*client-only*: connections the client saw established that the acceptor never got (the final ACK met a full queue and was dropped; the client believes it is connected). *outcome* is measured, not assumed: syn-dropped, ack-dropped, reset.\n"
        );
        let _ = writeln!(
            s,
            "| engine | backlog | mode | attempted | established (immediately) | accepted | client-only | queue max / limit | ListenOverflows (while paused) | SYN cookies | reset | timeout | pending | SYN retry modes | outcome | drain ms | connect p99 ms |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|"
        );
        for r in over {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} ({}) | {} | {} | {} / {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                super::series(&r.engine, r.inflight, r.acceptors, &r.sharing),
                backlog(r),
                r.mode,
                r.attempted,
                r.established,
                opt(r.established_immediately),
                r.accepted,
                r.unmatched_client,
                r.queue_max_per_listener
                    .as_deref()
                    .filter(|q| q.contains(';'))
                    .map_or(opt(r.queue_max), |q| format!("[{}]", q.replace(';', ", "))),
                opt(r.queue_limit),
                opt(r.listen_overflows),
                opt(r.listen_overflows_paused),
                opt(r.syncookies_sent),
                r.reset,
                r.timeout,
                r.pending,
                r.syn_retry_modes.as_deref().filter(|m| !m.is_empty()).unwrap_or("—"),
                r.overflow_outcome.as_deref().unwrap_or("—"),
                r.drain_ms.map_or("—".into(), |d| format!("{d:.2}")),
                r.connect_p99_ns as f64 / 1e6
            );
        }
        let _ = writeln!(s);
    }
    acceptors_table(&mut s, rows);
    let notes: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| !r.note.is_empty() && r.status != Some(Status::Skipped))
        .collect();
    if !notes.is_empty() || !meta.notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &meta.notes {
            let _ = writeln!(s, "- {n}");
        }
        for r in notes {
            let _ = writeln!(
                s,
                "- {} b{} {} r{}: {}",
                super::series(&r.engine, r.inflight, r.acceptors, &r.sharing),
                r.backlog,
                r.mode,
                r.repetition,
                r.note
            );
        }
    }
    s
}

/// Runs with several acceptors: how the work was shared.
fn acceptors_table(s: &mut String, rows: &[SummaryRow]) {
    let many: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| r.acceptors > 1 && r.status != Some(Status::Skipped))
        .collect();
    if many.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Acceptors
"
    );
    let _ = writeln!(
        s,
        "Per acceptor (`per_acceptor` in summary.csv): `a<i>:n=<accepted>,p50=<µs>,p99=<µs>,cpu=<ms>,stalled=<≥ 0.5 s>`. Fairness = fewest / most accepted by one acceptor. Queue max per listener: burst/overload only (reuseport: one per shard).\n"
    );
    let _ = writeln!(
        s,
        "| series | backlog | mode | round | CPUs | slow | accepted | unmatched | fairness | futile wake-ups | queue max per listener | per acceptor |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---|---|---:|---:|---:|---:|---|---|");
    for r in many {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            super::series(&r.engine, r.inflight, r.acceptors, &r.sharing),
            backlog(r),
            r.mode,
            r.repetition,
            r.acceptor_cpus,
            if r.slow_acceptor.is_empty() {
                "—"
            } else {
                &r.slow_acceptor
            },
            r.accepted,
            r.unmatched,
            r.acceptor_fairness
                .map_or("—".into(), |f| format!("{f:.2}")),
            opt(r.futile_wakeups),
            r.queue_max_per_listener
                .as_deref()
                .unwrap_or("—")
                .replace(';', " / "),
            r.per_acceptor.replace(';', "; ")
        );
    }
    let _ = writeln!(s);
}

fn backlog(r: &SummaryRow) -> String {
    if r.backlog_effective != 0 && r.backlog_effective != r.backlog {
        format!("{} (→{})", r.backlog, r.backlog_effective)
    } else {
        r.backlog.to_string()
    }
}

/// The engine tables: cells that compare engines first (drain, and closed/rate cells
/// where no connect waited for a SYN retransmit), then the stalled ones.
fn cells_tables(s: &mut String, cells: &[CellRow]) {
    let driven = |c: &&CellRow| matches!(c.mode.as_str(), "closed" | "rate" | "drain");
    let compare: Vec<&CellRow> = cells
        .iter()
        .filter(driven)
        .filter(|c| c.syn_retry_stalls == 0 && c.n_ok > 0)
        .collect();
    let stalled: Vec<&CellRow> = cells
        .iter()
        .filter(driven)
        .filter(|c| c.syn_retry_stalls > 0 || c.n_ok == 0)
        .collect();
    if !compare.is_empty() {
        let _ = writeln!(s, "## Engines compared\n");
        let _ = writeln!(
            s,
            "Medians over the ok runs with their confidence interval [lo–hi] (order statistics; its coverage is the `ci_level` column of cells.csv). × std is the median of the per-round ratios to std, with its interval; *higher*/*lower* only when that interval excludes 1 at ≥ 95%, `~` when it includes 1, *n too small* below 6 rounds.\n"
        );
        let _ = writeln!(
            s,
            "| engine | backlog | mode | ok/runs | accepts/s (to last close) | × std | peers held/s (to last peer) | acceptor CPU µs/accept | × std | peer p99 µs |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---|---:|---:|---|---:|");
        for c in compare {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}/{} | {} | {} | {} | {} | {} | {} |",
                super::series(&c.engine, c.inflight, c.acceptors, &c.sharing),
                c.backlog,
                c.mode,
                c.n_ok,
                c.n,
                interval(c.accepts_per_s, c.accepts_per_s_lo, c.accepts_per_s_hi, 0),
                ratio_cell(
                    c.ratio_accepts_vs_std,
                    c.ratio_accepts_vs_std_lo,
                    c.ratio_accepts_vs_std_hi,
                    &c.accepts_vs_std
                ),
                interval(
                    c.peers_held_per_s,
                    c.peers_held_per_s_lo,
                    c.peers_held_per_s_hi,
                    0
                ),
                interval(
                    c.cpu_us_per_accept,
                    c.cpu_us_per_accept_lo,
                    c.cpu_us_per_accept_hi,
                    2
                ),
                ratio_cell(
                    c.ratio_cpu_vs_std,
                    c.ratio_cpu_vs_std_lo,
                    c.ratio_cpu_vs_std_hi,
                    &c.cpu_vs_std
                ),
                interval(c.peer_p99_us, c.peer_p99_us_lo, c.peer_p99_us_hi, 1),
            );
        }
        let _ = writeln!(s);
    }
    if !stalled.is_empty() {
        let _ = writeln!(s, "## Runs that waited for SYN retransmits (or failed)\n");
        let _ = writeln!(
            s,
            "In these cells the accept queue overflowed at least once: a dropped SYN parks that client for its ~1 s retransmit, so accepts/s and latency measure the retransmit timer, not the engine. That is what a small backlog does to a closed-loop client; the ratios are left empty. CPU per accept still compares engines.\n"
        );
        let _ = writeln!(
            s,
            "| engine | backlog | mode | ok/runs | connects stalled | accepts/s | acceptor CPU µs/accept | × std |"
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---|");
        for c in stalled {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {}/{} | {} | {} | {} | {} |",
                super::series(&c.engine, c.inflight, c.acceptors, &c.sharing),
                c.backlog,
                c.mode,
                c.n_ok,
                c.n,
                c.syn_retry_stalls,
                interval(c.accepts_per_s, c.accepts_per_s_lo, c.accepts_per_s_hi, 0),
                interval(
                    c.cpu_us_per_accept,
                    c.cpu_us_per_accept_lo,
                    c.cpu_us_per_accept_hi,
                    2
                ),
                ratio_cell(
                    c.ratio_cpu_vs_std,
                    c.ratio_cpu_vs_std_lo,
                    c.ratio_cpu_vs_std_hi,
                    &c.cpu_vs_std
                ),
            );
        }
        let _ = writeln!(s);
    }
}

/// `123 [110–130]`, or — without a value.
fn interval(m: Option<f64>, lo: Option<f64>, hi: Option<f64>, digits: usize) -> String {
    match (m, lo, hi) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]"),
        _ => "—".into(),
    }
}

/// `1.52 [1.40–1.61] higher`, or —.
fn ratio_cell(m: Option<f64>, lo: Option<f64>, hi: Option<f64>, verdict: &str) -> String {
    match m {
        Some(_) => format!("{} {verdict}", interval(m, lo, hi, 2))
            .trim_end()
            .to_string(),
        None => "—".into(),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("—".into(), |v| v.to_string())
}
