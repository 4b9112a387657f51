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
    /// The acceptor's capacity after the resume, conn/s (from --accept-delay); empty:
    /// full speed.
    pub accept_per_s: Option<f64>,
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
    /// Connections the acceptor held.
    pub held: u64,
    /// Predicted.
    pub held_pred: u64,
    /// Established on the client, never accepted: a final ACK met a full queue.
    pub client_only: u64,
    /// Predicted (retransmits fired together beyond the free slots).
    pub client_only_pred: u64,
    /// Gave up (kernel schedule or connect timeout).
    pub timed_out: u64,
    /// Predicted.
    pub timed_out_pred: u64,
    /// Reset during the handshake.
    pub reset: u64,
    /// Unresolved when loadgen ended.
    pub pending: u64,
    /// Connections armed operations took out of the queue during the stall, measured
    /// (SYNs admitted while stopped − the queue at the resume).
    pub armed_taken: Option<u64>,
    /// What the model assumed for this engine.
    pub armed_assumed: u32,
    /// The queue at the resume.
    pub queue_at_resume: u32,
    /// Predicted.
    pub queue_at_resume_pred: u32,
    /// From the resume until the queue first ran empty, ms.
    pub empty_after_resume_ms: Option<f64>,
    /// Predicted.
    pub empty_after_resume_ms_pred: Option<f64>,
    /// Back to normal within the window judged.
    pub recovered: bool,
    /// From the resume until normal (held for 1 s), ms; empty when not recovered.
    pub recover_ms: Option<f64>,
    /// Predicted.
    pub recovered_pred: bool,
    /// Predicted.
    pub recover_ms_pred: Option<f64>,
    /// The window recovery was judged in: resume → last arrival, s.
    pub judged_s: f64,
    /// Lag (intended start → held) p99 before the stall, µs: what normal was.
    pub prestall_lag_p99_us: f64,
    /// Lag p50 of connections meant to start from the stall on, ms.
    pub lag_p50_ms: f64,
    /// Their p99.
    pub lag_p99_ms: f64,
    /// Predicted.
    pub lag_p99_ms_pred: f64,
    /// Their p99.9.
    pub lag_p999_ms: f64,
    /// Excess latency the stall caused: Σ lag beyond the pre-stall median,
    /// connection-seconds.
    pub excess_conn_s: f64,
    /// Predicted.
    pub excess_conn_s_pred: f64,
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
    /// Predicted held.
    pub held_pred: u32,
    /// Predicted queue.
    pub queue_pred: u32,
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
                held_pred: 10,
                queue_pred: 0,
            },
            Bin {
                t_ms: 10.0,
                queue: 9,
                queue_pred: 9,
                ..Default::default()
            },
        ];
        let tl = dir.path().join("t.csv");
        write_timeline(&tl, &bins).unwrap();
        assert_eq!(read_timeline(&tl).unwrap(), bins);
        std::fs::write(&tl, "t_ms,arrivals\nx,1\n").unwrap();
        let e = read_timeline(&tl).unwrap_err().to_string();
        assert!(e.contains("t.csv:2"), "{e}");
    }
}
