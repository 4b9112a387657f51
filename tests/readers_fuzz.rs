//! Every reader of a file acceptbench did not just write — summary.csv, meta.json,
//! .hgrm, .hlog — fed arbitrary bytes (proptest) and 100 000 mutations of a valid
//! file each (a small deterministic xorshift mutator, so a failure reproduces): the
//! answer is a value or an error naming the file, never a panic. loadgen's records
//! reader has the same test in loadgen/tests/records_fuzz.rs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use acceptbench::merge::{merge_log, Merged};
use acceptbench::report::{csv, hgrm, meta::Meta};
use proptest::prelude::*;

/// Mutated inputs per reader.
const MUTATIONS: usize = 100_000;

/// xorshift64: fast, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that tend to break text parsers: huge, negative, non-finite and malformed
/// numbers, separators, quotes, brackets, invalid UTF-8.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"-0",
    b"18446744073709551616",
    b"9999999999999999999",
    b"1e309",
    b"-1e309",
    b"NaN",
    b"inf",
    b"-inf",
    b"1.7976931348623157e308",
    b"4294967296",
    b",",
    b",,",
    b"\n",
    b"\r\n",
    b"\"",
    b"\"\"",
    b"]",
    b"#[",
    b"{",
    b"}",
    b"[",
    b":",
    b"=",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"\xc3",
    b"e",
    b".",
    b"@",
    b"null",
    b"true",
];

/// One to four random edits of `seed`.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(7) {
            0 if at < b.len() => b[at] ^= 1 << rng.below(8),
            1 if at < b.len() => b[at] = rng.next() as u8,
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(at..at, t.iter().copied());
            }
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let end = (at + 1 + rng.below(8)).min(b.len());
                b.splice(at.min(end)..end, t.iter().copied());
            }
            4 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                b.drain(at.min(end)..end);
            }
            5 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                let copy = b[at.min(end)..end].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, copy);
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// Feeds `MUTATIONS` mutations of the seeds, shared out by their weights, to `read`,
/// which returns the error text or None; fails on a panic (with the input) or an
/// error that does not name `name`.
fn fuzz(name: &str, seeds: &[(Vec<u8>, usize)], read: impl Fn(&[u8]) -> Option<String>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let weights: usize = seeds.iter().map(|(_, w)| w).sum();
    for (seed, weight) in seeds {
        let per_seed = MUTATIONS * weight / weights;
        assert!(read(seed).is_none(), "{name}: the seed itself must parse");
        for i in 0..per_seed {
            let input = mutate(&mut rng, seed);
            match catch_unwind(AssertUnwindSafe(|| read(&input))) {
                Ok(Some(err)) => assert!(err.contains(name), "error without the file name: {err}"),
                Ok(None) => {}
                Err(_) => panic!(
                    "{name}: mutation {i} panicked; input:\n{}",
                    String::from_utf8_lossy(&input)
                ),
            }
        }
    }
}

fn committed_run() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let mut runs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("summary.csv").exists())
        .collect();
    runs.sort();
    runs.remove(0)
}

/// The header and the first `rows` rows of a committed summary.csv.
fn csv_seed(rows: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(committed_run().join("summary.csv")).unwrap();
    let mut out: String = text.lines().take(1 + rows).collect::<Vec<_>>().join("\n");
    out.push('\n');
    out.into_bytes()
}

fn read_csv(b: &[u8]) -> Option<String> {
    csv::read_from(b, "fuzz.csv").err().map(|e| e.to_string())
}

fn read_meta(b: &[u8]) -> Option<String> {
    // meta.json is read as UTF-8 text; invalid UTF-8 is the file reader's error.
    let text = std::str::from_utf8(b).ok()?;
    Meta::parse(text, "fuzz.json").err().map(|e| e.to_string())
}

fn read_hgrm(b: &[u8]) -> Option<String> {
    hgrm::parse(b, "fuzz.hgrm").err().map(|e| e.to_string())
}

fn read_hlog(b: &[u8]) -> Option<String> {
    let mut m = Merged::new().unwrap();
    merge_log(&mut m, b, Path::new("fuzz.hlog"))
        .err()
        .map(|e| format!("{e:#}"))
}

fn hgrm_seed() -> Vec<u8> {
    let mut h = common::hist::new_histogram();
    for v in [1_000u64, 2_000, 50_000, 1_000_000] {
        h.record(v).unwrap();
    }
    let mut buf = Vec::new();
    hgrm::write(&mut buf, &h).unwrap();
    buf
}

fn hlog_seed() -> Vec<u8> {
    use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
    use hdrhistogram::serialization::V2DeflateSerializer;
    use std::time::{Duration, UNIX_EPOCH};
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut buf = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .with_start_time(start)
        .with_base_time(start)
        .begin_log_with(&mut buf, &mut ser)
        .unwrap();
    for i in 0..2u64 {
        // Small and auto-resizing: every input is decoded into a histogram of this size.
        let mut h = hdrhistogram::Histogram::<u64>::new(2).unwrap();
        h.record(1_000 * (i + 1)).unwrap();
        w.write_histogram(&h, Duration::from_secs(i), Duration::from_secs(1), None)
            .unwrap();
    }
    drop(w);
    buf
}

#[test]
fn summary_csv_reader_never_panics() {
    // summary.csv columns all have defaults: a few columns make a valid file too, and
    // a fast one (a committed row has ~60 columns, ~10× slower to read unoptimised).
    let small = b"engine,backlog,mode,repetition,status,note,accepts_per_s,syn_retry_modes\n\
std,16,drain,1,ok,\"a, \"\"quoted\"\" note\",12345.5,1.0s:3\n\
uring,128,burst,2,incomplete,,0,\n"
        .to_vec();
    fuzz("fuzz.csv", &[(small, 19), (csv_seed(1), 1)], read_csv);
}

fn read_cells(b: &[u8]) -> Option<String> {
    acceptbench::report::cells::read_from(b, "fuzz-cells.csv")
        .err()
        .map(|e| e.to_string())
}

#[test]
fn cells_csv_reader_never_panics() {
    let small = b"engine,backlog,mode,n,n_ok,accepts_per_s,accepts_per_s_lo,ratio_accepts_vs_std,accepts_vs_std\n\
uring,4096,drain,6,5,150000.5,140000,1.2,higher\n\
std,128,closed,6,6,,,,\n"
        .to_vec();
    fuzz("fuzz-cells.csv", &[(small, 1)], read_cells);
}

#[test]
fn meta_json_reader_never_panics() {
    let seed = std::fs::read(committed_run().join("meta.json")).unwrap();
    fuzz("fuzz.json", &[(seed, 1)], read_meta);
}

#[test]
fn hgrm_reader_never_panics() {
    fuzz("fuzz.hgrm", &[(hgrm_seed(), 1)], read_hgrm);
}

#[test]
fn hlog_reader_never_panics() {
    fuzz("fuzz.hlog", &[(hlog_seed(), 1)], read_hlog);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary bytes, and arbitrary text, to every reader: an error or a value.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), text in ".{0,256}") {
        for input in [&bytes[..], text.as_bytes()] {
            for (name, err) in [
                ("fuzz.csv", read_csv(input)),
                ("fuzz-cells.csv", read_cells(input)),
                ("fuzz.json", read_meta(input)),
                ("fuzz.hgrm", read_hgrm(input)),
                ("fuzz.hlog", read_hlog(input)),
            ] {
                if let Some(err) = err {
                    prop_assert!(err.contains(name), "{err}");
                }
            }
        }
    }
}
