//! The run directory's README.md: the exact command and a table of headline figures,
//! rendered from the same rows that went into summary.csv.

use std::fmt::Write as _;

use super::meta::Meta;
use super::row::{Status, SummaryRow};

/// Renders the README of a run.
pub fn render(meta: &Meta, rows: &[SummaryRow]) -> String {
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
        "Machine: {} CPUs ({}), virtualised: {}, acceptor on CPU {}, loadgen on CPUs {:?}. Started {}, finished {}.\n",
        meta.cpus,
        meta.cpu_model,
        meta.virtualised,
        meta.server_cpu,
        meta.client_cpus,
        meta.started_utc,
        if meta.finished_utc.is_empty() { "—" } else { &meta.finished_utc }
    );
    let _ = writeln!(
        s,
        "Files: `summary.csv` (one row per run, columns in ../README.md), `meta.json` (kernel, sysctls, versions), `hgrm/` (latency percentile distributions, µs).\n"
    );
    let main: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| matches!(r.mode.as_str(), "closed" | "rate" | "drain"))
        .collect();
    if !main.is_empty() {
        let _ = writeln!(s, "## Throughput, CPU and peer-extraction latency\n");
        let _ = writeln!(
            s,
            "| engine | backlog | mode | status | accepts/s | × std | acceptor CPU µs/accept | × std | peer p50 µs | peer p99 µs | connect p99 µs | established / accepted / matched |"
        );
        let _ = writeln!(
            s,
            "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in main {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.0} | {} | {:.2} | {} | {:.1} | {:.1} | {:.1} | {} / {} / {} |",
                r.engine,
                backlog(r),
                r.mode,
                status(r),
                r.accepts_per_s,
                ratio(r.ratio_accepts_vs_std),
                r.acceptor_cpu_us_per_accept,
                ratio(r.ratio_cpu_vs_std),
                r.peer_p50_ns as f64 / 1e3,
                r.peer_p99_ns as f64 / 1e3,
                r.connect_p99_ns as f64 / 1e3,
                r.established,
                r.accepted,
                r.matched
            );
        }
        let _ = writeln!(s);
    }
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
                r.engine,
                backlog(r),
                r.mode,
                r.attempted,
                r.established,
                opt(r.established_immediately),
                r.accepted,
                r.unmatched_client,
                opt(r.queue_max),
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
    let notes: Vec<&SummaryRow> = rows.iter().filter(|r| !r.note.is_empty()).collect();
    if !notes.is_empty() || !meta.notes.is_empty() {
        let _ = writeln!(s, "## Notes\n");
        for n in &meta.notes {
            let _ = writeln!(s, "- {n}");
        }
        for r in notes {
            let _ = writeln!(
                s,
                "- {} b{} {} r{}: {}",
                r.engine, r.backlog, r.mode, r.repetition, r.note
            );
        }
    }
    s
}

fn backlog(r: &SummaryRow) -> String {
    if r.backlog_effective != 0 && r.backlog_effective != r.backlog {
        format!("{} (→{})", r.backlog, r.backlog_effective)
    } else {
        r.backlog.to_string()
    }
}

fn status(r: &SummaryRow) -> &'static str {
    match r.status {
        Some(Status::Ok) => "ok",
        Some(Status::Skipped) => "skipped",
        Some(Status::Incomplete) => "incomplete",
        None => "?",
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |v| format!("{v:.2}"))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("—".into(), |v| v.to_string())
}
