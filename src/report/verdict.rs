//! The sweep's answer in a dozen lines: per (mode, backlog) the engines ranked by their
//! ratio to std with its interval, a call (faster/slower, less/more CPU) only where the
//! interval excludes 1, and one line each for burst, overload and stall. Made from
//! cells.csv's cells and the stall rows — the same figures the run README tables show —
//! for the terminal, the top of the run README, and one JSON object (`--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::cells::{verdict as call_of, CellRow};
use super::row::SummaryRow;
use super::stall::StallRow;
use crate::stats::MedianCi;

/// The whole verdict.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Verdict {
    /// One per (mode, backlog, acceptors, sharing) of the throughput modes.
    pub cells: Vec<CellVerdict>,
    /// One line per overflow mode (burst, overload) and per stall load and length.
    pub answers: Vec<String>,
}

/// The engines of one (mode, backlog), ranked.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CellVerdict {
    /// Mode.
    pub mode: String,
    /// Backlog.
    pub backlog: u32,
    /// What they are ranked by: `accepts/s` or `acceptor CPU per accept`.
    pub ranked_by: String,
    /// std's own median (accepts/s, or µs per accept), absent if std has no ok run.
    pub std_value: Option<f64>,
    /// Why the ranking is by CPU (the clients set the pace), or empty.
    pub why: String,
    /// The other engines, best first.
    pub engines: Vec<EngineRatio>,
}

/// One engine's ratio to std.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EngineRatio {
    /// Engine label (`uring.q8`, `std.a2.reuseport`).
    pub engine: String,
    /// Median of the per-round ratios to std; absent without rounds that have one.
    pub ratio: Option<f64>,
    /// Lower end of its interval.
    pub lo: Option<f64>,
    /// Upper end of its interval.
    pub hi: Option<f64>,
    /// `faster`/`slower` (or `less CPU`/`more CPU`) when the interval excludes 1, `~`
    /// when it includes 1, `n too small` below 6 rounds, `no ratio` without any.
    pub call: String,
}

/// Modes whose pace the clients set: every engine keeps up, so CPU is the difference.
fn client_paced(mode: &str) -> bool {
    matches!(mode, "closed" | "rate")
}

/// Builds the verdict of a sweep.
pub fn of(cells: &[CellRow], rows: &[SummaryRow], stall: &[StallRow]) -> Verdict {
    let mut groups: BTreeMap<(usize, u32, u32, String), Vec<&CellRow>> = BTreeMap::new();
    let mode_order = |m: &str| ["drain", "closed", "rate"].iter().position(|x| *x == m);
    for c in cells {
        if let Some(o) = mode_order(&c.mode) {
            let key = (o, c.backlog, c.acceptors.max(1), c.sharing.clone());
            groups.entry(key).or_default().push(c);
        }
    }
    let mut answers = overflow_answers(rows);
    answers.extend(stall_answers(stall));
    answers.extend(trace_answers(cells));
    answers.extend(kernel_account_answer(rows));
    let cells = groups.into_values().map(|g| cell_verdict(&g)).collect();
    Verdict { cells, answers }
}

fn cell_verdict(group: &[&CellRow]) -> CellVerdict {
    let first = group[0];
    let by_cpu = client_paced(&first.mode);
    let std = group.iter().find(|c| c.engine == "std");
    let mut engines: Vec<EngineRatio> = group
        .iter()
        .filter(|c| c.engine != "std")
        .map(|c| engine_ratio(c, by_cpu))
        .collect();
    // Best first: fastest, or least CPU; engines without a ratio last.
    engines.sort_by(|a, b| {
        let key = |e: &EngineRatio| e.ratio.map(|r| if by_cpu { r } else { -r });
        match (key(a), key(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.engine.cmp(&b.engine),
        }
    });
    CellVerdict {
        mode: first.mode.clone(),
        backlog: first.backlog,
        ranked_by: if by_cpu {
            "acceptor CPU per accept"
        } else {
            "accepts/s"
        }
        .into(),
        std_value: std.and_then(|s| {
            if by_cpu {
                s.cpu_us_per_accept
            } else {
                s.accepts_per_s
            }
        }),
        why: if by_cpu {
            pace_note(group)
        } else {
            String::new()
        },
        engines,
    }
}

/// One engine's ratio to std (of CPU per accept when `by_cpu`, else of accepts/s) and
/// what its interval allows us to call it.
fn engine_ratio(c: &CellRow, by_cpu: bool) -> EngineRatio {
    let (ratio, lo, hi) = if by_cpu {
        (
            c.ratio_cpu_vs_std,
            c.ratio_cpu_vs_std_lo,
            c.ratio_cpu_vs_std_hi,
        )
    } else {
        (
            c.ratio_accepts_vs_std,
            c.ratio_accepts_vs_std_lo,
            c.ratio_accepts_vs_std_hi,
        )
    };
    let interval = match (ratio, lo, hi) {
        (Some(median), Some(lo), Some(hi)) => Some(MedianCi {
            median,
            lo,
            hi,
            level: c.ratio_ci_level.unwrap_or(0.0),
            n: c.ratio_n as usize,
        }),
        _ => None,
    };
    let cell_call = call_of(interval);
    let call = match (cell_call.as_str(), by_cpu) {
        ("higher", false) => "faster",
        ("lower", false) => "slower",
        ("higher", true) => "more CPU",
        ("lower", true) => "less CPU",
        ("", _) => "no ratio",
        (other, _) => other,
    };
    EngineRatio {
        engine: super::series(
            &c.engine,
            c.inflight,
            &c.accept_flags,
            &c.peer_op,
            c.acceptors,
            &c.sharing,
        ),
        ratio,
        lo,
        hi,
        call: call.to_string(),
    }
}

/// Why a client-paced cell is ranked by CPU: the clients set the pace, and how close
/// the engines' accepts/s are.
fn pace_note(group: &[&CellRow]) -> String {
    let pace = if group[0].mode == "closed" {
        "client-bound"
    } else {
        "paced by the clients"
    };
    let spread: Vec<f64> = group
        .iter()
        .filter_map(|c| c.ratio_accepts_vs_std)
        .collect();
    let lo = spread.iter().copied().reduce(f64::min);
    let hi = spread.iter().copied().reduce(f64::max);
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{pace}: accepts/s {lo:.2}–{hi:.2}× std"),
        _ => pace.to_string(),
    }
}

/// Burst and overload: what the clients saw at each backlog (every engine, every round).
fn overflow_answers(rows: &[SummaryRow]) -> Vec<String> {
    let mut out = Vec::new();
    for mode in ["burst", "overload"] {
        let mut by_backlog: BTreeMap<u32, BTreeMap<String, usize>> = BTreeMap::new();
        for r in rows.iter().filter(|r| r.mode == mode && r.is_ok()) {
            let outcome = r.overflow_outcome.clone().unwrap_or_else(|| "?".into());
            *by_backlog
                .entry(r.backlog)
                .or_default()
                .entry(outcome)
                .or_default() += 1;
        }
        if by_backlog.is_empty() {
            continue;
        }
        let parts: Vec<String> = by_backlog
            .iter()
            .map(|(b, outcomes)| {
                let o: Vec<String> = outcomes
                    .iter()
                    .map(|(o, n)| {
                        if outcomes.len() == 1 {
                            o.clone()
                        } else {
                            format!("{o} ×{n}")
                        }
                    })
                    .collect();
                format!("backlog {b}: {}", o.join(", "))
            })
            .collect();
        out.push(format!(
            "{mode}: what clients saw of a full queue — {}",
            parts.join("; ")
        ));
    }
    out
}

/// Stall: per load and stall, each engine's smallest backlog that dropped nothing.
fn stall_answers(stall: &[StallRow]) -> Vec<String> {
    let ok: Vec<&StallRow> = stall.iter().filter(|r| r.status == "ok").collect();
    let mut lines: Vec<((String, u64), Vec<String>)> = Vec::new();
    for ((load, stall_ms, series), by_backlog, clean) in super::stall::sizing(&ok) {
        let largest = by_backlog.keys().last().copied().unwrap_or(0);
        let text = match clean {
            Some(b) => format!("{series} {b}"),
            None => format!("{series} above {largest}"),
        };
        match lines
            .iter_mut()
            .find(|(k, _)| *k == (load.clone(), stall_ms))
        {
            Some((_, v)) => v.push(text),
            None => lines.push(((load, stall_ms), vec![text])),
        }
    }
    lines
        .into_iter()
        .map(|((load, ms), v)| {
            format!(
                "stall {ms} ms at {load}: smallest backlog with no drop — {}",
                v.join(", ")
            )
        })
        .collect()
}

fn fmt_value(v: f64, by_cpu: bool) -> String {
    if by_cpu {
        format!("{v:.2} µs/accept")
    } else if v >= 1e3 {
        format!("{:.0}k/s", v / 1e3)
    } else {
        format!("{v:.0}/s")
    }
}

impl Verdict {
    /// True when there is nothing to say (every run failed or was skipped).
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.answers.is_empty()
    }

    /// The verdict as lines of text, the first a heading.
    pub fn to_text(&self) -> String {
        let mut s = String::from(
            "Verdict (ratio to std in the same rounds: median [95% interval]; ~ = the interval includes 1):\n",
        );
        for c in &self.cells {
            let by_cpu = c.ranked_by != "accepts/s";
            let _ = write!(
                s,
                "  {:<6} backlog {:<5} {}",
                c.mode,
                c.backlog,
                if by_cpu { "CPU/accept" } else { "accepts/s" }
            );
            let std = c
                .std_value
                .map_or("no ok run".into(), |v| fmt_value(v, by_cpu));
            let _ = write!(s, " (std {std}");
            if !c.why.is_empty() {
                let _ = write!(s, "; {}", c.why);
            }
            s += "): ";
            let e: Vec<String> = c.engines.iter().map(EngineRatio::to_text).collect();
            s += if e.is_empty() {
                "no other engine to rank"
            } else {
                ""
            };
            s += &e.join(", ");
            s += "\n";
        }
        for a in &self.answers {
            let _ = writeln!(s, "  {a}");
        }
        s
    }

    /// The verdict for the top of the run README: the same lines in a code block.
    pub fn to_markdown(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        format!("## Verdict\n\n```\n{}```\n\n", self.to_text())
    }
}

/// `--trace kernel`: how many traced runs have the kernel's whole account, and which
/// do not (records lost, or counted by the kernel and never delivered): their kernel_*
/// figures may be short, and the verdict says so rather than leave it to the notes.
fn kernel_account_answer(rows: &[SummaryRow]) -> Option<String> {
    let traced: Vec<&SummaryRow> = rows
        .iter()
        .filter(|r| r.kernel_trace == "ok" || r.kernel_trace == "incomplete")
        .collect();
    if traced.is_empty() {
        return None;
    }
    let short: Vec<String> = traced
        .iter()
        .filter(|r| r.kernel_trace == "incomplete")
        .map(|r| {
            format!(
                "{} {} b{} r{} ({} records)",
                r.engine,
                r.mode,
                r.backlog,
                r.repetition,
                r.kernel_lost_records.unwrap_or(0)
            )
        })
        .collect();
    Some(if short.is_empty() {
        let runs = match traced.len() {
            1 => "the one traced run".to_string(),
            n => format!("all {n} traced runs"),
        };
        format!("kernel's account: complete in {runs} (no record lost or undelivered)")
    } else {
        format!(
            "kernel's account: complete in {} of {} traced runs; incomplete, its kernel_* figures possibly short: {}",
            traced.len() - short.len(),
            traced.len(),
            short.join(", ")
        )
    })
}

/// `--trace off,kernel`: one line per traced cell, what tracing cost its engine —
/// CPU per accept and accepts/s, traced ÷ untraced in the same round, with intervals.
fn trace_answers(cells: &[CellRow]) -> Vec<String> {
    let part = |what: &str, m: Option<f64>, lo: Option<f64>, hi: Option<f64>, c: &CellRow| {
        let (m, lo, hi) = (m?, lo?, hi?);
        let call = call_of(Some(MedianCi {
            median: m,
            lo,
            hi,
            level: c.trace_ratio_ci_level.unwrap_or(0.0),
            n: c.trace_ratio_n as usize,
        }));
        Some(format!(
            "{what} ×{} [{}–{}] {call}",
            ratio_text(m),
            ratio_text(lo),
            ratio_text(hi)
        ))
    };
    cells
        .iter()
        .filter(|c| c.trace_ratio_cpu.is_some() || c.trace_ratio_accepts.is_some())
        .map(|c| {
            let parts: Vec<String> = [
                part(
                    "CPU/accept",
                    c.trace_ratio_cpu,
                    c.trace_ratio_cpu_lo,
                    c.trace_ratio_cpu_hi,
                    c,
                ),
                part(
                    "accepts/s",
                    c.trace_ratio_accepts,
                    c.trace_ratio_accepts_lo,
                    c.trace_ratio_accepts_hi,
                    c,
                ),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!(
                "tracing cost ({} traced ÷ untraced, same round) {} backlog {}: {}",
                super::series(
                    &c.engine,
                    c.inflight,
                    &c.accept_flags,
                    &c.peer_op,
                    c.acceptors,
                    &c.sharing
                ),
                c.mode,
                c.backlog,
                parts.join(", ")
            )
        })
        .collect()
}

/// A ratio with two decimals, or three where two would show 1.00 for a value that is
/// not 1 (an interval ending at 1.0004 is not one that includes 1).
fn ratio_text(v: f64) -> String {
    if (v * 100.0).round() == 100.0 && v != 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.2}")
    }
}

impl EngineRatio {
    fn to_text(&self) -> String {
        match (self.ratio, self.lo, self.hi) {
            (Some(r), Some(lo), Some(hi)) => format!(
                "{} {} [{}–{}] {}",
                self.engine,
                ratio_text(r),
                ratio_text(lo),
                ratio_text(hi),
                self.call
            ),
            (Some(r), _, _) => format!("{} {} {}", self.engine, ratio_text(r), self.call),
            _ => format!("{} {}", self.engine, self.call),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(engine: &str, mode: &str, ratio: f64, lo: f64, hi: f64, n: u32) -> CellRow {
        CellRow {
            engine: engine.into(),
            backlog: 4096,
            mode: mode.into(),
            acceptors: 1,
            sharing: "shared".into(),
            accepts_per_s: Some(200_000.0 * ratio),
            cpu_us_per_accept: Some(5.0),
            ratio_n: n,
            ratio_ci_level: Some(if n >= 6 { 0.96 } else { 0.8 }),
            ratio_accepts_vs_std: Some(ratio),
            ratio_accepts_vs_std_lo: Some(lo),
            ratio_accepts_vs_std_hi: Some(hi),
            ratio_cpu_vs_std: Some(1.0 / ratio),
            ratio_cpu_vs_std_lo: Some(1.0 / hi),
            ratio_cpu_vs_std_hi: Some(1.0 / lo),
            ..Default::default()
        }
    }

    #[test]
    fn engines_are_ranked_and_called_only_when_the_interval_excludes_one() {
        let cells = vec![
            cell("std", "drain", 1.0, 1.0, 1.0, 12),
            cell("uring", "drain", 0.8, 0.75, 0.85, 12),
            cell("multishot", "drain", 1.02, 0.97, 1.08, 12),
            cell("tokio", "drain", 1.3, 1.2, 1.4, 12),
            cell("uring-linked", "drain", 1.5, 1.1, 1.9, 4),
        ];
        let v = of(&cells, &[], &[]);
        assert_eq!(v.cells.len(), 1);
        let c = &v.cells[0];
        assert_eq!(c.std_value, Some(200_000.0));
        let got: Vec<(&str, &str)> = c
            .engines
            .iter()
            .map(|e| (e.engine.as_str(), e.call.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("uring-linked", "n too small"),
                ("tokio", "faster"),
                ("multishot", "~"),
                ("uring", "slower")
            ]
        );
        let text = v.to_text();
        assert!(text.contains("drain  backlog 4096  accepts/s (std 200k/s): uring-linked 1.50 [1.10–1.90] n too small, tokio 1.30 [1.20–1.40] faster, multishot 1.02 [0.97–1.08] ~, uring 0.80 [0.75–0.85] slower"), "{text}");
    }

    #[test]
    fn a_closed_loop_is_client_bound_and_ranked_by_cpu() {
        let cells = vec![
            cell("std", "closed", 1.0, 1.0, 1.0, 12),
            cell("multishot", "closed", 1.25, 1.1, 1.4, 12),
            cell("tokio", "closed", 0.8, 0.7, 0.9, 12),
        ];
        let v = of(&cells, &[], &[]);
        let c = &v.cells[0];
        assert_eq!(c.ranked_by, "acceptor CPU per accept");
        assert!(
            c.why.starts_with("client-bound: accepts/s 0.80–1.25× std"),
            "{}",
            c.why
        );
        assert_eq!(c.engines[0].engine, "multishot");
        assert_eq!(c.engines[0].call, "less CPU");
        assert_eq!(c.engines[1].call, "more CPU");
    }

    #[test]
    fn burst_says_what_the_clients_saw_per_backlog() {
        let row = |b: u32, outcome: &str| SummaryRow {
            engine: "std".into(),
            backlog: b,
            mode: "burst".into(),
            status: Some(super::super::row::Status::Ok),
            overflow_outcome: Some(outcome.into()),
            ..Default::default()
        };
        let v = of(
            &[],
            &[
                row(16, "syn-dropped"),
                row(16, "syn-dropped"),
                row(1024, "none"),
            ],
            &[],
        );
        assert_eq!(
            v.answers,
            ["burst: what clients saw of a full queue — backlog 16: syn-dropped; backlog 1024: none"]
        );
        assert!(v.cells.is_empty());
    }

    #[test]
    fn the_kernels_account_is_called_complete_or_names_the_runs_that_are_not() {
        let row = |engine: &str, rep: u32, trace: &str, lost: u64| SummaryRow {
            engine: engine.into(),
            mode: "stall".into(),
            backlog: 8,
            repetition: rep,
            kernel_trace: trace.into(),
            kernel_lost_records: (trace != "off").then_some(lost),
            ..Default::default()
        };
        assert_eq!(kernel_account_answer(&[row("std", 1, "off", 0)]), None);
        let rows = [
            row("std", 1, "ok", 0),
            row("nginx", 3, "incomplete", 64),
            row("seed", 2, "unavailable", 0),
        ];
        assert_eq!(
            kernel_account_answer(&rows).unwrap(),
            "kernel's account: complete in 1 of 2 traced runs; incomplete, its kernel_* figures possibly short: nginx stall b8 r3 (64 records)"
        );
        assert_eq!(
            kernel_account_answer(&rows[..1]).unwrap(),
            "kernel's account: complete in the one traced run (no record lost or undelivered)"
        );
    }
}
