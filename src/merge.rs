//! `acceptbench merge`: combines HdrHistogram V2 interval logs (`.hlog`, as
//! loadgen writes them: nanoseconds, one interval per second) from several
//! loadgen processes or hosts into one histogram. Writes the percentile
//! distribution (`.hgrm`, µs) and a merged interval log beside it whose
//! intervals add up every input's histograms for the same wall-clock second.
//! It reads and writes files only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use crate::config::MergeConfig;

/// Timestamps above this are absolute (seconds since the epoch), not offsets.
const ABSOLUTE_AFTER_S: f64 = 1e9;

/// Latest interval start accepted: 9999-12-31T23:59:59Z. Anything later is a corrupt
/// line (and would overflow `SystemTime` when the merged log is written).
const MAX_TIMESTAMP_S: f64 = 253_402_300_799.0;

/// Everything merged from the inputs.
#[derive(Debug)]
pub struct Merged {
    /// All values of all intervals of all inputs (ns).
    pub total: Histogram<u64>,
    /// Per wall-clock second (seconds since the epoch, or since the log start when a
    /// log has no StartTime/BaseTime): the sum over inputs.
    pub per_second: BTreeMap<u64, Histogram<u64>>,
    /// Interval histograms read.
    pub intervals: usize,
}

impl Merged {
    /// Nothing merged yet.
    pub fn new() -> anyhow::Result<Merged> {
        Ok(Merged {
            total: Histogram::new(3).context("cannot create a histogram")?,
            per_second: BTreeMap::new(),
            intervals: 0,
        })
    }
}

/// Reads and merges the interval logs; errors name the file and line.
pub fn merge_files(inputs: &[PathBuf]) -> anyhow::Result<Merged> {
    let mut m = Merged::new()?;
    for path in inputs {
        let bytes = std::fs::read(path)
            .with_context(|| format!("{}: cannot read the interval log", path.display()))?;
        merge_log(&mut m, &bytes, path)?;
    }
    Ok(m)
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Adds the intervals of one log, the contents of `path`, to `m`; errors name the
/// file and line.
pub fn merge_log(m: &mut Merged, bytes: &[u8], path: &Path) -> anyhow::Result<()> {
    let mut base_s: Option<f64> = None;
    let mut start_s: Option<f64> = None;
    let mut deserializer = Deserializer::new();
    let mut found = 0usize;
    for entry in IntervalLogIterator::new(bytes) {
        let entry = entry.map_err(|e| {
            let hdrhistogram::serialization::interval_log::LogIteratorError::ParseError {
                offset,
            } = e;
            anyhow::anyhow!(
                "{}:{}: not an HdrHistogram V2 interval log line (write .hlog files with `loadgen --hlog FILE`)",
                path.display(),
                line_of(bytes, offset)
            )
        })?;
        let interval = match entry {
            LogEntry::StartTime(t) => {
                start_s = Some(t.as_secs_f64());
                continue;
            }
            LogEntry::BaseTime(t) => {
                base_s = Some(t.as_secs_f64());
                continue;
            }
            LogEntry::Interval(i) => i,
        };
        let encoded = interval.encoded_histogram();
        let line = line_of(bytes, offset_in(bytes, encoded));
        let raw = base64_decode(encoded).ok_or_else(|| {
            anyhow::anyhow!(
                "{}:{line}: the histogram is not valid base64",
                path.display()
            )
        })?;
        let h: Histogram<u64> = deserializer.deserialize(&mut &raw[..]).map_err(|e| {
            anyhow::anyhow!(
                "{}:{line}: cannot decode the histogram: {e:?}",
                path.display()
            )
        })?;
        m.total
            .add(&h)
            .map_err(|e| anyhow::anyhow!("{}:{line}: cannot merge: {e:?}", path.display()))?;
        let ts = interval.start_timestamp().as_secs_f64();
        let abs = if ts > ABSOLUTE_AFTER_S {
            ts
        } else {
            base_s.or(start_s).unwrap_or(0.0) + ts
        };
        if !(0.0..=MAX_TIMESTAMP_S).contains(&abs) {
            anyhow::bail!(
                "{}:{line}: interval timestamp {abs} s since the epoch is not a time this log can hold (0 to {MAX_TIMESTAMP_S} s, the year 9999); fix or drop the line, or the StartTime/BaseTime it is relative to",
                path.display()
            );
        }
        let slot = m
            .per_second
            .entry(abs.floor() as u64)
            .or_insert_with(|| Histogram::new(3).unwrap_or_else(|_| h.clone()));
        slot.add(&h)
            .map_err(|e| anyhow::anyhow!("{}:{line}: cannot merge: {e:?}", path.display()))?;
        m.intervals += 1;
        found += 1;
    }
    if found == 0 {
        anyhow::bail!(
            "{}: no interval histograms in this file; is it an HdrHistogram V2 interval log (`loadgen --hlog FILE`)?",
            path.display()
        );
    }
    Ok(())
}

/// Byte offset of `part` (a sub-slice of `whole`) in `whole`.
fn offset_in(whole: &[u8], part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// Standard base64 (with or without padding); None when invalid.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    STANDARD_ANY_PADDING.decode(s).ok()
}

/// Writes the per-second histograms as a V2 interval log.
fn write_hlog(path: &Path, m: &Merged) -> anyhow::Result<()> {
    let first = m.per_second.keys().next().copied().unwrap_or(0);
    let base = UNIX_EPOCH
        .checked_add(Duration::from_secs(first))
        .with_context(|| {
            format!(
                "cannot write {}: start time {first} s since the epoch is out of range",
                path.display()
            )
        })?;
    let mut buf = Vec::new();
    {
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment("merged by acceptbench merge; values in nanoseconds")
            .with_start_time(base)
            .with_base_time(base)
            .begin_log_with(&mut buf, &mut ser)
            .context("cannot start the merged interval log")?;
        for (&sec, h) in &m.per_second {
            w.write_histogram(
                h,
                Duration::from_secs(sec - first),
                Duration::from_secs(1),
                None,
            )
            .map_err(|e| anyhow::anyhow!("cannot write an interval: {e:?}"))?;
        }
    }
    std::fs::write(path, buf).with_context(|| format!("cannot write {}", path.display()))
}

/// Runs the command.
pub fn run(cfg: &MergeConfig) -> anyhow::Result<ExitCode> {
    let m = merge_files(&cfg.inputs)?;
    let (hgrm, hlog) = if cfg.out.extension().is_some_and(|e| e == "hlog") {
        (cfg.out.with_extension("hgrm"), cfg.out.clone())
    } else {
        (cfg.out.clone(), cfg.out.with_extension("hlog"))
    };
    if hlog.exists() && cfg.inputs.iter().any(|i| same_file(i, &hlog)) {
        anyhow::bail!(
            "{} is one of the inputs: choose another --out so the merged log does not overwrite it",
            hlog.display()
        );
    }
    crate::report::hgrm::write_file(&hgrm, &m.total)
        .with_context(|| format!("cannot write {}", hgrm.display()))?;
    write_hlog(&hlog, &m)?;
    let us = |q: f64| m.total.value_at_quantile(q) as f64 / 1000.0;
    crate::stdout::println(format_args!(
        "merged {} intervals from {} files: {} values; p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        m.intervals,
        cfg.inputs.len(),
        m.total.len(),
        us(0.5),
        us(0.99),
        m.total.max() as f64 / 1000.0
    ))?;
    crate::stdout::println(format_args!("{}\n{}", hgrm.display(), hlog.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn write_log(path: &Path, start: SystemTime, values: &[&[u64]]) {
        let mut buf = Vec::new();
        let mut ser = V2DeflateSerializer::new();
        let mut w = IntervalLogWriterBuilder::new()
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut buf, &mut ser)
            .unwrap();
        for (i, vals) in values.iter().enumerate() {
            let mut h = common::hist::new_histogram();
            for &v in *vals {
                h.record(v).unwrap();
            }
            w.write_histogram(
                &h,
                Duration::from_secs(i as u64),
                Duration::from_secs(1),
                None,
            )
            .unwrap();
        }
        drop(w);
        std::fs::write(path, buf).unwrap();
    }

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert_eq!(base64_decode("TQ==").unwrap(), b"M");
        assert_eq!(base64_decode("TWE").unwrap(), b"Ma");
        assert!(base64_decode("T!==").is_none());
        assert!(base64_decode("T").is_none());
    }

    #[test]
    fn merges_two_logs_by_second_and_in_total() {
        let dir = std::env::temp_dir().join(format!("ab-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = dir.join("a.hlog");
        let b = dir.join("b.hlog");
        write_log(&a, t0, &[&[1_000, 2_000], &[3_000]]);
        write_log(&b, t0 + Duration::from_secs(1), &[&[4_000_000]]);
        let m = merge_files(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(m.intervals, 3);
        assert_eq!(m.total.len(), 4);
        assert_eq!(m.per_second.len(), 2);
        assert_eq!(m.per_second[&1_700_000_001].len(), 2);
        let out = dir.join("all.hgrm");
        run(&MergeConfig {
            inputs: vec![a, b],
            out: out.clone(),
        })
        .unwrap();
        let d = crate::report::hgrm::parse_file(&out).unwrap();
        assert_eq!(d.total_count, 4);
        assert!((d.max_us - 4000.0).abs() < 5.0, "max {}", d.max_us);
        let again = merge_files(&[out.with_extension("hlog")]).unwrap();
        assert_eq!(again.total.len(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_absurd_timestamp_is_an_error_naming_file_and_line() {
        let dir = std::env::temp_dir().join(format!("ab-merge-ts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.hlog");
        write_log(
            &good,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            &[&[1_000]],
        );
        let text = std::fs::read_to_string(&good).unwrap();
        let (n, line) = text
            .lines()
            .enumerate()
            .find(|(_, l)| !l.starts_with('#') && !l.starts_with('"'))
            .unwrap();
        let (_, rest) = line.split_once(',').unwrap();
        for ts in [
            "9999999999999999999.000",
            "18446744073709551615.5",
            "253402300800.000",
        ] {
            let bad = dir.join("bad.hlog");
            std::fs::write(&bad, text.replace(line, &format!("{ts},{rest}"))).unwrap();
            let out = dir.join("out.hgrm");
            let res = run(&MergeConfig {
                inputs: vec![bad.clone()],
                out,
            });
            let e = format!("{:#}", res.unwrap_err());
            assert!(e.contains(&format!("bad.hlog:{}", n + 1)), "{e}");
            assert!(e.contains("year 9999"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_file_names_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("ab-merge-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.hlog");
        std::fs::write(
            &p,
            "#[StartTime: 1 (seconds since epoch)]\n0.0,1.0,2.0,@@@notbase64\n",
        )
        .unwrap();
        let e = format!("{:#}", merge_files(std::slice::from_ref(&p)).unwrap_err());
        assert!(e.contains("x.hlog:2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
