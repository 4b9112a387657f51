//! `cells.csv`: one row per (engine, backlog, mode, acceptors, sharing) of a sweep — the number of runs,
//! how many succeeded, and for each headline figure the median over the ok runs with
//! a distribution-free confidence interval ([`crate::stats::MedianCi`]); ratios to
//! std are medians of the per-round ratios with their own interval. Failed,
//! interrupted and skipped runs are counted, never averaged in.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::row::{Status, SummaryRow};
use crate::stats::{MedianCi, LEVEL};

/// One cell of cells.csv.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CellRow {
    /// Engine name.
    pub engine: String,
    /// Single-shot accepts in flight (engine uring; see summary.csv).
    pub inflight: Option<u32>,
    /// How engine uring armed its accepts (see summary.csv).
    pub accept_flags: String,
    /// How engine uring-linked read the peer in the ring (see summary.csv).
    pub peer_op: String,
    /// Backlog passed to listen(2).
    pub backlog: u32,
    /// Mode.
    pub mode: String,
    /// Acceptor threads (0 in files written before the column existed: read it as 1).
    pub acceptors: u32,
    /// shared or reuseport (see summary.csv); empty in old files.
    pub sharing: String,
    /// Runs made (skipped runs not included).
    pub n: u32,
    /// Runs with status ok: the ones every figure below is computed from.
    pub n_ok: u32,
    /// Runs skipped (engine unsupported here).
    pub n_skipped: u32,
    /// Coverage of the value intervals below (n_ok ≤ 5 cannot reach 0.95: then it is
    /// the [min, max] interval's coverage, and the cell is flagged "n too small").
    pub ci_level: Option<f64>,
    /// Median accepts/s.
    pub accepts_per_s: Option<f64>,
    /// Lower end of its interval.
    pub accepts_per_s_lo: Option<f64>,
    /// Upper end of its interval.
    pub accepts_per_s_hi: Option<f64>,
    /// Median peers held/s (window ending at the last peer held; see summary.csv).
    pub peers_held_per_s: Option<f64>,
    /// Lower end of its interval.
    pub peers_held_per_s_lo: Option<f64>,
    /// Upper end of its interval.
    pub peers_held_per_s_hi: Option<f64>,
    /// Median acceptor CPU µs per accept.
    pub cpu_us_per_accept: Option<f64>,
    /// Lower end of its interval.
    pub cpu_us_per_accept_lo: Option<f64>,
    /// Upper end of its interval.
    pub cpu_us_per_accept_hi: Option<f64>,
    /// Median end-to-end peer-extraction p50, µs.
    pub peer_p50_us: Option<f64>,
    /// Lower end of its interval.
    pub peer_p50_us_lo: Option<f64>,
    /// Upper end of its interval.
    pub peer_p50_us_hi: Option<f64>,
    /// Median end-to-end peer-extraction p99, µs.
    pub peer_p99_us: Option<f64>,
    /// Lower end of its interval.
    pub peer_p99_us_lo: Option<f64>,
    /// Upper end of its interval.
    pub peer_p99_us_hi: Option<f64>,
    /// Median system calls per accept (summary.csv `syscalls_per_accept`; empty where
    /// perf did not count).
    pub syscalls_per_accept: Option<f64>,
    /// Median io_uring_enter calls per accept.
    pub uring_enters_per_accept: Option<f64>,
    /// Median context switches (voluntary + involuntary) per accept.
    pub cs_per_accept: Option<f64>,
    /// Median share of the acceptor's CPU spent in the kernel (sys / (user + sys)).
    pub kernel_cpu_share: Option<f64>,
    /// Connects (all ok runs) that waited for a SYN retransmit.
    pub syn_retry_stalls: u64,
    /// Rounds with an accepts/s ratio to std (both rows ok and unstalled).
    pub ratio_n: u32,
    /// Coverage of the ratio intervals.
    pub ratio_ci_level: Option<f64>,
    /// Median of the per-round accepts/s ratios to std.
    pub ratio_accepts_vs_std: Option<f64>,
    /// Lower end of its interval.
    pub ratio_accepts_vs_std_lo: Option<f64>,
    /// Upper end of its interval.
    pub ratio_accepts_vs_std_hi: Option<f64>,
    /// Median of the per-round CPU-per-accept ratios to std.
    pub ratio_cpu_vs_std: Option<f64>,
    /// Lower end of its interval.
    pub ratio_cpu_vs_std_lo: Option<f64>,
    /// Upper end of its interval.
    pub ratio_cpu_vs_std_hi: Option<f64>,
    /// Is accepts/s really different from std's? `higher`/`lower` (the ratio's interval
    /// excludes 1 at ≥ 95%), `~` (it includes 1), `n too small` (fewer than 6 rounds),
    /// empty for std itself or without ratios.
    pub accepts_vs_std: String,
    /// The same for CPU per accept.
    pub cpu_vs_std: String,
    /// `--trace off,kernel`, a traced cell (`<engine>+kt`): rounds with a tracing-cost
    /// ratio of CPU per accept (summary.csv `trace_ratio_cpu`).
    pub trace_ratio_n: u32,
    /// Coverage of the tracing-cost intervals.
    pub trace_ratio_ci_level: Option<f64>,
    /// Median of the per-round ratios of CPU per accept, traced / untraced.
    pub trace_ratio_cpu: Option<f64>,
    /// Lower end of its interval.
    pub trace_ratio_cpu_lo: Option<f64>,
    /// Upper end of its interval.
    pub trace_ratio_cpu_hi: Option<f64>,
    /// Median of the per-round ratios of accepts/s, traced / untraced.
    pub trace_ratio_accepts: Option<f64>,
    /// Lower end of its interval.
    pub trace_ratio_accepts_lo: Option<f64>,
    /// Upper end of its interval.
    pub trace_ratio_accepts_hi: Option<f64>,
}

/// A cell's identity: (engine, backlog, mode, acceptors, sharing, inflight, accept
/// flags, peer op), the peer op as its label suffix (getsockopt and an empty column,
/// as older files have, are one cell).
pub type CellKey = (
    String,
    u32,
    String,
    u32,
    String,
    Option<u32>,
    String,
    String,
);

impl CellRow {
    /// This cell's identity, as [`aggregate`] groups summary rows into cells.
    pub fn key(&self) -> CellKey {
        (
            self.engine.clone(),
            self.backlog,
            self.mode.clone(),
            self.acceptors,
            self.sharing.clone(),
            self.inflight,
            self.accept_flags.clone(),
            peer_op_key(&self.peer_op),
        )
    }
}

/// Aggregates summary rows into cells, in the order cells first appear.
pub fn aggregate(rows: &[SummaryRow]) -> Vec<CellRow> {
    let mut order: Vec<CellKey> = Vec::new();
    let mut groups: BTreeMap<CellKey, Vec<&SummaryRow>> = BTreeMap::new();
    // Stall runs of one (engine, backlog) differ in their stall and load, and what they
    // measure is in stall.csv: throughput medians over them would mean nothing.
    for r in rows.iter().filter(|r| r.mode != "stall") {
        let key = (
            r.engine.clone(),
            r.backlog,
            r.mode.clone(),
            r.acceptors,
            r.sharing.clone(),
            r.inflight,
            r.accept_flags.clone(),
            peer_op_key(&r.peer_op),
        );
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(r);
    }
    order
        .into_iter()
        .map(|key| cell(&key, &groups[&key]))
        .collect()
}

/// A peer op's place in a cell's key: the op for getsockname, empty for getsockopt or
/// none (rows from before the column, and other engines).
fn peer_op_key(op: &str) -> String {
    if crate::engine::PeerOp::label_of(op).is_empty() {
        String::new()
    } else {
        op.to_string()
    }
}

fn cell(key: &CellKey, rows: &[&SummaryRow]) -> CellRow {
    let ok: Vec<&SummaryRow> = rows.iter().copied().filter(|r| r.is_ok()).collect();
    let skipped = rows
        .iter()
        .filter(|r| r.status == Some(Status::Skipped))
        .count();
    let ci = |f: &dyn Fn(&SummaryRow) -> f64| {
        let v: Vec<f64> = ok.iter().map(|r| f(r)).filter(|x| *x > 0.0).collect();
        MedianCi::of(&v)
    };
    let accepts = ci(&|r| r.accepts_per_s);
    let held = ci(&|r| r.peers_held_per_s);
    // Unread CPU (an attached server without its PID) is left out, as failed runs are.
    let cpu = ci(&|r| r.acceptor_cpu_us_per_accept.unwrap_or(0.0));
    // Absent latencies (no timed connection) are left out, as failed runs are.
    let p50 = ci(&|r| r.peer_p50_ns.map_or(0.0, |ns| ns as f64 / 1e3));
    let p99 = ci(&|r| r.peer_p99_ns.map_or(0.0, |ns| ns as f64 / 1e3));
    let ratios = |f: &dyn Fn(&SummaryRow) -> Option<f64>| {
        let v: Vec<f64> = ok.iter().filter_map(|r| f(r)).collect();
        MedianCi::of(&v)
    };
    let ra = ratios(&|r| r.ratio_accepts_vs_std);
    let rc = ratios(&|r| r.ratio_cpu_vs_std);
    let is_std = key.0 == "std";
    let parts = |c: Option<MedianCi>| match c {
        Some(c) => (Some(c.median), Some(c.lo), Some(c.hi)),
        None => (None, None, None),
    };
    let (a, a_lo, a_hi) = parts(accepts);
    let (h, h_lo, h_hi) = parts(held);
    let (c, c_lo, c_hi) = parts(cpu);
    let (p5, p5_lo, p5_hi) = parts(p50);
    let (p9, p9_lo, p9_hi) = parts(p99);
    let (ra_m, ra_lo, ra_hi) = parts(ra);
    let (rc_m, rc_lo, rc_hi) = parts(rc);
    let cell = CellRow {
        engine: key.0.clone(),
        inflight: key.5,
        accept_flags: key.6.clone(),
        peer_op: rows.first().map_or_else(String::new, |r| r.peer_op.clone()),
        backlog: key.1,
        mode: key.2.clone(),
        acceptors: key.3,
        sharing: key.4.clone(),
        n: (rows.len() - skipped) as u32,
        n_ok: ok.len() as u32,
        n_skipped: skipped as u32,
        ci_level: accepts.or(cpu).map(|c| c.level),
        accepts_per_s: a,
        accepts_per_s_lo: a_lo,
        accepts_per_s_hi: a_hi,
        peers_held_per_s: h,
        peers_held_per_s_lo: h_lo,
        peers_held_per_s_hi: h_hi,
        cpu_us_per_accept: c,
        cpu_us_per_accept_lo: c_lo,
        cpu_us_per_accept_hi: c_hi,
        peer_p50_us: p5,
        peer_p50_us_lo: p5_lo,
        peer_p50_us_hi: p5_hi,
        peer_p99_us: p9,
        peer_p99_us_lo: p9_lo,
        peer_p99_us_hi: p9_hi,
        syn_retry_stalls: ok.iter().map(|r| r.syn_retry_stalls).sum(),
        ratio_n: ra.map_or(0, |c| c.n as u32),
        ratio_ci_level: ra.or(rc).map(|c| c.level),
        ratio_accepts_vs_std: ra_m,
        ratio_accepts_vs_std_lo: ra_lo,
        ratio_accepts_vs_std_hi: ra_hi,
        ratio_cpu_vs_std: rc_m,
        ratio_cpu_vs_std_lo: rc_lo,
        ratio_cpu_vs_std_hi: rc_hi,
        accepts_vs_std: if is_std { String::new() } else { verdict(ra) },
        cpu_vs_std: if is_std { String::new() } else { verdict(rc) },
        ..Default::default()
    };
    with_trace_cost(with_kernel_use(cell, &ok), &ok)
}

/// A traced cell's tracing-cost ratios, medians of the per-round ratios to the same
/// engine untraced, with their intervals.
fn with_trace_cost(cell: CellRow, ok: &[&SummaryRow]) -> CellRow {
    let of = |f: fn(&SummaryRow) -> Option<f64>| {
        let v: Vec<f64> = ok.iter().filter_map(|r| f(r)).collect();
        MedianCi::of(&v)
    };
    let cpu = of(|r| r.trace_ratio_cpu);
    let accepts = of(|r| r.trace_ratio_accepts);
    CellRow {
        trace_ratio_n: cpu.map_or(0, |c| c.n as u32),
        trace_ratio_ci_level: cpu.or(accepts).map(|c| c.level),
        trace_ratio_cpu: cpu.map(|c| c.median),
        trace_ratio_cpu_lo: cpu.map(|c| c.lo),
        trace_ratio_cpu_hi: cpu.map(|c| c.hi),
        trace_ratio_accepts: accepts.map(|c| c.median),
        trace_ratio_accepts_lo: accepts.map(|c| c.lo),
        trace_ratio_accepts_hi: accepts.map(|c| c.hi),
        ..cell
    }
}

/// The medians of what the engine spent of the kernel per accept.
fn with_kernel_use(cell: CellRow, ok: &[&SummaryRow]) -> CellRow {
    CellRow {
        syscalls_per_accept: median(ok, |r| r.syscalls_per_accept),
        uring_enters_per_accept: median(ok, |r| r.uring_enters_per_accept),
        cs_per_accept: median(ok, |r| {
            r.vol_cs_per_accept
                .zip(r.invol_cs_per_accept)
                .map(|(v, i)| v + i)
        }),
        kernel_cpu_share: median(ok, |r| {
            let (u, s) = (r.acceptor_user_s?, r.acceptor_sys_s?);
            (u + s > 0.0).then(|| s / (u + s))
        }),
        ..cell
    }
}

/// The median of a figure over the rows that have it.
fn median(rows: &[&SummaryRow], f: impl Fn(&SummaryRow) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rows.iter().filter_map(|r| f(r)).collect();
    MedianCi::of(&v).map(|c| c.median)
}

/// `higher`, `lower`, `~` or `n too small` for a ratio's interval.
pub fn verdict(ratio: Option<MedianCi>) -> String {
    match ratio {
        None => String::new(),
        Some(c) if c.level < LEVEL - 1e-12 => "n too small".into(),
        Some(c) if c.lo > 1.0 => "higher".into(),
        Some(c) if c.hi < 1.0 => "lower".into(),
        Some(_) => "~".into(),
    }
}

/// Writes cells.csv (atomically).
pub fn write(path: &Path, cells: &[CellRow]) -> io::Result<()> {
    let err = |e: csv::Error| io::Error::other(format!("{}: {e}", path.display()));
    let mut w = csv::Writer::from_writer(Vec::new());
    for c in cells {
        w.serialize(c).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| io::Error::other(e.to_string()))?;
    super::write_atomic(path, &bytes)
}

/// Reads a cells.csv; errors name the file and the line.
pub fn read(path: &Path) -> io::Result<Vec<CellRow>> {
    let f = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: cannot read: {e}", path.display())))?;
    read_from(io::BufReader::new(f), &path.display().to_string())
}

/// Reads cells.csv text from `r`; errors name `name` and the line.
pub fn read_from(r: impl io::Read, name: &str) -> io::Result<Vec<CellRow>> {
    csv::Reader::from_reader(r)
        .deserialize::<CellRow>()
        .map(|row| {
            row.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                io::Error::new(io::ErrorKind::InvalidData, format!("{name}:{line}: {e}"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(engine: &str, rep: u32, status: Status, accepts: f64, ratio: Option<f64>) -> SummaryRow {
        SummaryRow {
            engine: engine.into(),
            backlog: 128,
            mode: "drain".into(),
            repetition: rep,
            status: Some(status),
            accepts_per_s: accepts,
            acceptor_cpu_us_per_accept: Some(5.0),
            ratio_accepts_vs_std: ratio,
            ratio_cpu_vs_std: ratio.map(|_| 1.0),
            ..Default::default()
        }
    }

    #[test]
    fn failed_runs_are_counted_not_averaged() {
        let mut rows = Vec::new();
        for rep in 1..=6 {
            rows.push(row("std", rep, Status::Ok, 100.0, Some(1.0)));
            let status = if rep == 3 { Status::Failed } else { Status::Ok };
            let accepts = if rep == 3 { 0.0 } else { 150.0 + rep as f64 };
            rows.push(row(
                "uring",
                rep,
                status,
                accepts,
                (rep != 3).then_some(1.5),
            ));
        }
        let cells = aggregate(&rows);
        assert_eq!(cells.len(), 2);
        let u = &cells[1];
        assert_eq!((u.n, u.n_ok), (6, 5));
        assert!(u.accepts_per_s_lo.unwrap() > 150.0, "{u:?}");
        assert_eq!(u.ratio_n, 5);
        assert_eq!(u.accepts_vs_std, "n too small");
        assert_eq!(cells[0].accepts_vs_std, "");
    }

    #[test]
    fn verdicts_follow_the_interval() {
        let c = |v: &[f64]| MedianCi::of(v);
        assert_eq!(verdict(c(&[1.1, 1.2, 1.3, 1.2, 1.15, 1.25])), "higher");
        assert_eq!(verdict(c(&[0.8, 0.9, 0.85, 0.7, 0.95, 0.9])), "lower");
        assert_eq!(verdict(c(&[0.9, 1.1, 1.0, 1.05, 0.95, 1.2])), "~");
        assert_eq!(verdict(c(&[1.1, 1.2, 1.3])), "n too small");
        assert_eq!(verdict(None), "");
    }

    #[test]
    fn cells_round_trip() {
        let dir = std::env::temp_dir().join(format!("ab-cells-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cells.csv");
        let rows: Vec<SummaryRow> = (1..=6)
            .map(|i| row("std", i, Status::Ok, 100.0 + i as f64, Some(1.0)))
            .collect();
        let cells = aggregate(&rows);
        write(&path, &cells).unwrap();
        assert_eq!(read(&path).unwrap(), cells);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tracing_cost_is_the_median_of_per_round_ratios_to_the_untraced_twin() {
        let mut rows = Vec::new();
        for rep in 1..=6 {
            let plain = row("std", rep, Status::Ok, 100_000.0, None);
            let mut traced = row("std+kt", rep, Status::Ok, 97_000.0 + rep as f64, None);
            traced.acceptor_cpu_us_per_accept = Some(5.0 * (1.02 + rep as f64 * 0.001));
            traced.set_trace_ratios(&plain);
            rows.push(plain);
            rows.push(traced);
        }
        let cells = aggregate(&rows);
        let (plain, traced) = (&cells[0], &cells[1]);
        assert_eq!((plain.trace_ratio_n, plain.trace_ratio_cpu), (0, None));
        assert_eq!(traced.trace_ratio_n, 6);
        let cpu = traced.trace_ratio_cpu.unwrap();
        assert!((1.02..1.03).contains(&cpu), "{cpu}");
        assert!(traced.trace_ratio_cpu_lo.unwrap() > 1.0);
        assert!(traced.trace_ratio_accepts_hi.unwrap() < 1.0);
        let v = super::super::verdict::of(&cells, &rows, &[]);
        let line = v
            .answers
            .iter()
            .find(|a| a.starts_with("tracing cost"))
            .expect("a tracing-cost line");
        assert!(
            line.contains("std+kt")
                && line.contains("drain backlog 128")
                && line.contains("CPU/accept ×1.02"),
            "{line}"
        );
        assert!(line.contains("higher") && line.contains("lower"), "{line}");
        // A failed run has no ratio.
        let mut failed = row("std+kt", 7, Status::Failed, 0.0, None);
        failed.set_trace_ratios(&rows[0]);
        assert_eq!(
            (failed.trace_ratio_cpu, failed.trace_ratio_accepts),
            (None, None)
        );
    }
}
