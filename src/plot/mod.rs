//! `acceptbench plot`: PNG and SVG charts of one or more runs, drawn with
//! plotters (no Python): accepts/s and acceptor CPU per accept across backlogs,
//! latency percentile curves (HdrHistogram style) and accept-queue depth over
//! time. With several runs, one series per kernel. It reads result files only;
//! `timeline` draws one kernel trace's connections.

pub mod charts;
pub mod font;
pub mod stall;
pub mod timeline;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::compare::{load_run, load_runs, Run};
use crate::config::PlotConfig;
use crate::report::row::SummaryRow;
use charts::{Axis, Chart, Interval, Series};

/// Latency histograms plotted, with their axis descriptions.
const LATENCIES: &[(&str, &str)] = &[
    ("connect", "client connect latency"),
    (
        "peer",
        "peer-extraction latency (connect() → server holds the peer; external servers: served, connect() → first byte or close)",
    ),
];

/// Runs the command: charts of every run given, into `--out` or `<first run>/plots`.
pub fn run(cfg: &PlotConfig) -> anyhow::Result<ExitCode> {
    let runs = load_runs(&cfg.runs)?;
    let out = match (&cfg.out, runs.first()) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => r.dir.join("plots"),
        (None, None) => anyhow::bail!("give at least one run directory to plot"),
    };
    let files = plot_runs(&runs, &out, cfg.png)?;
    if !font::ready() {
        eprintln!(
            "acceptbench: note: no font found, charts have no text; install fonts-dejavu-core or set {}=/path/to/font.ttf",
            font::FONT_ENV
        );
    }
    for f in &files {
        crate::stdout::println(f.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws the standard charts of one run directory into `<dir>/plots/` as SVG only
/// (what a sweep commits must stay small: a PNG chart is ~130 kB, its SVG ~15 kB);
/// `acceptbench plot` adds the PNGs. Returns the files written.
pub fn plot_run_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    plot_run_dir_as(dir, false)
}

/// Like [`plot_run_dir`], with PNG files too when `png`.
pub fn plot_run_dir_as(dir: &Path, png: bool) -> anyhow::Result<Vec<PathBuf>> {
    let run = load_run(dir)?;
    let mut files = plot_runs(std::slice::from_ref(&run), &dir.join("plots"), png)?;
    files.extend(timeline_charts(dir));
    Ok(files)
}

/// `--trace kernel`: every `kernel/<stem>-timeline.csv` of a run drawn as
/// `plots/timeline-<stem>.svg`, a line per connection (one run per backlog and mode).
/// A file that cannot be read or drawn is reported on stderr and skipped.
fn timeline_charts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join("kernel")) else {
        return Vec::new();
    };
    let mut stems: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| n.strip_suffix("-timeline.csv").map(str::to_string))
        .collect();
    stems.sort();
    let mut files = Vec::new();
    if !stems.is_empty() {
        if let Err(e) = std::fs::create_dir_all(dir.join("plots")) {
            eprintln!("acceptbench: warning: plot: no timeline drawn: {e}");
            return files;
        }
    }
    for stem in stems {
        let csv = dir.join("kernel").join(format!("{stem}-timeline.csv"));
        let svg = dir.join("plots").join(format!("timeline-{stem}.svg"));
        let drawn = std::fs::File::open(&csv)
            .map_err(anyhow::Error::from)
            .and_then(|f| {
                Ok(common::ktrace::timeline::read_timeline_csv(
                    std::io::BufReader::new(f),
                )?)
            })
            .and_then(|conns| timeline::draw(&conns, &svg, &format!("{stem}-timeline.csv")));
        match drawn {
            Ok(_) => files.push(svg),
            Err(e) => eprintln!(
                "acceptbench: warning: plot: skipping {}: {e:#}",
                csv.display()
            ),
        }
    }
    files
}

/// Draws every chart of `runs` into `out` (SVG, and PNG with `png`). A chart that
/// cannot be drawn is reported on stderr and skipped; the others are still written.
pub fn plot_runs(runs: &[Run], out: &Path, png: bool) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| {
        format!(
            "cannot create {}: choose a writable directory with --out DIR",
            out.display()
        )
    })?;
    let mut files = Vec::new();
    for chart in all_charts(runs) {
        match chart.write(out, png) {
            Ok(mut f) => files.append(&mut f),
            Err(e) => eprintln!("acceptbench: warning: plot {}: {e:#}", chart.stem),
        }
    }
    Ok(files)
}

/// Every chart the runs have data for.
pub fn all_charts(runs: &[Run]) -> Vec<Chart> {
    let mut charts = Vec::new();
    // Stall runs have charts of their own (their rows differ in stall and load).
    for mode in modes(runs).into_iter().filter(|m| m != "stall") {
        charts.push(by_backlog(runs, &mode, "accepts", "accepts/s", |r| {
            r.accepts_per_s
        }));
        charts.push(by_backlog(
            runs,
            &mode,
            "cpu",
            "acceptor CPU µs per accept",
            |r| r.acceptor_cpu_us_per_accept.unwrap_or(f64::NAN),
        ));
        let backlogs: BTreeSet<u32> = measured(runs)
            .filter(|(_, r)| r.mode == mode)
            .map(|(_, r)| r.backlog)
            .collect();
        for (metric, desc) in LATENCIES {
            for &b in &backlogs {
                let c = latency(runs, &mode, b, metric, desc);
                if !c.series.is_empty() {
                    charts.push(c);
                }
            }
        }
    }
    charts.extend(queue_charts(runs));
    charts.extend(stall::charts(runs));
    charts.retain(|c| c.series.iter().any(|s| !s.points.is_empty()));
    charts
}

/// Rows that are measurements (status ok: failed, interrupted and skipped runs are
/// absent, not zero), with their run index.
fn measured(runs: &[Run]) -> impl Iterator<Item = (usize, &SummaryRow)> {
    runs.iter().enumerate().flat_map(|(i, r)| {
        r.rows
            .iter()
            .filter(|row| row.is_ok())
            .map(move |row| (i, row))
    })
}

fn modes(runs: &[Run]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for (_, r) in measured(runs) {
        if !v.contains(&r.mode) {
            v.push(r.mode.clone());
        }
    }
    v
}

fn engines(runs: &[Run]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for run in runs {
        for r in &run.rows {
            if !v.contains(&r.engine) {
                v.push(r.engine.clone());
            }
        }
    }
    v
}

/// Series label: the engine, plus the run's label when there are several runs.
fn label(runs: &[Run], run: usize, engine: &str) -> String {
    if runs.len() > 1 {
        format!("{engine} · {}", runs[run].label)
    } else {
        engine.to_string()
    }
}

/// A line per (run, engine) with points: the engine's colour (shifted per run), later
/// runs dashed. `data` gives a line's points and, for medians, their intervals.
fn per_engine(
    runs: &[Run],
    mut data: impl FnMut(usize, &Run, &str) -> (Vec<(f64, f64)>, Vec<Interval>),
) -> Vec<Series> {
    let engines = engines(runs);
    let mut series = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        for (ei, engine) in engines.iter().enumerate() {
            let (points, intervals) = data(ri, run, engine);
            if !points.is_empty() {
                series.push(Series {
                    label: label(runs, ri, engine),
                    color: ei + ri * engines.len(),
                    dashed: ri > 0,
                    points,
                    intervals,
                });
            }
        }
    }
    series
}

/// One chart per mode: `value` (median over the ok repetitions) against backlog, a
/// line per engine (and run).
fn by_backlog(
    runs: &[Run],
    mode: &str,
    stem: &str,
    y_desc: &str,
    value: fn(&SummaryRow) -> f64,
) -> Chart {
    let series = per_engine(runs, |ri, _, engine| {
        let mut backlogs: Vec<u32> = measured(runs)
            .filter(|(i, r)| *i == ri && r.engine == engine && r.mode == mode)
            .map(|(_, r)| r.backlog)
            .collect();
        backlogs.sort_unstable();
        backlogs.dedup();
        let cis: Vec<(f64, crate::stats::MedianCi)> = backlogs
            .into_iter()
            .filter_map(|b| {
                let vals: Vec<f64> = measured(runs)
                    .filter(|(i, r)| {
                        *i == ri && r.engine == engine && r.mode == mode && r.backlog == b
                    })
                    .map(|(_, r)| value(r))
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .collect();
                crate::stats::MedianCi::of(&vals).map(|c| (f64::from(b), c))
            })
            .collect();
        let points = cis.iter().map(|(x, c)| (*x, c.median)).collect();
        let intervals = cis
            .iter()
            .map(|(x, c)| Interval {
                x: *x,
                lo: c.lo,
                hi: c.hi,
                enough: c.level >= crate::stats::LEVEL - 1e-12,
            })
            .collect();
        (points, intervals)
    });
    Chart {
        stem: format!("{stem}-{mode}"),
        title: format!("{y_desc} by backlog — mode {mode}"),
        x_desc: "backlog (listen(2) argument) · median, whisker = 95% interval, ring = n too small"
            .into(),
        y_desc: y_desc.into(),
        x: Axis::Log2,
        y: Axis::Linear,
        series,
    }
}

/// The hgrm file of the first repetition that has one.
fn hgrm_path(dir: &Path, engine: &str, backlog: u32, mode: &str, metric: &str) -> Option<PathBuf> {
    let base = format!("{engine}-b{backlog}-{mode}");
    std::iter::once(format!("{base}-{metric}.hgrm"))
        .chain((1..=32).map(|r| format!("{base}-r{r}-{metric}.hgrm")))
        .map(|name| dir.join("hgrm").join(name))
        .find(|p| p.is_file())
}

/// Percentile curves of one latency, mode and backlog: a line per engine (and run).
fn latency(runs: &[Run], mode: &str, backlog: u32, metric: &str, desc: &str) -> Chart {
    let series = per_engine(runs, |_, run, engine| {
        // An external server has no peer latency; its counterpart is served latency.
        let path = hgrm_path(&run.dir, engine, backlog, mode, metric).or_else(|| {
            (metric == "peer")
                .then(|| hgrm_path(&run.dir, engine, backlog, mode, "served"))
                .flatten()
        });
        let Some(path) = path else {
            return (Vec::new(), Vec::new());
        };
        let d = match crate::report::hgrm::parse_file(&path) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("acceptbench: warning: plot: skipping {e}");
                return (Vec::new(), Vec::new());
            }
        };
        let points = d
            .rows
            .iter()
            .filter(|r| r.quantile < 1.0)
            .map(|r| (1.0 / (1.0 - r.quantile), r.value_us))
            .collect();
        (points, Vec::new())
    });
    Chart {
        stem: format!("latency-{metric}-{mode}-b{backlog}"),
        title: format!("{desc} — mode {mode}, backlog {backlog}"),
        x_desc: "percentile".into(),
        y_desc: "latency".into(),
        x: Axis::Percentile,
        y: Axis::LogMicros,
        series,
    }
}

/// One sample of `queue/*.csv`.
#[derive(Debug, serde::Deserialize)]
struct QueueSample {
    t_ms: f64,
    depth: f64,
    limit: Option<f64>,
}

fn read_queue(path: &Path) -> anyhow::Result<Vec<QueueSample>> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("{}: cannot read", path.display()))?;
    r.deserialize()
        .enumerate()
        .map(|(i, s)| {
            s.with_context(|| format!("{}:{}: expected t_ms,depth,limit", path.display(), i + 2))
        })
        .collect()
}

/// Points kept per queue series: the deepest sample of each time bucket, so peaks
/// survive and a chart stays small enough to commit.
const QUEUE_POINTS: usize = 120;

/// Splits a queue file stem `<engine>-b<backlog>-<mode>[-r<rep>]` into the engine
/// and the rest (engine names may contain '-').
fn split_queue_stem(stem: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(k) = stem[from..].find("-b") {
        let at = from + k;
        if stem[at + 2..].starts_with(|c: char| c.is_ascii_digit()) {
            return Some((&stem[..at], &stem[at + 1..]));
        }
        from = at + 2;
    }
    None
}

/// The deepest sample per bucket of time (at most `QUEUE_POINTS`), drawn as steps:
/// the files hold changes only, and a depth stays until the next change.
fn downsample(samples: &[QueueSample]) -> Vec<(f64, f64)> {
    let points = deepest_per_bucket(samples);
    let mut steps = Vec::with_capacity(points.len() * 2);
    for (i, &(t, y)) in points.iter().enumerate() {
        if i > 0 {
            steps.push((t, points[i - 1].1));
        }
        steps.push((t, y));
    }
    steps
}

/// Per bucket of time (`QUEUE_POINTS` buckets): its deepest sample, and its last one
/// when that differs, so peaks survive and the depth held after a bucket is right.
fn deepest_per_bucket(samples: &[QueueSample]) -> Vec<(f64, f64)> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Vec::new();
    };
    let span = (last.t_ms - first.t_ms).max(f64::MIN_POSITIVE);
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(2 * QUEUE_POINTS + 2);
    // (bucket, t of its first sample, deepest, last sample)
    let mut cur: Option<(usize, f64, f64, (f64, f64))> = None;
    let flush = |out: &mut Vec<(f64, f64)>, c: (usize, f64, f64, (f64, f64))| {
        out.push((c.1, c.2));
        if c.3 .1 != c.2 {
            out.push(c.3);
        }
    };
    for s in samples {
        let b = (((s.t_ms - first.t_ms) / span) * QUEUE_POINTS as f64) as usize;
        cur = match cur {
            Some(c) if c.0 == b => Some((b, c.1, c.2.max(s.depth), (s.t_ms, s.depth))),
            Some(c) => {
                flush(&mut out, c);
                Some((b, s.t_ms, s.depth, (s.t_ms, s.depth)))
            }
            None => Some((b, s.t_ms, s.depth, (s.t_ms, s.depth))),
        };
    }
    if let Some(c) = cur {
        flush(&mut out, c);
    }
    out
}

/// Accept-queue depth over time: one chart per (backlog, mode), a line per engine
/// (and per run), the queue limit dashed.
fn queue_charts(runs: &[Run]) -> Vec<Chart> {
    queue_groups(runs)
        .into_iter()
        .map(|(key, members)| queue_chart(runs, &key, &members))
        .collect()
}

/// The queue files of all runs grouped by (backlog, mode) key ("b16-burst"), each group
/// its (engine, file stem) pairs, in first-seen order.
fn queue_groups(runs: &[Run]) -> Vec<(String, Vec<(String, String)>)> {
    // group key ("b16-burst") → [(engine, stem)] in first-seen order
    let mut groups: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for run in runs {
        let Ok(entries) = std::fs::read_dir(run.dir.join("queue")) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|n| n.strip_suffix(".csv").map(str::to_string))
            .collect();
        names.sort();
        for stem in names {
            let Some((engine, key)) = split_queue_stem(&stem) else {
                continue;
            };
            let entry = match groups.iter().position(|(k, _)| k == key) {
                Some(i) => &mut groups[i].1,
                None => {
                    groups.push((key.to_string(), Vec::new()));
                    &mut groups.last_mut().expect("just pushed").1
                }
            };
            if !entry.iter().any(|(_, s)| *s == stem) {
                entry.push((engine.to_string(), stem.clone()));
            }
        }
    }
    groups
}

/// One (backlog, mode) group's depth over time: a line per (engine, run), the limit dashed.
fn queue_chart(runs: &[Run], key: &str, members: &[(String, String)]) -> Chart {
    let mut series = Vec::new();
    let mut limit: Option<f64> = None;
    for (ei, (engine, stem)) in members.iter().enumerate() {
        for (ri, run) in runs.iter().enumerate() {
            let path = run.dir.join("queue").join(format!("{stem}.csv"));
            if !path.is_file() {
                continue;
            }
            let samples = match read_queue(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("acceptbench: warning: plot: skipping {e:#}");
                    continue;
                }
            };
            limit = limit.or_else(|| samples.iter().find_map(|s| s.limit));
            let label = if runs.len() > 1 {
                format!("{engine} · {}", run.label)
            } else {
                engine.clone()
            };
            // Solid lines, a colour per (engine, run): dashed polylines become
            // thousands of tiny SVG segments.
            series.push(Series {
                label,
                color: ei + ri * members.len(),
                dashed: false,
                points: downsample(&samples),
                intervals: Vec::new(),
            });
        }
    }
    if let Some(limit) = limit {
        let (t0, t1) = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold((f64::MAX, f64::MIN), |(a, b), t| (a.min(t), b.max(t)));
        if t0 <= t1 {
            series.push(Series {
                label: "limit (the queue holds limit+1)".into(),
                color: members.len() * runs.len(),
                dashed: true,
                points: vec![(t0, limit), (t1, limit)],
                intervals: Vec::new(),
            });
        }
    }
    Chart {
        title: format!("accept-queue depth over time — {key}"),
        stem: format!("queue-{key}"),
        x_desc: "time, ms".into(),
        y_desc: "connections in the accept queue".into(),
        x: Axis::Linear,
        y: Axis::Linear,
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kernel_timeline_of_a_run_is_drawn_and_a_bad_one_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let kernel = tmp.path().join("kernel");
        std::fs::create_dir_all(&kernel).unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(
            repo.join("docs/timeline/backlog2-burst12.csv"),
            kernel.join("std-b2-burst-timeline.csv"),
        )
        .unwrap();
        std::fs::write(kernel.join("bad-b2-burst-timeline.csv"), "not a timeline\n").unwrap();
        let files = timeline_charts(tmp.path());
        let want = tmp.path().join("plots/timeline-std-b2-burst.svg");
        assert_eq!(files, vec![want.clone()]);
        assert!(std::fs::metadata(&want).unwrap().len() > 1000);
    }
}
