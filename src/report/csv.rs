//! `summary.csv`: written one row at a time and flushed, so an interrupted sweep
//! keeps every finished row; read back by tests, `compare` and `plot`.

use std::fs::File;
use std::io;
use std::path::Path;

use super::row::SummaryRow;

/// Appends rows to summary.csv, flushing after each.
pub struct SummaryWriter {
    w: csv::Writer<File>,
}

impl SummaryWriter {
    /// Creates (truncates) the file and writes the header on the first row.
    pub fn create(path: &Path) -> io::Result<Self> {
        let f = File::create(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Self {
            w: csv::Writer::from_writer(f),
        })
    }

    /// Writes one row and flushes it to the file.
    pub fn append(&mut self, row: &SummaryRow) -> io::Result<()> {
        self.w.serialize(row).map_err(io::Error::other)?;
        self.w.flush()
    }
}

/// Reads every row of a summary.csv; errors name the file and the line. Columns the
/// file lacks (an older format) read as their defaults: use [`read_with_columns`] to
/// tell them apart from measured zeros.
pub fn read(path: &Path) -> io::Result<Vec<SummaryRow>> {
    read_with_columns(path).map(|(rows, _)| rows)
}

/// Reads a summary.csv and the names of the columns it has.
pub fn read_with_columns(path: &Path) -> io::Result<(Vec<SummaryRow>, Vec<String>)> {
    let f = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: cannot read: {e}", path.display())))?;
    read_from_with_columns(io::BufReader::new(f), &path.display().to_string())
}

/// Reads every row of summary.csv text from `r`; errors name `name` and the line.
pub fn read_from(r: impl io::Read, name: &str) -> io::Result<Vec<SummaryRow>> {
    read_from_with_columns(r, name).map(|(rows, _)| rows)
}

/// [`read_from`], also returning the names of the columns the text has.
pub fn read_from_with_columns(
    r: impl io::Read,
    name: &str,
) -> io::Result<(Vec<SummaryRow>, Vec<String>)> {
    let mut r = csv::Reader::from_reader(r);
    let columns: Vec<String> = r
        .headers()
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}:1: cannot read the header: {e}"),
            )
        })?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for result in r.deserialize::<SummaryRow>() {
        let row = result.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            io::Error::new(io::ErrorKind::InvalidData, format!("{name}:{line}: {e}"))
        })?;
        rows.push(row);
    }
    Ok((rows, columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::row::Status;

    #[test]
    fn rows_round_trip() {
        let dir = std::env::temp_dir().join(format!("ab-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("summary.csv");
        let a = SummaryRow {
            engine: "std".into(),
            backlog: 16,
            mode: "closed".into(),
            repetition: 1,
            status: Some(Status::Ok),
            accepts_per_s: 12345.5,
            syn_retry_modes: Some("1s:3".into()),
            ..Default::default()
        };
        let mut b = a.clone();
        b.engine = "uring".into();
        b.note = "has, a comma".into();
        b.set_ratios(&a);
        let mut w = SummaryWriter::create(&path).unwrap();
        w.append(&a).unwrap();
        w.append(&b).unwrap();
        drop(w);
        let back = read(&path).unwrap();
        assert_eq!(back, vec![a, b]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An ok row that timed no connection writes its latency columns empty, never 0,
    /// and they read back absent; cells.csv and the ratios leave them out too.
    #[test]
    fn an_unmeasured_latency_is_an_empty_cell_not_zero() {
        let dir = std::env::temp_dir().join(format!("ab-csv-absent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("summary.csv");
        let timed = SummaryRow {
            engine: "std".into(),
            backlog: 16,
            mode: "closed".into(),
            status: Some(Status::Ok),
            accepts_per_s: 100.0,
            peer_p50_ns: Some(20_000),
            peer_p99_ns: Some(40_000),
            ..Default::default()
        };
        let mut untimed = SummaryRow {
            engine: "uring".into(),
            peer_p50_ns: None,
            peer_p99_ns: None,
            ..timed.clone()
        };
        untimed.set_ratios(&timed);
        assert_eq!(untimed.ratio_peer_p99_vs_std, None);
        let mut w = SummaryWriter::create(&path).unwrap();
        w.append(&timed).unwrap();
        w.append(&untimed).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = head.iter().position(|c| *c == "peer_p50_ns").unwrap();
        let cells: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(cells[0][col], "20000");
        assert_eq!(cells[1][col], "");
        let back = read(&path).unwrap();
        assert_eq!(back[1].peer_p50_ns, None);
        let agg = super::super::cells::aggregate(&back);
        assert_eq!(agg[1].peer_p50_us, None, "{:?}", agg[1]);
        assert_eq!(agg[0].peer_p50_us, Some(20.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_malformed_file_names_the_line() {
        let dir = std::env::temp_dir().join(format!("ab-csv-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("summary.csv");
        std::fs::write(&path, "engine,backlog\nstd,notanumber\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("summary.csv:2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
