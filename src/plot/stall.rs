//! Stall charts, from a run's `stall.csv` and `stall/worst-*.csv`: time to recover
//! against backlog (a chart per load and engine, a line per stall), and the worst
//! run's timeline per load and stall — arrivals, SYNs (retry waves show as spikes),
//! connections held, and the queue, measured beside the model's prediction.

use super::charts::{Axis, Chart, Series};
use crate::compare::Run;
use crate::report::stall::{self, StallRow};

/// Every stall chart of `runs` (none for runs without stall.csv). A file that cannot be
/// read is reported and skipped.
pub fn charts(runs: &[Run]) -> Vec<Chart> {
    let mut out = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let path = run.dir.join("stall.csv");
        if !path.is_file() {
            continue;
        }
        let rows = match stall::read(&path) {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("acceptbench: warning: plot: skipping {e:#}");
                continue;
            }
        };
        let prefix = if runs.len() > 1 {
            format!("r{}-", i + 1)
        } else {
            String::new()
        };
        let ok: Vec<&StallRow> = rows.iter().filter(|r| r.status == "ok").collect();
        out.extend(recovery_charts(&ok, &prefix, &run.label));
        out.extend(timeline_charts(run, &ok, &prefix));
    }
    out
}

/// Distinct values in first-seen order.
fn distinct<T: PartialEq + Clone>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

/// Per (load, engine): recovery ms against backlog, a line per stall. A run that did
/// not recover is drawn at the end of the window it was judged in (and its line's
/// label says so); several rounds: the worst.
fn recovery_charts(rows: &[&StallRow], prefix: &str, label: &str) -> Vec<Chart> {
    let mut charts = Vec::new();
    for load in distinct(rows.iter().map(|r| r.load.clone())) {
        for series_name in distinct(rows.iter().map(|r| r.series.clone())) {
            let mine: Vec<&&StallRow> = rows
                .iter()
                .filter(|r| r.load == load && r.series == series_name)
                .collect();
            let stalls = distinct(mine.iter().map(|r| r.stall_ms.round() as u64));
            let series = stalls
                .iter()
                .enumerate()
                .map(|(c, &t)| {
                    let mut points: Vec<(f64, f64)> = Vec::new();
                    let mut unrecovered = false;
                    for b in distinct(mine.iter().map(|r| r.backlog)) {
                        let worst = mine
                            .iter()
                            .filter(|r| r.backlog == b && r.stall_ms.round() as u64 == t)
                            .max_by_key(|r| r.badness());
                        if let Some(w) = worst {
                            unrecovered |= !w.recovered;
                            let y = w.recover_ms.unwrap_or(w.judged_s * 1e3);
                            points.push((f64::from(b), y));
                        }
                    }
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series {
                        label: format!(
                            "{t} ms stall{}",
                            if unrecovered {
                                " (not recovered: drawn at the window's end)"
                            } else {
                                ""
                            }
                        ),
                        color: c,
                        dashed: false,
                        points,
                        intervals: Vec::new(),
                    }
                })
                .collect();
            charts.push(Chart {
                stem: format!(
                    "{prefix}stall-recovery-{}-{series_name}",
                    load.replace(':', "")
                ),
                title: format!("time to recover after a stall — {series_name}, {load}, {label}"),
                x_desc: "backlog".into(),
                y_desc: "resume → normal again, ms".into(),
                x: Axis::Log2,
                y: Axis::Linear,
                series,
            });
        }
    }
    charts
}

/// The worst run of each (load, stall): its timeline, measured and predicted.
fn timeline_charts(run: &Run, rows: &[&StallRow], prefix: &str) -> Vec<Chart> {
    let mut charts = Vec::new();
    let cells = distinct(rows.iter().map(|r| r.cell_label()));
    for cell in cells {
        let Some(worst) = rows
            .iter()
            .filter(|r| r.cell_label() == cell)
            .max_by_key(|r| r.badness())
        else {
            continue;
        };
        let path = run
            .dir
            .join("stall")
            .join(stall::worst_timeline_name(worst));
        let bins = match stall::read_timeline(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("acceptbench: warning: plot: skipping {e:#}");
                continue;
            }
        };
        let line =
            |label: &str, color: usize, dashed: bool, f: &dyn Fn(&stall::Bin) -> u32| Series {
                label: label.into(),
                color,
                dashed,
                points: bins.iter().map(|b| (b.t_ms, f64::from(f(b)))).collect(),
                intervals: Vec::new(),
            };
        let mut series = vec![
            line("arrivals", 0, false, &|b| b.arrivals),
            line("SYNs sent (retry waves)", 1, false, &|b| b.syns),
            line("held by the acceptor", 2, false, &|b| b.held),
            line("accept queue (deepest)", 3, false, &|b| b.queue),
        ];
        // No model (an external server without μ): no predicted lines, not zeros.
        if bins.iter().any(|b| b.held_pred.is_some()) {
            series.push(line("held, predicted", 4, true, &|b| {
                b.held_pred.unwrap_or(0)
            }));
            series.push(line("accept queue, predicted", 5, true, &|b| {
                b.queue_pred.unwrap_or(0)
            }));
        }
        charts.push(Chart {
            stem: format!("{prefix}stall-timeline-{cell}"),
            title: format!(
                "worst run of {} with a {:.0} ms stall: {} at backlog {} ({})",
                worst.load,
                worst.stall_ms,
                worst.series,
                worst.backlog,
                if worst.recovered {
                    format!("recovered after {:.0} ms", worst.recover_ms.unwrap_or(0.0))
                } else {
                    "not recovered".into()
                }
            ),
            x_desc: "time from the first arrival, ms (10 ms bins)".into(),
            y_desc: "connections per bin; queue depth".into(),
            x: Axis::Linear,
            y: Axis::Linear,
            series,
        });
    }
    charts
}
