//! `acceptbench compare`: runs from different kernels or machines side by side.
//! Joins summary.csv rows on (engine, backlog, mode), one column group per run
//! labelled by its kernel release: the median over the ok repetitions with its
//! confidence interval, the ratio of medians to the first run, and whether the
//! difference is real by an exact two-sided rank test (Mann–Whitney) at 5% — or
//! "n too small" when the repetitions could not show it whatever they were. Failed,
//! interrupted and skipped rows are left out. It reads result files only.

pub mod format;
pub mod load;
pub mod machines;

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::config::{CompareConfig, CompareFormat};
use crate::report::row::{Status, SummaryRow};

pub use load::{load_run, load_runs, Run};

/// The join key of a row: (engine, backlog, mode).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Engine name.
    pub engine: String,
    /// Backlog passed to listen(2).
    pub backlog: u32,
    /// Mode.
    pub mode: String,
}

pub use crate::stats::{MedianCi as Stats, Verdict};

/// One run's entry for one (key, metric).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// The run has no row for this key.
    Missing,
    /// The run skipped this engine (unsupported kernel); the row's note says why.
    Skipped(String),
    /// The run has rows but no value for this metric (no ok run, or an older run
    /// without that column).
    NoValue,
    /// Measured.
    Value {
        /// Median and interval over the ok repetitions.
        stats: Stats,
        /// The repetitions' values (for the rank test).
        values: Vec<f64>,
        /// median / the first run's median (None for the first run or a zero reference).
        ratio: Option<f64>,
        /// Whether the difference to the first run is real (None for the first run).
        verdict: Option<Verdict>,
    },
}

/// One line of the comparison: one metric of one (engine, backlog, mode).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The join key.
    pub key: Key,
    /// summary.csv column.
    pub metric: String,
    /// One cell per run, in run order.
    pub cells: Vec<Cell>,
}

/// Facts about one compared run, for the legend.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    /// Column label (kernel release, disambiguated).
    pub label: String,
    /// The run directory.
    pub dir: String,
    /// `none`, `tcg`, …
    pub virtualised: String,
    /// CPUs available.
    pub cpus: usize,
    /// Whether the run was interrupted.
    pub incomplete: bool,
}

/// The whole comparison, ready for any output format.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The runs, reference first.
    pub runs: Vec<RunInfo>,
    /// The lines, in the order keys first appear (first run first), metrics in the order asked.
    pub lines: Vec<Line>,
    /// Settings that differ between runs and change results.
    pub warnings: Vec<String>,
    /// The machines' cost profiles and the ratios to std that moved between them.
    pub machines: machines::Machines,
}

/// summary.csv columns that are text, not numbers.
const TEXT_COLUMNS: &[&str] = &["engine", "mode", "status", "note", "syn_retry_modes"];

/// The numeric summary.csv columns `--metric` accepts.
pub fn numeric_columns() -> Vec<String> {
    match serde_json::to_value(SummaryRow::default()) {
        Ok(serde_json::Value::Object(map)) => map
            .keys()
            .filter(|k| !TEXT_COLUMNS.contains(&k.as_str()))
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

/// The numeric value of column `metric` in `row` (None when empty).
fn metric_value(row: &SummaryRow, metric: &str) -> Option<f64> {
    let value = serde_json::to_value(row).ok()?;
    value.get(metric)?.as_f64()
}

/// Builds the comparison of `runs` (the first is the reference) over `metrics`.
pub fn compare(runs: &[Run], metrics: &[String]) -> anyhow::Result<Comparison> {
    let valid = numeric_columns();
    for m in metrics {
        if !valid.contains(m) {
            anyhow::bail!(
                "--metric {m:?} is not a numeric summary.csv column; use one of: {}",
                valid.join(", ")
            );
        }
    }
    let mut keys: Vec<Key> = Vec::new();
    let mut groups: Vec<BTreeMap<Key, Vec<&SummaryRow>>> = Vec::new();
    for run in runs {
        let mut g: BTreeMap<Key, Vec<&SummaryRow>> = BTreeMap::new();
        for row in &run.rows {
            let key = Key {
                engine: row.engine.clone(),
                backlog: row.backlog,
                mode: row.mode.clone(),
            };
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
            g.entry(key).or_default().push(row);
        }
        groups.push(g);
    }
    // Grouped by mode, then engine (both in order of first appearance), then backlog.
    let rank = |list: &[&String], item: &String| list.iter().position(|x| *x == item);
    let mut modes: Vec<&String> = Vec::new();
    let mut engines: Vec<&String> = Vec::new();
    for k in &keys {
        if !modes.contains(&&k.mode) {
            modes.push(&k.mode);
        }
        if !engines.contains(&&k.engine) {
            engines.push(&k.engine);
        }
    }
    let mut order: Vec<&Key> = keys.iter().collect();
    order.sort_by_key(|k| (rank(&modes, &k.mode), rank(&engines, &k.engine), k.backlog));
    let mut lines = Vec::new();
    for key in order {
        for metric in metrics {
            let mut cells: Vec<Cell> = groups
                .iter()
                .zip(runs)
                .map(|(g, run)| {
                    if run.columns.iter().any(|c| c == metric) {
                        cell(g.get(key).map(Vec::as_slice), metric)
                    } else {
                        // An older run without this column: absent, not zero.
                        Cell::NoValue
                    }
                })
                .collect();
            set_ratios(&mut cells);
            lines.push(Line {
                key: key.clone(),
                metric: metric.clone(),
                cells,
            });
        }
    }
    Ok(Comparison {
        runs: runs
            .iter()
            .map(|r| RunInfo {
                label: r.label.clone(),
                dir: r.dir.display().to_string(),
                virtualised: r.meta.virtualised.clone(),
                cpus: r.meta.cpus,
                incomplete: r.meta.incomplete,
            })
            .collect(),
        lines,
        warnings: settings_warnings(runs),
        machines: machines::of(runs),
    })
}

fn cell(rows: Option<&[&SummaryRow]>, metric: &str) -> Cell {
    let Some(rows) = rows else {
        return Cell::Missing;
    };
    if rows.iter().all(|r| r.status == Some(Status::Skipped)) {
        let note = rows.first().map(|r| r.note.clone()).unwrap_or_default();
        return Cell::Skipped(note);
    }
    // Failed and interrupted runs are absent, not zero.
    let values: Vec<f64> = rows
        .iter()
        .filter(|r| r.is_ok())
        .filter_map(|r| metric_value(r, metric))
        .filter(|v| v.is_finite())
        .collect();
    match Stats::of(&values) {
        Some(stats) => Cell::Value {
            stats,
            values,
            ratio: None,
            verdict: None,
        },
        None => Cell::NoValue,
    }
}

fn set_ratios(cells: &mut [Cell]) {
    let Some(Cell::Value {
        stats: reference,
        values: ref_values,
        ..
    }) = cells.first().cloned()
    else {
        return;
    };
    for c in cells.iter_mut().skip(1) {
        if let Cell::Value {
            stats,
            values,
            ratio,
            verdict,
        } = c
        {
            *ratio = (reference.median != 0.0).then(|| stats.median / reference.median);
            *verdict = Some(crate::stats::rank_test(&ref_values, values).0);
        }
    }
}

/// Warnings for settings that differ from the first run's and change results.
pub fn settings_warnings(runs: &[Run]) -> Vec<String> {
    let mut out = Vec::new();
    if runs.len() < 2 {
        return out;
    }
    let mut differs = |what: &str, get: &dyn Fn(&Run) -> String, why: &str| {
        let values: Vec<String> = runs.iter().map(get).collect();
        if values.iter().any(|v| *v != values[0]) {
            let listed: Vec<String> = runs
                .iter()
                .zip(&values)
                .map(|(r, v)| format!("{} = {v}", r.label))
                .collect();
            out.push(format!(
                "runs differ in {what}: {}; {why}",
                listed.join(", ")
            ));
        }
    };
    differs(
        "virtualised",
        &|r| r.meta.virtualised.clone(),
        "speeds under emulation (tcg) are not comparable with native ones — compare behaviour \
         (engine support, overflow counts, queue limits) and ratios between engines instead",
    );
    differs(
        "CPU count",
        &|r| r.meta.cpus.to_string(),
        "accept rates depend on how many cores acceptor and loadgen get",
    );
    differs(
        "RLIMIT_NOFILE",
        &|r| r.meta.rlimit_nofile.to_string(),
        "a low limit caps connections in flight",
    );
    differs(
        "results format_version",
        &|r| r.meta.format_version.to_string(),
        "format 3 ends every window at the last close; a format 2 run's accepts/s ended at \
         the last peer held, so compare shows it as peers_held_per_s and leaves its \
         accepts_per_s absent (format 1 timed from the first completion: both absent)",
    );
    differs(
        "acceptbench version",
        &|r| r.meta.acceptbench_version.clone(),
        "measurement code may have changed between versions",
    );
    let mut names: Vec<&String> = runs.iter().flat_map(|r| r.meta.sysctls.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        differs(
            &format!("sysctl {name}"),
            &|r| {
                r.meta
                    .sysctls
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| "(not recorded)".into())
            },
            "queue limits and overflow behaviour follow these settings",
        );
    }
    for r in runs {
        if r.meta.incomplete {
            out.push(format!(
                "run {} ({}) is marked incomplete: it was interrupted and lacks some rows",
                r.label,
                r.dir.display()
            ));
        }
    }
    out
}

/// Runs the command: loads the runs, prints warnings on stderr and the table on stdout.
pub fn run(cfg: &CompareConfig) -> anyhow::Result<ExitCode> {
    let runs = load_runs(&cfg.runs)?;
    let cmp = compare(&runs, &cfg.metrics)?;
    for w in &cmp.warnings {
        eprintln!("acceptbench: warning: {w}");
    }
    let text = match cfg.format {
        CompareFormat::Text => format::text(&cmp),
        CompareFormat::Markdown => format::markdown(&cmp),
        CompareFormat::Csv => format::csv(&cmp)?,
    };
    crate::stdout::print(text)?;
    Ok(ExitCode::SUCCESS)
}
