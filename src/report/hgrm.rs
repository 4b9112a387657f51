//! HdrHistogram's percentile-distribution text format (`.hgrm`), the format the
//! HdrHistogram plotter loads: a header, one row per percentile step
//! (`Value Percentile TotalCount 1/(1-Percentile)`), and `#[…]` footer lines.
//! Our histograms record nanoseconds; files hold **microseconds** (value / 1000),
//! like wrk2's and HdrHistogram's default output.

use std::io::{self, BufRead, Write};
use std::path::Path;

use hdrhistogram::Histogram;

/// Scale from recorded units (ns) to file units (µs).
pub const NS_PER_UNIT: f64 = loadgen::output::HGRM_SCALING;

/// Writes `h` (ns) as a percentile distribution in µs: loadgen's writer, so client
/// and server files are byte-for-byte the same format.
pub fn write(w: impl Write, h: &Histogram<u64>) -> io::Result<()> {
    loadgen::output::write_hgrm(w, h)
}

/// Writes `h` to `path`.
pub fn write_file(path: &Path, h: &Histogram<u64>) -> io::Result<()> {
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    write(&mut f, h)?;
    f.flush()
}

/// One row of a percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// Value, µs.
    pub value_us: f64,
    /// Percentile as a fraction (0..=1).
    pub quantile: f64,
    /// Values at or below this one.
    pub total_count: u64,
}

/// A parsed `.hgrm` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// The rows in file order.
    pub rows: Vec<Row>,
    /// `Total count` from the footer.
    pub total_count: u64,
    /// `Max` from the footer, µs.
    pub max_us: f64,
}

impl Distribution {
    /// The smallest value whose percentile reaches `q`, µs (None when empty).
    pub fn value_at(&self, q: f64) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.quantile >= q)
            .map(|r| r.value_us)
    }
}

/// Parses a `.hgrm` text; errors name the line.
pub fn parse(r: impl BufRead, name: &str) -> io::Result<Distribution> {
    let bad = |line: usize, why: String| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{name}:{line}: {why}"))
    };
    let mut d = Distribution {
        rows: Vec::new(),
        total_count: 0,
        max_us: 0.0,
    };
    let mut saw_header = false;
    for (i, line) in r.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| bad(n, format!("{e} (an .hgrm file is text)")))?;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if t.starts_with("Value") {
            saw_header = true;
            continue;
        }
        if let Some(footer) = t.strip_prefix("#[") {
            for part in footer.trim_end_matches(']').split(',') {
                let Some((k, v)) = part.split_once('=') else {
                    continue;
                };
                match k.trim() {
                    "Max" => d.max_us = v.trim().parse().map_err(|_| bad(n, "bad Max".into()))?,
                    "Total count" => {
                        d.total_count = v
                            .trim()
                            .parse()
                            .map_err(|_| bad(n, "bad Total count".into()))?
                    }
                    _ => {}
                }
            }
            continue;
        }
        if !saw_header {
            return Err(bad(
                n,
                "expected the `Value Percentile …` header first".into(),
            ));
        }
        let cols: Vec<&str> = t.split_whitespace().collect();
        if cols.len() < 3 {
            return Err(bad(
                n,
                format!("expected at least 3 columns, found {}", cols.len()),
            ));
        }
        let num = |s: &str, what: &str| -> io::Result<f64> {
            s.parse::<f64>()
                .map_err(|_| bad(n, format!("{what} {s:?} is not a number")))
        };
        d.rows.push(Row {
            value_us: num(cols[0], "value")?,
            quantile: num(cols[1], "percentile")?,
            total_count: num(cols[2], "total count")? as u64,
        });
    }
    if !saw_header {
        return Err(bad(
            0,
            "no `Value Percentile …` header: not an .hgrm file".into(),
        ));
    }
    Ok(d)
}

/// Parses the `.hgrm` file at `path`.
pub fn parse_file(path: &Path) -> io::Result<Distribution> {
    let f = std::fs::File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    parse(io::BufReader::new(f), &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::hist::new_histogram;

    #[test]
    fn round_trips_through_text() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let mut buf = Vec::new();
        write(&mut buf, &h).unwrap();
        let d = parse(&buf[..], "t").unwrap();
        assert_eq!(d.total_count, 10_000);
        assert_eq!(d.rows.last().unwrap().total_count, 10_000);
        assert!(d.rows.windows(2).all(|w| w[0].value_us <= w[1].value_us
            && w[0].quantile <= w[1].quantile
            && w[0].total_count <= w[1].total_count));
        let p50 = d.value_at(0.5).unwrap();
        assert!((p50 - 5000.0).abs() < 10.0, "p50 {p50}");
        assert!((d.max_us - 10_000.0).abs() < 10.0);
    }

    #[test]
    fn empty_histogram_writes_a_valid_file() {
        let mut buf = Vec::new();
        write(&mut buf, &new_histogram()).unwrap();
        let d = parse(&buf[..], "t").unwrap();
        assert!(d.rows.is_empty());
        assert_eq!(d.total_count, 0);
    }

    #[test]
    fn errors_name_the_line() {
        let text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n1.0 x 3\n";
        let e = parse(text.as_bytes(), "f.hgrm").unwrap_err().to_string();
        assert!(e.contains("f.hgrm:3"), "{e}");
        assert!(parse("1 2 3\n".as_bytes(), "g").is_err());
    }
}
