//! The run directory's README.md: the exact command and a table of headline figures,
//! rendered from the same rows that went into summary.csv.

use std::fmt::Write as _;

use super::cells::CellRow;
use super::meta::Meta;
use super::row::{Status, SummaryRow};
use super::table::{Align, Table};

use Align::{Left as L, Right as R};

/// Renders the README of a run.
pub fn render(
    meta: &Meta,
    rows: &[SummaryRow],
    cells: &[CellRow],
    stall: &[super::stall::StallRow],
    verdict: &super::verdict::Verdict,
) -> String {
    let mut s = heading(meta, verdict);
    cells_tables(&mut s, cells);
    overflow_table(&mut s, rows);
    s += &super::stall::readme_section(stall);
    acceptors_table(&mut s, rows);
    notes(&mut s, meta, rows);
    s
}

/// Title, incomplete-run warning, the verdict, command, machine and files.
fn heading(meta: &Meta, verdict: &super::verdict::Verdict) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# acceptbench run on Linux {}\n", meta.kernel_release);
    if meta.incomplete {
        let _ = writeln!(
            s,
            "**Incomplete run**: interrupted or failed before every planned run finished; the rows below are what was measured.\n"
        );
    }
    s += &verdict.to_markdown();
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
    if let Some(m) = &meta.machine {
        let _ = writeln!(
            s,
            "Machine costs (`meta.json` machine; why a ratio here need not hold elsewhere): {}.\n",
            m.describe()
        );
    }
    let _ = writeln!(
        s,
        "Files: `summary.csv` (one row per run), `cells.csv` (per engine, backlog and mode: medians over the ok runs with confidence intervals, ratios to std), columns of both in ../README.md; `meta.json` (kernel, sysctls, versions), `hgrm/` (latency percentile distributions, µs).\n"
    );
    s
}

/// Burst and overload runs: what a full queue did to the clients.
fn overflow_table(s: &mut String, rows: &[SummaryRow]) {
    let mut t = Table::new(&[
        ("engine", L),
        ("backlog", R),
        ("mode", L),
        ("attempted", R),
        ("established (immediately)", R),
        ("accepted", R),
        ("client-only", R),
        ("queue max / limit", L),
        ("ListenOverflows (while paused)", R),
        ("SYN cookies", R),
        ("reset", R),
        ("timeout", R),
        ("pending", R),
        ("SYN retry modes", L),
        ("outcome", L),
        ("drain ms", R),
        ("connect p99 ms", R),
    ]);
    for r in rows
        .iter()
        .filter(|r| matches!(r.mode.as_str(), "burst" | "overload"))
    {
        let queue_max = r
            .queue_max_per_listener
            .as_deref()
            .filter(|q| q.contains(';'))
            .map_or(opt(r.queue_max), |q| format!("[{}]", q.replace(';', ", ")));
        t.row(vec![
            series(r),
            backlog(r),
            r.mode.clone(),
            r.attempted.to_string(),
            format!("{} ({})", r.established, opt(r.established_immediately)),
            r.accepted.to_string(),
            r.unmatched_client.to_string(),
            format!("{queue_max} / {}", opt(r.queue_limit)),
            format!(
                "{} ({})",
                opt(r.listen_overflows),
                opt(r.listen_overflows_paused)
            ),
            opt(r.syncookies_sent),
            r.reset.to_string(),
            r.timeout.to_string(),
            r.pending.to_string(),
            r.syn_retry_modes
                .as_deref()
                .filter(|m| !m.is_empty())
                .unwrap_or("—")
                .to_string(),
            r.overflow_outcome.as_deref().unwrap_or("—").to_string(),
            r.drain_ms.map_or("—".into(), |d| format!("{d:.2}")),
            r.connect_p99_ns
                .map_or("—".into(), |ns| format!("{:.1}", ns as f64 / 1e6)),
        ]);
    }
    section(
        s,
        "Backlog overflow",
        "*client-only*: connections the client saw established that the acceptor never got (the final ACK met a full queue and was dropped; the client believes it is connected). *outcome* is measured, not assumed: syn-dropped, ack-dropped, reset.",
        &t,
    );
}

/// Row notes and the sweep's own notes.
fn notes(s: &mut String, meta: &Meta, rows: &[SummaryRow]) {
    let noted: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| !r.note.is_empty() && r.status != Some(Status::Skipped))
        .collect();
    if noted.is_empty() && meta.notes.is_empty() {
        return;
    }
    let _ = writeln!(s, "## Notes\n");
    for n in &meta.notes {
        let _ = writeln!(s, "- {n}");
    }
    for r in noted {
        let _ = writeln!(
            s,
            "- {} b{} {} r{}: {}",
            series(r),
            r.backlog,
            r.mode,
            r.repetition,
            r.note
        );
    }
}

/// Runs with several acceptors: how the work was shared.
fn acceptors_table(s: &mut String, rows: &[SummaryRow]) {
    let mut t = Table::new(&[
        ("series", L),
        ("backlog", R),
        ("mode", L),
        ("round", R),
        ("CPUs", L),
        ("slow", L),
        ("accepted", R),
        ("unmatched", R),
        ("fairness", R),
        ("futile wake-ups", R),
        ("queue max per listener", L),
        ("per acceptor", L),
    ]);
    for r in rows
        .iter()
        .filter(|r| r.acceptors > 1 && r.status != Some(Status::Skipped))
    {
        t.row(vec![
            series(r),
            backlog(r),
            r.mode.clone(),
            r.repetition.to_string(),
            r.acceptor_cpus.clone(),
            if r.slow_acceptor.is_empty() {
                "—".into()
            } else {
                r.slow_acceptor.clone()
            },
            r.accepted.to_string(),
            r.unmatched.to_string(),
            r.acceptor_fairness
                .map_or("—".into(), |f| format!("{f:.2}")),
            opt(r.futile_wakeups),
            r.queue_max_per_listener
                .as_deref()
                .unwrap_or("—")
                .replace(';', " / "),
            r.per_acceptor.replace(';', "; "),
        ]);
    }
    section(
        s,
        "Acceptors",
        "Per acceptor (`per_acceptor` in summary.csv): `a<i>:n=<accepted>,p50=<µs>,p99=<µs>,cpu=<ms>,stalled=<≥ 0.5 s>`. Fairness = fewest / most accepted by one acceptor. Queue max per listener: burst/overload only (reuseport: one per shard).",
        &t,
    );
}

/// `## heading`, its introduction and the table; nothing when the table has no row.
fn section(s: &mut String, heading: &str, intro: &str, t: &Table) {
    if t.is_empty() {
        return;
    }
    let _ = writeln!(s, "## {heading}\n");
    let _ = writeln!(s, "{intro}\n");
    let _ = writeln!(s, "{}", t.render());
}

fn series(r: &SummaryRow) -> String {
    super::series(
        &r.engine,
        r.inflight,
        &r.accept_flags,
        &r.peer_op,
        r.acceptors,
        &r.sharing,
    )
}

fn cell_series(c: &CellRow) -> String {
    super::series(
        &c.engine,
        c.inflight,
        &c.accept_flags,
        &c.peer_op,
        c.acceptors,
        &c.sharing,
    )
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
    let (compare, stalled): (Vec<&CellRow>, Vec<&CellRow>) = cells
        .iter()
        .filter(driven)
        .partition(|c| c.syn_retry_stalls == 0 && c.n_ok > 0);
    compared_table(s, &compare);
    stalled_table(s, &stalled);
}

/// `2.01 (0.00), 0.28; 71%`: system calls (io_uring enters), switches; kernel share.
fn kernel_use_cell(c: &CellRow) -> String {
    let n = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2}"));
    format!(
        "{} ({}), {}; {}",
        n(c.syscalls_per_accept),
        n(c.uring_enters_per_accept),
        n(c.cs_per_accept),
        c.kernel_cpu_share
            .map_or("—".into(), |k| format!("{:.0}%", k * 100.0))
    )
}

fn compared_table(s: &mut String, cells: &[&CellRow]) {
    let mut t = Table::new(&[
        CELL_HEAD[0],
        CELL_HEAD[1],
        CELL_HEAD[2],
        CELL_HEAD[3],
        ("accepts/s (to last close)", R),
        ("× std", L),
        ("peers held/s (to last peer)", R),
        ("acceptor CPU µs/accept", R),
        ("× std", L),
        ("peer p99 µs", R),
        (
            "per accept: system calls (io_uring_enter), switches; kernel CPU",
            L,
        ),
    ]);
    for c in cells {
        t.row(
            cell_id(c)
                .into_iter()
                .chain([
                    interval(c.accepts_per_s, c.accepts_per_s_lo, c.accepts_per_s_hi, 0),
                    ratio_cell(
                        c.ratio_accepts_vs_std,
                        c.ratio_accepts_vs_std_lo,
                        c.ratio_accepts_vs_std_hi,
                        &c.accepts_vs_std,
                    ),
                    interval(
                        c.peers_held_per_s,
                        c.peers_held_per_s_lo,
                        c.peers_held_per_s_hi,
                        0,
                    ),
                    cpu_cell(c),
                    cpu_ratio_cell(c),
                    interval(c.peer_p99_us, c.peer_p99_us_lo, c.peer_p99_us_hi, 1),
                    kernel_use_cell(c),
                ])
                .collect(),
        );
    }
    section(
        s,
        "Engines compared",
        "Medians over the ok runs with their confidence interval [lo–hi] (order statistics; its coverage is the `ci_level` column of cells.csv). × std is the median of the per-round ratios to std, with its interval; *higher*/*lower* only when that interval excludes 1 at ≥ 95%, `~` when it includes 1, *n too small* below 6 rounds. Per accept: the acceptor's system calls (perf; of them io_uring_enter in brackets) and context switches (getrusage), and the kernel's share of its CPU — medians; with the machine's costs above they say where its CPU goes.",
        &t,
    );
}

fn stalled_table(s: &mut String, cells: &[&CellRow]) {
    let mut t = Table::new(&[
        CELL_HEAD[0],
        CELL_HEAD[1],
        CELL_HEAD[2],
        CELL_HEAD[3],
        ("connects stalled", R),
        ("accepts/s", R),
        ("acceptor CPU µs/accept", R),
        ("× std", L),
    ]);
    for c in cells {
        t.row(
            cell_id(c)
                .into_iter()
                .chain([
                    c.syn_retry_stalls.to_string(),
                    interval(c.accepts_per_s, c.accepts_per_s_lo, c.accepts_per_s_hi, 0),
                    cpu_cell(c),
                    cpu_ratio_cell(c),
                ])
                .collect(),
        );
    }
    section(
        s,
        "Runs that waited for SYN retransmits (or failed)",
        "In these cells the accept queue overflowed at least once: a dropped SYN parks that client for its ~1 s retransmit, so accepts/s and latency measure the retransmit timer, not the engine. That is what a small backlog does to a closed-loop client; the ratios are left empty. CPU per accept still compares engines.",
        &t,
    );
}

/// The columns that name a cell: engine, backlog, mode, ok/runs.
const CELL_HEAD: [(&str, Align); 4] = [("engine", L), ("backlog", R), ("mode", L), ("ok/runs", R)];

/// A cell's [`CELL_HEAD`] columns.
fn cell_id(c: &CellRow) -> [String; 4] {
    [
        cell_series(c),
        c.backlog.to_string(),
        c.mode.clone(),
        format!("{}/{}", c.n_ok, c.n),
    ]
}

fn cpu_cell(c: &CellRow) -> String {
    interval(
        c.cpu_us_per_accept,
        c.cpu_us_per_accept_lo,
        c.cpu_us_per_accept_hi,
        2,
    )
}

fn cpu_ratio_cell(c: &CellRow) -> String {
    ratio_cell(
        c.ratio_cpu_vs_std,
        c.ratio_cpu_vs_std_lo,
        c.ratio_cpu_vs_std_hi,
        &c.cpu_vs_std,
    )
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
