//! Where finished runs go. The sweep loop measures and hands each finished run to
//! its sinks, the way ripgrep's searcher reports through a `Sink`; it never prints or
//! writes files itself. [`Terminal`] shows progress and one line per run (on stderr,
//! terminal or not); [`Directory`] writes the row, its histograms and queue samples,
//! and when the sweep ends finishes the run directory: cells.csv, meta.json, the
//! run's README and its charts.

use std::io::IsTerminal;

use std::collections::BTreeMap;

use anyhow::Context;
use common::hist::new_histogram;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::plan::Planned;
use super::rows::FinishedRun;
use crate::overflow;
use crate::report::csv::SummaryWriter;
use crate::report::hgrm;
use crate::report::meta::{self, Meta};
use crate::report::row::{Status, SummaryRow};
use crate::report::{cells, readme, RunDir};

/// Receives a sweep's runs as they finish.
pub trait Sink {
    /// A run is about to start.
    fn starting(&mut self, _run: &Planned) {}
    /// A run finished (its round's ratios are set). An error stops the sweep.
    fn finished(&mut self, run: &FinishedRun) -> anyhow::Result<()>;
    /// The sweep is over (`incomplete`: interrupted, or stopped by an error).
    fn done(&mut self, _incomplete: bool) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Progress on stderr, and one line per finished run.
pub struct Terminal {
    bar: ProgressBar,
    /// Lines go through the bar on a terminal, straight to stderr otherwise (a hidden
    /// bar prints nothing, which lost every row in CI logs and under `2>file`).
    tty: bool,
    quiet: bool,
}

impl Terminal {
    /// A progress display for `total` runs; `quiet` shows only the bar, on a terminal.
    pub fn new(total: usize, quiet: bool) -> Terminal {
        let tty = std::io::stderr().is_terminal();
        let bar = if tty {
            ProgressBar::new(total as u64)
        } else {
            ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden())
        };
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Terminal { bar, tty, quiet }
    }
}

impl Sink for Terminal {
    fn starting(&mut self, p: &Planned) {
        self.bar.set_message(format!(
            "{} backlog {} {} round {}",
            p.label(),
            p.backlog,
            p.mode.name(),
            p.round
        ));
    }

    fn finished(&mut self, run: &FinishedRun) -> anyhow::Result<()> {
        self.bar.inc(1);
        if !self.quiet {
            let line = match &run.stall {
                Some(st) => stall_line_of(&run.row, &st.row),
                None => line_of(&run.row),
            };
            if self.tty {
                self.bar.println(line);
            } else {
                eprintln!("{line}");
            }
        }
        Ok(())
    }

    fn done(&mut self, _incomplete: bool) -> anyhow::Result<()> {
        self.bar.finish_and_clear();
        Ok(())
    }
}

/// One JSON object per finished row on stdout (`sweep --json`).
pub struct JsonLines;

impl Sink for JsonLines {
    fn finished(&mut self, run: &FinishedRun) -> anyhow::Result<()> {
        use std::io::Write;
        let line = serde_json::to_string(&run.row)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .context("writing a row to stdout")
    }
}

/// Histograms of one cell, summed over its ok runs, by (engine, backlog, mode, metric).
type CellHistograms = BTreeMap<(String, u32, String, &'static str), Histogram<u64>>;

/// The results directory: summary.csv (a row appended and flushed per run, so an
/// interrupted sweep keeps every finished row), queue/ files per run, and at the end
/// hgrm/ files — one per (engine, backlog, mode, metric), the sum over the cell's ok
/// runs (per-run files would make a default sweep several megabytes).
pub struct Directory {
    dir: RunDir,
    csv: SummaryWriter,
    /// stall.csv, made with the first stall run.
    stall_csv: Option<crate::report::stall::StallWriter>,
    /// Stall rows, for the README.
    stall_rows: Vec<crate::report::stall::StallRow>,
    /// The worst ok run's timeline of each (load, stall), by its file name.
    worst: BTreeMap<
        String,
        (
            crate::report::stall::StallRow,
            Vec<crate::report::stall::Bin>,
        ),
    >,
    hists: CellHistograms,
    /// (backlog, mode) cells whose kernel timeline is written (one run each).
    timelines: std::collections::BTreeSet<(u32, String)>,
    meta: Meta,
    plots: bool,
    /// Every row written, for the run's README and cells.csv at the end.
    pub rows: Vec<SummaryRow>,
    /// The sweep's answer, made when the directory is finished.
    pub verdict: crate::report::verdict::Verdict,
}

impl Directory {
    /// Makes the run directory under `out` (named by `meta`'s kernel and host), writes
    /// its meta.json and starts summary.csv; `plots`: draw the charts at the end.
    pub fn create(out: &std::path::Path, meta: Meta, plots: bool) -> anyhow::Result<Directory> {
        let dir = RunDir::create(out, &meta.kernel_release, &meta.host)?;
        meta.write(&dir.meta_json())?;
        let csv = SummaryWriter::create(&dir.summary_csv())?;
        Ok(Directory {
            dir,
            csv,
            stall_csv: None,
            stall_rows: Vec::new(),
            verdict: Default::default(),
            worst: BTreeMap::new(),
            hists: BTreeMap::new(),
            timelines: Default::default(),
            meta,
            plots,
            rows: Vec::new(),
        })
    }

    /// The run directory.
    pub fn path(&self) -> &std::path::Path {
        &self.dir.path
    }

    /// Appends a stall run's row to stall.csv, and keeps its timeline if it is the worst
    /// ok run of its (load, stall) so far.
    fn write_stall(&mut self, st: &super::stall::StallOut, r: &SummaryRow) -> anyhow::Result<()> {
        use crate::report::stall;
        if self.stall_csv.is_none() {
            self.stall_csv = Some(stall::StallWriter::create(&self.dir.stall_csv())?);
        }
        if let Some(w) = self.stall_csv.as_mut() {
            w.append(&st.row)?;
        }
        self.stall_rows.push(st.row.clone());
        if r.is_ok() {
            let name = stall::worst_timeline_name(&st.row);
            let worse = self
                .worst
                .get(&name)
                .is_none_or(|(w, _)| st.row.badness() > w.badness());
            if worse {
                self.worst.insert(name, (st.row.clone(), st.bins.clone()));
            }
        }
        Ok(())
    }

    /// Writes the worst timeline of each (load, stall) into `stall/`.
    fn write_worst_timelines(&self) -> anyhow::Result<()> {
        for (name, (_, bins)) in &self.worst {
            let path = self.dir.stall_dir()?.join(name);
            crate::report::stall::write_timeline(&path, bins)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Writes the cells' histograms (`hgrm/<engine>-b<backlog>-<mode>-<metric>.hgrm`, µs).
    fn write_histograms(&self) -> anyhow::Result<()> {
        for ((engine, backlog, mode, metric), h) in &self.hists {
            let path = self.dir.hgrm(engine, *backlog, mode, 1, metric);
            hgrm::write_file(&path, h).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

impl Sink for Directory {
    fn finished(&mut self, run: &FinishedRun) -> anyhow::Result<()> {
        let r = &run.row;
        let series = series_of(r);
        let mode = crate::report::mode_label(r);
        // A stall run's latencies and queue are in stall.csv and its timeline: per-run
        // histograms and 1 ms queue files of many seconds each would make a stall
        // sweep many megabytes.
        let stall = r.mode == "stall";
        if r.is_ok() && !stall {
            for (metric, h) in &run.histograms {
                let key = (series.clone(), r.backlog, mode.clone(), *metric);
                let cell = self.hists.entry(key).or_insert_with(new_histogram);
                cell.add(h)
                    .map_err(|e| anyhow::anyhow!("adding a {metric} histogram: {e:?}"))?;
            }
        }
        if let Some((per_listener, t0)) = run.queue.as_ref().filter(|_| !stall) {
            let path = self
                .dir
                .queue_csv(&series, r.backlog, &mode, r.repetition)?;
            for (i, samples) in per_listener.iter().enumerate() {
                // Several listeners (reuseport shards): one file each, `…-l<i>.csv`.
                let path = if per_listener.len() > 1 {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    let stem = name.strip_suffix(".csv").unwrap_or(&name);
                    path.with_file_name(format!("{stem}-l{i}.csv"))
                } else {
                    path.clone()
                };
                overflow::sampler::write_csv(&path, samples, *t0)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        // One run per cell (the first round's), its first 1 000 connections.
        if !run.kernel_split.conns.is_empty() && !stall && r.repetition == 1 {
            let path = self
                .dir
                .kernel_split_csv(&series, r.backlog, &mode, r.repetition)?;
            super::ksplit::write_csv(&path, &run.kernel_split)?;
        }
        if let Some(t) = &run.kernel_timeline {
            // One run per (backlog, mode): the first traced one of the first round.
            if self.timelines.insert((r.backlog, mode.clone())) {
                let path = self.dir.kernel_timeline_csv(&series, r.backlog, &mode)?;
                std::fs::write(&path, t).with_context(|| format!("writing {}", path.display()))?;
            }
        }
        if let Some(st) = &run.stall {
            self.write_stall(st, r)?;
        }
        if !run.hosts.is_empty() {
            let path = self
                .dir
                .hosts_csv(&series, r.backlog, &mode, r.repetition)?;
            crate::hostjoin::output::write_hosts_csv(&path, &run.hosts)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(c) = &run.client_connect {
            let how = format!("{} by {c}", r.mode);
            if !self.meta.client_connect.contains(&how) {
                self.meta.client_connect.push(how);
            }
        }
        self.csv.append(r)?;
        self.rows.push(r.clone());
        Ok(())
    }

    fn done(&mut self, incomplete: bool) -> anyhow::Result<()> {
        self.finish(incomplete)
    }
}

impl Directory {
    /// Measures the machine's costs again now that the runs are over (see
    /// [`crate::kernel::costs`]); notes, and returns, what moved.
    pub fn machine_at_end(&mut self, ids: Option<crate::kernel::perf::Ids>) -> Vec<String> {
        let Some(p) = self.meta.machine.as_mut() else {
            return Vec::new();
        };
        p.at_end(ids);
        let warnings = p.warnings();
        self.meta.notes.extend(warnings.iter().cloned());
        warnings
    }

    /// Finishes the directory: histograms, cells.csv, meta.json (finished, incomplete or
    /// not), the run's README, then the charts. The histograms are written first but
    /// their failure reported last: it must not cost the rows and README. A chart that
    /// cannot be drawn is a warning, never lost data.
    fn finish(&mut self, incomplete: bool) -> anyhow::Result<()> {
        let histograms = self.write_histograms();
        let timelines = self.write_worst_timelines();
        let cells = cells::aggregate(&self.rows);
        cells::write(&self.dir.cells_csv(), &cells)?;
        self.verdict = crate::report::verdict::of(&cells, &self.rows, &self.stall_rows);
        self.meta.incomplete = incomplete;
        self.meta.finished_utc = meta::now_utc();
        self.meta.write(&self.dir.meta_json())?;
        crate::report::write_atomic(
            &self.dir.readme(),
            readme::render(
                &self.meta,
                &self.rows,
                &cells,
                &self.stall_rows,
                &self.verdict,
            )
            .as_bytes(),
        )?;
        histograms?;
        timelines?;
        if self.plots && !self.rows.is_empty() {
            if let Err(e) = crate::plot::plot_run_dir(&self.dir.path) {
                eprintln!("acceptbench: warning: plots not drawn: {e:#}");
            }
        }
        Ok(())
    }
}

/// The name a run's files go under ([`crate::report::series`]).
pub fn series_of(r: &SummaryRow) -> String {
    crate::report::series(
        &r.engine,
        r.inflight,
        &r.accept_flags,
        &r.peer_op,
        r.acceptors,
        &r.sharing,
    )
}

/// The terminal line of a finished stall run: what the clients saw, beside the model.
pub fn stall_line_of(r: &SummaryRow, s: &crate::report::stall::StallRow) -> String {
    let rec = |ms: Option<f64>| ms.map_or("not".to_string(), |m| format!("{m:.0} ms"));
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    format!(
        "{:<12} b{:<5} stall {} {:.0} ms r{}  dropped {} (model {})  client-only {} ({})  waves {}  recovered {} ({})  lag p99 {:.0} ms  {}",
        series_of(r),
        r.backlog,
        s.load,
        s.stall_ms,
        r.repetition,
        opt(s.dropped),
        opt(s.dropped_pred),
        s.client_only,
        s.client_only_pred
            .map_or("no model".to_string(), |p| format!("model {p}")),
        if s.waves.is_empty() { "—" } else { &s.waves },
        rec(s.recover_ms),
        rec(s.recover_ms_pred),
        s.lag_p99_ms,
        s.verdict
    )
}

/// The terminal line of a finished run.
pub fn line_of(r: &SummaryRow) -> String {
    let head = format!(
        "{:<12} b{:<5} {:<8} r{}",
        series_of(r),
        r.backlog,
        r.mode,
        r.repetition
    );
    match r.status {
        Some(Status::Skipped) => format!("{head} skipped: {}", r.note),
        Some(Status::Failed) => format!("{head} FAILED: {}", r.note),
        _ => format!(
            "{head} {:>9.0} accepts/s{} (peers held {:.0}/s) {:>6} µs/accept  peer p99 {:>8} µs  {}/{}/{} est/acc/matched{}",
            r.accepts_per_s,
            r.ratio_accepts_vs_std
                .map_or(String::new(), |x| format!(" ({x:.2}× std)")),
            r.peers_held_per_s,
            r.acceptor_cpu_us_per_accept
                .map_or("—".into(), |us| format!("{us:.2}")),
            r.peer_p99_ns
                .map_or("—".into(), |ns| format!("{:.1}", ns as f64 / 1e3)),
            r.established,
            r.accepted,
            r.matched,
            if r.note.is_empty() {
                String::new()
            } else {
                format!("  [{}]", r.note)
            }
        ),
    }
}
