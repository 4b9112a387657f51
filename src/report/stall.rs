//! `stall.csv` (one row per stall run: what was measured beside what the model
//! predicted, and the verdict) and `stall/<run>.csv` (one run's timeline in 10 ms
//! bins: arrivals, SYNs, established, held, queue depth — measured and predicted).
//! Both are written as runs finish and read back by the run README and the charts.

use std::fs::File;
use std::io;
use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// One stall run, measured and predicted (`_pred`). Times in the names' units; `None`
/// where a figure cannot be had (a counter unreadable, a queue never empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StallRow {
    /// The engine's series label (`uring.q1`, …), as in summary.csv's file names.
    pub series: String,
    /// Backlog passed to listen(2).
    pub backlog: u32,
    /// The queue limit the kernel applied (the queue holds this + 1).
    pub backlog_effective: u32,
    /// The clients: `rate:N` (open loop) or `closed:C`.
    pub load: String,
    /// Arrival rate, conn/s: N for `rate:N`; for `closed:C` the rate measured before
    /// the stall (what the model runs the closed loop at).
    pub rate_per_s: f64,
    /// The stall asked for, ms.
    pub stall_ms: f64,
    /// The stall the acceptor took (first start → last end), ms.
    pub stall_actual_ms: f64,
    /// The model's μ, the acceptor's capacity after the resume, conn/s (from
    /// --accept-delay, an external server's drain rate or --stall-mu); empty: full
    /// speed, or no model (`mu_source` says which).
    pub accept_per_s: Option<f64>,
    /// Where the model's μ came from: `full speed`, `--accept-delay D`, `drain: …`
    /// (an external server's own drain rate in this sweep), `--stall-mu`, or `absent:
    /// why` (then every `_pred` column is empty: no model, not zero).
    pub mu_source: String,
    /// Round.
    pub repetition: u32,
    /// ok, failed, incomplete (as summary.csv).
    pub status: String,
    /// Connections meant to start in the run.
    pub arrivals: u64,
    /// Of those, meant to start while the acceptor was stopped.
    pub arrivals_in_stall: u64,
    /// TcpExt ListenOverflows over the run (SYNs dropped on a full queue; also final
    /// ACKs that met one).
    pub dropped: Option<u64>,
    /// SYNs dropped, predicted.
    pub dropped_pred: Option<u64>,
    /// ListenOverflows while the acceptor was stopped.
    pub dropped_in_stall: Option<u64>,
    /// Predicted.
    pub dropped_in_stall_pred: Option<u64>,
    /// Retry waves: connections admitted by each retransmit, `1s:491;2s:3` (the
    /// retransmit's time after the first SYN, from the kernel's schedule).
    pub waves: String,
    /// Predicted.
    pub waves_pred: String,
    /// `--trace kernel`: the retry waves as the kernel counted them — connections
    /// established on the client after exactly k SYN retransmits (`tcp_retransmit_skb`),
    /// named by the k-th retransmit's time in the schedule, as `waves`; empty without
    /// the trace (or its retransmit tracepoint).
    pub kernel_waves: Option<String>,
    /// Connections the acceptor held.
    pub held: u64,
    /// Predicted.
    pub held_pred: Option<u64>,
    /// Established on the client, never accepted: a final ACK met a full queue.
    pub client_only: u64,
    /// Predicted (retransmits fired together beyond the free slots).
    pub client_only_pred: Option<u64>,
    /// `--trace kernel`: client-only connections as the kernel counted them
    /// (established on the client, no server child): summary.csv's
    /// `kernel_client_only`; empty without the trace.
    pub kernel_client_only: Option<u64>,
    /// Gave up (kernel schedule or connect timeout).
    pub timed_out: u64,
    /// Predicted.
    pub timed_out_pred: Option<u64>,
    /// Reset during the handshake.
    pub reset: u64,
    /// Unresolved when loadgen ended.
    pub pending: u64,
    /// Connections armed operations took out of the queue during the stall, measured
    /// (SYNs admitted while stopped − the queue at the resume).
    pub armed_taken: Option<u64>,
    /// Predicted (the model takes up to `armed_assumed` of the stall's arrivals).
    pub armed_taken_pred: Option<u64>,
    /// What the model assumed this engine can take while stopped.
    pub armed_assumed: u32,
    /// The queue at the resume.
    pub queue_at_resume: u32,
    /// Predicted.
    pub queue_at_resume_pred: Option<u32>,
    /// From the resume until the queue first ran empty, ms.
    pub empty_after_resume_ms: Option<f64>,
    /// Predicted.
    pub empty_after_resume_ms_pred: Option<f64>,
    /// Back to normal within the window judged.
    pub recovered: bool,
    /// From the resume until normal (held for 1 s), ms; empty when not recovered.
    pub recover_ms: Option<f64>,
    /// Predicted.
    pub recovered_pred: Option<bool>,
    /// Predicted.
    pub recover_ms_pred: Option<f64>,
    /// The window recovery was judged in: resume → last arrival, s.
    pub judged_s: f64,
    /// Lag (intended start → held) p99 before the stall, µs: what normal was.
    pub prestall_lag_p99_us: f64,
    /// Connects meant to start before the stall that waited for a SYN retransmit (or
    /// failed): nonzero, the clients already overflowed the queue before the stall.
    pub prestall_retries: u64,
    /// Lag p50 of connections meant to start from the stall on, ms.
    pub lag_p50_ms: f64,
    /// Their p99.
    pub lag_p99_ms: f64,
    /// Predicted.
    pub lag_p99_ms_pred: Option<f64>,
    /// Their p99.9.
    pub lag_p999_ms: f64,
    /// Excess latency the stall caused: Σ lag beyond the pre-stall median,
    /// connection-seconds.
    pub excess_conn_s: f64,
    /// Predicted.
    pub excess_conn_s_pred: Option<f64>,
    /// `agrees`, or `differs: …` naming the figures more than 20% apart and which
    /// assumption of the model failed.
    pub verdict: String,
}

/// One 10 ms bin of a stall run's timeline, from the first arrival.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Bin start, ms after the first arrival.
    pub t_ms: f64,
    /// Connections meant to start in it.
    pub arrivals: u32,
    /// SYNs sent in it (first SYNs and retransmits).
    pub syns: u32,
    /// Connections established in it (client).
    pub established: u32,
    /// Connections the acceptor held in it.
    pub held: u32,
    /// Deepest accept queue in it.
    pub queue: u32,
    /// Predicted held (empty: no model).
    pub held_pred: Option<u32>,
    /// Predicted queue (empty: no model).
    pub queue_pred: Option<u32>,
}

impl StallRow {
    /// How bad the run was for its clients, for picking the worst run of a (load,
    /// stall): not recovered first, then the later recovery, then the larger excess.
    pub fn badness(&self) -> (bool, u64, u64) {
        (
            !self.recovered,
            self.recover_ms.unwrap_or(0.0) as u64,
            (self.excess_conn_s * 1e3) as u64,
        )
    }

    /// `rate1000-500ms`: the (load, stall) part of a file name.
    pub fn cell_label(&self) -> String {
        format!("{}-{}ms", self.load.replace(':', ""), self.stall_ms.round())
    }
}

/// `stall/worst-<load>-<stall>.csv`: the timeline of the worst run of a (load, stall).
pub fn worst_timeline_name(row: &StallRow) -> String {
    format!("worst-{}.csv", row.cell_label())
}

/// Appends rows to stall.csv, flushing after each.
pub struct StallWriter {
    w: csv::Writer<File>,
}

impl StallWriter {
    /// Creates (truncates) the file; the header goes with the first row.
    pub fn create(path: &Path) -> io::Result<StallWriter> {
        let f = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(StallWriter {
            w: csv::Writer::from_writer(f),
        })
    }

    /// Writes one row and flushes it.
    pub fn append(&mut self, row: &StallRow) -> io::Result<()> {
        self.w.serialize(row).map_err(io::Error::other)?;
        self.w.flush()
    }
}

/// Writes a run's timeline.
pub fn write_timeline(path: &Path, bins: &[Bin]) -> io::Result<()> {
    let with_path = |e: csv::Error| io::Error::other(format!("{}: {e}", path.display()));
    let mut w = csv::Writer::from_path(path).map_err(with_path)?;
    for b in bins {
        w.serialize(b).map_err(with_path)?;
    }
    w.flush()
}

/// Reads stall.csv; errors name the file and line.
pub fn read(path: &Path) -> io::Result<Vec<StallRow>> {
    read_rows(path)
}

/// Reads a timeline file.
pub fn read_timeline(path: &Path) -> io::Result<Vec<Bin>> {
    read_rows(path)
}

fn read_rows<T: DeserializeOwned>(path: &Path) -> io::Result<Vec<T>> {
    let f = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: cannot read: {e}", path.display())))?;
    let mut r = csv::Reader::from_reader(io::BufReader::new(f));
    r.deserialize::<T>()
        .map(|row| {
            row.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{line}: {e}", path.display()),
                )
            })
        })
        .collect()
}

/// The run README's stall section: per (load, stall) and engine the smallest backlog
/// with no SYN dropped and what smaller ones cost, then every run measured beside its
/// prediction. Empty without ok stall runs.
pub fn readme_section(rows: &[StallRow]) -> String {
    let ok: Vec<&StallRow> = rows.iter().filter(|r| r.status == "ok").collect();
    if ok.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "## Stall and recover

",
    );
    s += "The acceptor stopped once for the stall while the clients kept arriving (`stall.csv` has every figure measured and predicted, `stall/worst-*.csv` the worst run's timeline per load and stall, `plots/stall-*.svg` both as charts). *Recovered*: from the resume until every connection meant to start in each 10 ms bin was held within max(5 ms, 10 × the pre-stall p99 lag) and the queue fell to a quarter full within each bin, for 1 s on end. *Dropped*: TcpExt ListenOverflows (SYNs dropped on a full queue, and final ACKs that met one: the *client-only* connections, whose clients were told they are connected).

";
    s += &sizing_table(&ok).render();
    s += "
";
    s += &runs_table(&ok).render();
    s += "
";
    s
}

fn ms_text(ms: Option<f64>, judged_s: f64) -> String {
    match ms {
        Some(ms) if ms >= 1000.0 => format!("{:.1} s", ms / 1e3),
        Some(ms) => format!("{ms:.0} ms"),
        None => format!("not within {judged_s:.1} s"),
    }
}

/// (load, stall ms, engine series) → backlog → its ok rows.
pub type SizingCell<'a> = (
    (String, u64, String),
    std::collections::BTreeMap<u32, Vec<&'a StallRow>>,
    Option<u32>,
);

/// The rows grouped by (load, stall, engine) in first-seen order, each with the smallest
/// backlog at which no round dropped a SYN or final ACK (None: none of those measured).
pub fn sizing<'a>(rows: &[&'a StallRow]) -> Vec<SizingCell<'a>> {
    use std::collections::BTreeMap;
    let mut order: Vec<(String, u64, String)> = Vec::new();
    let mut cells: BTreeMap<(String, u64, String), BTreeMap<u32, Vec<&StallRow>>> = BTreeMap::new();
    for r in rows {
        let key = (r.load.clone(), r.stall_ms.round() as u64, r.series.clone());
        if !cells.contains_key(&key) {
            order.push(key.clone());
        }
        cells
            .entry(key)
            .or_default()
            .entry(r.backlog)
            .or_default()
            .push(r);
    }
    order
        .into_iter()
        .map(|key| {
            let by_backlog = cells.remove(&key).unwrap_or_default();
            let clean = by_backlog
                .iter()
                .find(|(_, rs)| rs.iter().all(|r| r.dropped == Some(0)))
                .map(|(b, _)| *b);
            (key, by_backlog, clean)
        })
        .collect()
}

/// Per (load, stall) and engine: the smallest backlog with no drop (in every round),
/// and at each smaller one the worst round's recovery and losses.
fn sizing_table(rows: &[&StallRow]) -> super::table::Table {
    use super::table::{Align::Left as L, Align::Right as R, Table};
    let mut t = Table::new(&[
        ("load", L),
        ("stall", R),
        ("arrivals in the stall", R),
        ("engine", L),
        ("no SYN dropped from backlog", R),
        ("its lag p99", R),
        (
            "smaller backlogs: recovery; lag p99; dropped / client-only / timed out",
            L,
        ),
    ]);
    for (key, by_backlog, clean) in sizing(rows) {
        let arrivals = by_backlog
            .values()
            .flatten()
            .map(|r| r.arrivals_in_stall)
            .max()
            .unwrap_or(0);
        let smaller: Vec<String> = by_backlog
            .iter()
            .filter(|(b, _)| clean.is_none_or(|c| **b < c))
            .map(|(b, rs)| {
                let worst = rs
                    .iter()
                    .max_by_key(|r| r.badness())
                    .expect("a backlog has rows");
                format!(
                    "{b}: {}; {}; {} / {} / {}",
                    ms_text(worst.recover_ms, worst.judged_s),
                    ms_text(Some(worst.lag_p99_ms), 0.0),
                    worst.dropped.map_or("?".into(), |d| d.to_string()),
                    worst.client_only,
                    worst.timed_out
                )
            })
            .collect();
        let largest = by_backlog.keys().last().copied().unwrap_or(0);
        let clean_lag = clean
            .and_then(|b| by_backlog[&b].iter().map(|r| r.lag_p99_ms).reduce(f64::max))
            .map_or("—".into(), |l| ms_text(Some(l), 0.0));
        t.row(vec![
            key.0.clone(),
            format!("{} ms", key.1),
            arrivals.to_string(),
            key.2.clone(),
            clean.map_or(format!("above {largest}"), |b| b.to_string()),
            clean_lag,
            if smaller.is_empty() {
                "—".into()
            } else {
                smaller.join("; ")
            },
        ]);
    }
    t
}

/// Every run: measured / predicted side by side, and the verdict.
fn runs_table(rows: &[&StallRow]) -> super::table::Table {
    use super::table::{Align::Left as L, Align::Right as R, Table};
    let mut t = Table::new(&[
        ("engine", L),
        ("backlog", R),
        ("load", L),
        ("stall ms", R),
        ("dropped m / p", R),
        ("client-only m / p", R),
        ("waves m | p", L),
        ("armed m / p (engine can)", R),
        ("recovery m | p", L),
        ("lag p99 ms m / p", R),
        ("verdict", L),
    ]);
    let opt = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
    for r in rows {
        t.row(vec![
            r.series.clone(),
            r.backlog.to_string(),
            r.load.clone(),
            format!("{:.0}", r.stall_actual_ms),
            format!("{} / {}", opt(r.dropped), opt(r.dropped_pred)),
            format!("{} / {}", r.client_only, opt(r.client_only_pred)),
            format!(
                "{} | {}",
                if r.waves.is_empty() { "—" } else { &r.waves },
                if r.waves_pred.is_empty() {
                    "—"
                } else {
                    &r.waves_pred
                }
            ),
            format!(
                "{} / {} ({})",
                opt(r.armed_taken),
                opt(r.armed_taken_pred),
                r.armed_assumed
            ),
            format!(
                "{} | {}",
                ms_text(r.recover_ms, r.judged_s),
                ms_text(r.recover_ms_pred, r.judged_s)
            ),
            format!(
                "{:.0} / {}",
                r.lag_p99_ms,
                r.lag_p99_ms_pred.map_or("—".into(), |p| format!("{p:.0}"))
            ),
            r.verdict.clone(),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_rows_and_timelines_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let row = StallRow {
            series: "multishot".into(),
            backlog: 8,
            backlog_effective: 8,
            load: "rate:1000".into(),
            rate_per_s: 1000.0,
            stall_ms: 500.0,
            dropped: Some(491),
            dropped_pred: Some(491),
            waves: "1s:491".into(),
            recovered: true,
            recover_ms: Some(10.0),
            empty_after_resume_ms: None,
            verdict: "differs: a, b; c".into(),
            ..Default::default()
        };
        let path = dir.path().join("stall.csv");
        let mut w = StallWriter::create(&path).unwrap();
        w.append(&row).unwrap();
        w.append(&StallRow::default()).unwrap();
        drop(w);
        assert_eq!(read(&path).unwrap(), [row, StallRow::default()]);
        let bins = vec![
            Bin {
                t_ms: 0.0,
                arrivals: 10,
                syns: 10,
                established: 10,
                held: 10,
                queue: 0,
                held_pred: Some(10),
                queue_pred: Some(0),
            },
            Bin {
                t_ms: 10.0,
                queue: 9,
                queue_pred: Some(9),
                ..Default::default()
            },
        ];
        let tl = dir.path().join("t.csv");
        write_timeline(&tl, &bins).unwrap();
        assert_eq!(read_timeline(&tl).unwrap(), bins);
        // The README's sizing: backlog 64 dropped nothing, 8 did.
        let mut r8 = StallRow {
            status: "ok".into(),
            ..read(&path).unwrap()[0].clone()
        };
        r8.recovered = false;
        r8.recover_ms = None;
        r8.judged_s = 5.0;
        let r64 = StallRow {
            backlog: 64,
            dropped: Some(0),
            ..r8.clone()
        };
        let md = readme_section(&[r64, r8]);
        assert!(
            md.contains(
                "| rate:1000 | 500 ms | 0 | multishot | 64 | 0 ms | 8: not within 5.0 s; 0 ms; 491 / 0 / 0 |"
            ),
            "{md}"
        );
        std::fs::write(&tl, "t_ms,arrivals\nx,1\n").unwrap();
        let e = read_timeline(&tl).unwrap_err().to_string();
        assert!(e.contains("t.csv:2"), "{e}");
    }
}
