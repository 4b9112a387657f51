//! Histogram files: HdrHistogram's percentile-distribution text (`.hgrm`, what the
//! HdrHistogram plotter loads) and the V2 interval log (`.hlog`, mergeable across processes).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

/// Values in .hgrm files are microseconds (histograms hold ns): 1000 ns per output unit.
pub const HGRM_SCALING: f64 = 1000.0;

/// Writes `h` (ns) as a percentile distribution in microseconds with ns resolution (3 decimals),
/// 5 ticks per half distance, in the exact layout of Java's `outputPercentileDistribution`.
pub fn write_hgrm(mut w: impl Write, h: &Histogram<u64>) -> io::Result<()> {
    writeln!(
        w,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / HGRM_SCALING;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    w,
                    "{:>12.3} {:>2.12} {:>10} {:>14.2}",
                    value,
                    q,
                    total,
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(w, "{:>12.3} {:>2.12} {:>10}", value, q, total)?;
            }
        }
    }
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (
            h.mean() / HGRM_SCALING,
            h.stdev() / HGRM_SCALING,
            h.max() as f64 / HGRM_SCALING,
        )
    };
    // Java's SubBuckets = 2^ceil(log2(2 * 10^sigfig)).
    let sub_buckets = (2.0 * 10f64.powi(h.sigfig() as i32)).log2().ceil().exp2() as u64;
    writeln!(
        w,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        mean, sd
    )?;
    writeln!(
        w,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        max,
        h.len()
    )?;
    writeln!(
        w,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    )?;
    Ok(())
}

/// Writes `h` to `path` as .hgrm.
pub fn write_hgrm_file(path: &Path, h: &Histogram<u64>) -> io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    write_hgrm(&mut w, h)?;
    w.flush()
}

/// Writes one interval per second (interval i covers [i, i+1) s after `start`) as a V2
/// interval log with StartTime/BaseTime = `start`; values in ns.
pub fn write_hlog(
    mut w: impl Write,
    intervals: &[Histogram<u64>],
    start: SystemTime,
) -> io::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment("loadgen connect latency, values in nanoseconds, 1 s intervals")
        .with_start_time(start)
        .with_base_time(start);
    let mut log = builder.begin_log_with(&mut w, &mut serializer)?;
    for (i, h) in intervals.iter().enumerate() {
        log.write_histogram(
            h,
            Duration::from_secs(i as u64),
            Duration::from_secs(1),
            None,
        )
        .map_err(|e| io::Error::other(format!("{e:?}")))?;
    }
    drop(log);
    w.flush()
}

/// Writes `intervals` to `path` as .hlog.
pub fn write_hlog_file(
    path: &Path,
    intervals: &[Histogram<u64>],
    start: SystemTime,
) -> io::Result<()> {
    write_hlog(BufWriter::new(File::create(path)?), intervals, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let mut h = crate::counters::new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let mut buf = Vec::new();
        write_hgrm(&mut buf, &h).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(
            text.contains("#[Mean    =      500.") && text.contains(", StdDeviation   = "),
            "{text}"
        );
        assert!(text.contains("Total count    =         1000]"));
        let last_row = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        assert!(last_row.contains("1.000000000000"), "{last_row}");
    }

    #[test]
    fn hlog_round_trips() {
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
        let mut a = crate::counters::new_histogram();
        a.record(12_345).unwrap();
        let b = a.clone();
        let mut buf = Vec::new();
        write_hlog(
            &mut buf,
            &[a, b],
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        let n = IntervalLogIterator::new(&buf)
            .filter(|e| matches!(e, Ok(LogEntry::Interval(_))))
            .count();
        assert_eq!(n, 2);
    }
}
