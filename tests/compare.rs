//! `compare` on hand-made result directories: ratios, labels, noise marks,
//! warnings, and errors that name the broken file (and line).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use acceptbench::compare::{self, format, Cell, Verdict};
use acceptbench::kernel::probe::UringProbe;
use acceptbench::report::csv::SummaryWriter;
use acceptbench::report::meta::Meta;
use acceptbench::report::row::{Status, SummaryRow};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ab-compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn meta(kernel: &str) -> Meta {
    Meta {
        format_version: acceptbench::report::meta::FORMAT_VERSION,
        command: "acceptbench sweep".into(),
        acceptbench_version: "0.1.0".into(),
        git_rev: "abc".into(),
        crate_versions: BTreeMap::new(),
        kernel_release: kernel.into(),
        uname: format!("Linux test {kernel}"),
        host: "test".into(),
        cpu_model: "test cpu".into(),
        cpus: 2,
        virtualised: "none".into(),
        rlimit_nofile: 65536,
        sysctls: BTreeMap::from([("net.core.somaxconn".to_string(), "4096".to_string())]),
        io_uring: UringProbe::default(),
        server_cpu: 0,
        client_cpus: vec![1],
        started_utc: "2025-01-01T00:00:00Z".into(),
        finished_utc: "2025-01-01T00:01:00Z".into(),
        incomplete: false,
        notes: Vec::new(),
        engine_options: String::new(),
        client_connect: Vec::new(),
        machine: None,
    }
}

/// A row: engine, backlog, mode, repetition, accepts/s, CPU µs per accept.
fn row(engine: &str, backlog: u32, mode: &str, rep: u32, accepts: f64, cpu: f64) -> SummaryRow {
    SummaryRow {
        engine: engine.into(),
        backlog,
        backlog_effective: backlog,
        mode: mode.into(),
        repetition: rep,
        status: Some(Status::Ok),
        accepts_per_s: accepts,
        acceptor_cpu_us_per_accept: Some(cpu),
        peer_p99_ns: Some(50_000),
        ..Default::default()
    }
}

fn write_run(dir: &Path, meta: &Meta, rows: &[SummaryRow]) {
    std::fs::create_dir_all(dir).unwrap();
    meta.write(&dir.join("meta.json")).unwrap();
    let mut w = SummaryWriter::create(&dir.join("summary.csv")).unwrap();
    for r in rows {
        w.append(r).unwrap();
    }
}

/// Two runs: A (6.1, reference) and B (6.12).
fn two_runs(root: &Path) -> (PathBuf, PathBuf) {
    let a = root.join("20250101T000000Z-6.1.0-test-host");
    let b = root.join("20250102T000000Z-6.12.0-test-host");
    // std, 6 repetitions each: accepts/s interleave (900…1150 vs 950…1200), CPU
    // separates completely (10.x vs 12.x).
    let mut rows_a: Vec<SummaryRow> = (0..6)
        .map(|i| {
            row(
                "std",
                16,
                "closed",
                i + 1,
                900.0 + 50.0 * i as f64,
                10.0 + 0.1 * i as f64,
            )
        })
        .collect();
    rows_a.extend([
        row("uring", 16, "closed", 1, 2000.0, 8.0),
        row("std", 128, "closed", 1, 1000.0, 10.0),
        row("multishot", 16, "closed", 1, 4000.0, 4.0),
    ]);
    write_run(&a, &meta("6.1.0-test"), &rows_a);
    let mut skipped = row("multishot", 16, "closed", 1, 0.0, 0.0);
    skipped.status = Some(Status::Skipped);
    skipped.note = "unsupported (needs Linux 5.19)".into();
    // A failed repetition is absent, not zero.
    let mut failed = row("std", 16, "closed", 7, 0.0, 0.0);
    failed.status = Some(Status::Failed);
    failed.note = "loadgen exited without a report".into();
    let mut rows_b: Vec<SummaryRow> = (0..6)
        .map(|i| {
            row(
                "std",
                16,
                "closed",
                i + 1,
                950.0 + 50.0 * i as f64,
                12.0 + 0.1 * i as f64,
            )
        })
        .collect();
    rows_b.extend([row("uring", 16, "closed", 1, 3000.0, 4.0), skipped, failed]);
    write_run(&b, &meta("6.12.0-test"), &rows_b);
    (a, b)
}

fn metrics(m: &[&str]) -> Vec<String> {
    m.iter().map(|s| s.to_string()).collect()
}

fn find<'a>(c: &'a compare::Comparison, engine: &str, backlog: u32, metric: &str) -> &'a [Cell] {
    &c.lines
        .iter()
        .find(|l| l.key.engine == engine && l.key.backlog == backlog && l.metric == metric)
        .unwrap_or_else(|| panic!("no line {engine} b{backlog} {metric}"))
        .cells
}

fn value(c: &Cell) -> (f64, Option<f64>, Option<Verdict>, usize) {
    match c {
        Cell::Value {
            stats,
            ratio,
            verdict,
            ..
        } => (stats.median, *ratio, *verdict, stats.n),
        other => panic!("expected a value, got {other:?}"),
    }
}

#[test]
fn two_runs_give_ratios_labels_spread_and_noise() {
    let root = scratch("two");
    let (a, b) = two_runs(&root);
    let runs = compare::load_runs(&[a, b]).unwrap();
    let c = compare::compare(
        &runs,
        &metrics(&["accepts_per_s", "acceptor_cpu_us_per_accept"]),
    )
    .unwrap();
    assert_eq!(c.runs[0].label, "6.1.0-test");
    assert_eq!(c.runs[1].label, "6.12.0-test");

    // std: medians 1025 vs 1075, interleaved repetitions: no difference shown.
    let std = find(&c, "std", 16, "accepts_per_s");
    let (med_a, ratio_a, verdict_a, n_a) = value(&std[0]);
    assert_eq!((med_a, ratio_a, verdict_a, n_a), (1025.0, None, None, 6));
    let (med_b, ratio_b, verdict_b, n_b) = value(&std[1]);
    // The failed 7th repetition is left out, not averaged in as a zero.
    assert_eq!((med_b, n_b), (1075.0, 6));
    assert!((ratio_b.unwrap() - 1075.0 / 1025.0).abs() < 1e-9);
    assert_eq!(verdict_b, Some(Verdict::NotShown));
    // CPU: 10.x vs 12.x, completely separated over 6 + 6: real.
    let (_, r, verdict, _) = value(&find(&c, "std", 16, "acceptor_cpu_us_per_accept")[1]);
    assert!((r.unwrap() - 12.25 / 10.25).abs() < 1e-9);
    assert_eq!(verdict, Some(Verdict::Real));
    // uring: one repetition each: a ratio, but no test can show anything.
    let (_, r, verdict, _) = value(&find(&c, "uring", 16, "accepts_per_s")[1]);
    assert!((r.unwrap() - 1.5).abs() < 1e-9);
    assert_eq!(verdict, Some(Verdict::TooFewValues));
    // Only in A; skipped in B.
    assert_eq!(find(&c, "std", 128, "accepts_per_s")[1], Cell::Missing);
    assert!(
        matches!(&find(&c, "multishot", 16, "accepts_per_s")[1], Cell::Skipped(n) if n.contains("5.19"))
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let text = format::text(&c);
    assert!(
        text.contains("6.1.0-test") && text.contains("6.12.0-test"),
        "{text}"
    );
    assert!(text.contains("1025 [900–1150]"), "{text}");
    assert!(text.contains("×1.05 ~"), "{text}");
    assert!(text.contains("×1.20 real"), "{text}");
    assert!(text.contains("×1.50 n?"), "{text}");
    assert!(text.contains("skipped"), "{text}");

    let md = format::markdown(&c);
    assert!(
        md.contains("| engine | backlog | mode | metric | 6.1.0-test | 6.12.0-test | ratio |"),
        "{md}"
    );
    assert!(md.contains("|---|---:|---|---|---:|---:|---:|"), "{md}");

    let csv = format::csv(&c).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + c.lines.len() * 2);
    assert!(
        csv.contains("std,16,closed,accepts_per_s,6.12.0-test,"),
        "{csv}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn same_kernel_twice_is_labelled_by_run_dir() {
    let root = scratch("same");
    let a = root.join("run-a");
    let b = root.join("run-b");
    write_run(
        &a,
        &meta("6.8.0"),
        &[row("std", 16, "closed", 1, 100.0, 1.0)],
    );
    write_run(
        &b,
        &meta("6.8.0"),
        &[row("std", 16, "closed", 1, 50.0, 1.0)],
    );
    let runs = compare::load_runs(&[a, b]).unwrap();
    assert_eq!(runs[0].label, "6.8.0 (run-a)");
    assert_eq!(runs[1].label, "6.8.0 (run-b)");
    let c = compare::compare(&runs, &metrics(&["accepts_per_s"])).unwrap();
    let (_, r, _, _) = value(&c.lines[0].cells[1]);
    assert_eq!(r, Some(0.5));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn differing_settings_are_warned_about() {
    let root = scratch("warn");
    let a = root.join("a");
    let b = root.join("b");
    write_run(
        &a,
        &meta("6.8.0"),
        &[row("std", 16, "closed", 1, 100.0, 1.0)],
    );
    let mut m = meta("6.1.0");
    m.cpus = 4;
    m.virtualised = "tcg".into();
    m.rlimit_nofile = 1024;
    m.acceptbench_version = "0.2.0".into();
    m.sysctls.insert("net.core.somaxconn".into(), "128".into());
    write_run(&b, &m, &[row("std", 16, "closed", 1, 10.0, 1.0)]);
    let runs = compare::load_runs(&[a, b]).unwrap();
    let w = compare::settings_warnings(&runs).join("\n");
    for needle in [
        "virtualised: 6.8.0 = none, 6.1.0 = tcg",
        "CPU count",
        "RLIMIT_NOFILE",
        "acceptbench version",
        "sysctl net.core.somaxconn: 6.8.0 = 4096, 6.1.0 = 128",
    ] {
        assert!(w.contains(needle), "{needle:?} missing from:\n{w}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_malformed_summary_csv_is_named_with_its_line() {
    let root = scratch("badcsv");
    let (a, b) = two_runs(&root);
    let text = std::fs::read_to_string(b.join("summary.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = lines[2].replacen(",16,", ",sixteen,", 1);
    std::fs::write(b.join("summary.csv"), lines.join("\n") + "\n").unwrap();
    let e = format!("{:#}", compare::load_runs(&[a, b.clone()]).unwrap_err());
    let want = format!("{}:3", b.join("summary.csv").display());
    assert!(e.contains(&want), "{want:?} missing from: {e}");
    assert!(e.contains("acceptbench sweep"), "the fix is named: {e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_missing_or_malformed_meta_json_is_named() {
    let root = scratch("badmeta");
    let (a, b) = two_runs(&root);
    std::fs::remove_file(a.join("meta.json")).unwrap();
    let e = format!(
        "{:#}",
        compare::load_runs(&[a.clone(), b.clone()]).unwrap_err()
    );
    assert!(
        e.contains(&a.join("meta.json").display().to_string()),
        "{e}"
    );

    std::fs::write(
        b.join("meta.json"),
        "{\n  \"format_version\": 1,\n  \"command\": 7\n}\n",
    )
    .unwrap();
    let e = format!("{:#}", compare::load_run(&b).unwrap_err());
    assert!(
        e.contains(&format!("{}:3", b.join("meta.json").display())),
        "{e}"
    );

    let e = format!("{:#}", compare::load_run(&root.join("nope")).unwrap_err());
    assert!(e.contains("no such directory"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_unknown_metric_lists_the_valid_ones() {
    let root = scratch("metric");
    let (a, b) = two_runs(&root);
    let runs = compare::load_runs(&[a, b]).unwrap();
    let e = compare::compare(&runs, &metrics(&["speed"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"speed\"") && e.contains("accepts_per_s"),
        "{e}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_binary_prints_a_table_and_names_a_broken_file() {
    let root = scratch("bin");
    let (a, b) = two_runs(&root);
    let out = assert_cmd::Command::cargo_bin("acceptbench")
        .unwrap()
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .args(["--format", "markdown", "--metric", "accepts_per_s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("| std | 16 | closed | accepts_per_s |"),
        "{stdout}"
    );

    std::fs::write(a.join("summary.csv"), "engine,backlog\nstd,x\n").unwrap();
    let out = assert_cmd::Command::cargo_bin("acceptbench")
        .unwrap()
        .arg("compare")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("summary.csv:2"), "{stderr}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_column_an_older_run_lacks_is_absent_not_zero() {
    let root = scratch("oldcols");
    let (a, b) = two_runs(&root);
    // Rewrite B's summary.csv without the acceptor_cpu_us_per_accept column.
    let path = b.join("summary.csv");
    let mut r = ::csv::Reader::from_path(&path).unwrap();
    let headers = r.headers().unwrap().clone();
    let drop = headers
        .iter()
        .position(|h| h == "acceptor_cpu_us_per_accept")
        .unwrap();
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let keep = |rec: &::csv::StringRecord| -> Vec<String> {
        rec.iter()
            .enumerate()
            .filter(|(i, _)| *i != drop)
            .map(|(_, v)| v.to_string())
            .collect()
    };
    w.write_record(keep(&headers)).unwrap();
    for rec in r.records() {
        w.write_record(keep(&rec.unwrap())).unwrap();
    }
    std::fs::write(&path, w.into_inner().unwrap()).unwrap();
    let runs = compare::load_runs(&[a, b]).unwrap();
    let c = compare::compare(&runs, &metrics(&["acceptor_cpu_us_per_accept"])).unwrap();
    let cells = find(&c, "std", 16, "acceptor_cpu_us_per_accept");
    assert!(matches!(cells[0], Cell::Value { .. }));
    assert_eq!(cells[1], Cell::NoValue);
    assert!(format::text(&c).contains(" —"), "{}", format::text(&c));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_newer_results_format_is_refused_by_name() {
    let root = scratch("format");
    let (a, _) = two_runs(&root);
    let mut m = meta("6.1.0-test");
    m.format_version = 99;
    m.write(&a.join("meta.json")).unwrap();
    let e = format!("{:#}", compare::load_runs(&[a]).unwrap_err());
    assert!(e.contains("format_version 99"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A format-2 run timed its windows to the last peer held and called that accepts/s:
/// beside a format-3 run it is shown as peers_held_per_s, its accepts_per_s (to the last
/// close) is absent rather than compared, and a warning names both versions.
#[test]
fn a_format_2_run_is_compared_on_its_own_end_point() {
    let root = scratch("v2");
    let (a, b) = two_runs(&root);
    let mut m = meta("6.1.0-test");
    m.format_version = 2;
    m.write(&a.join("meta.json")).unwrap();
    let runs = compare::load_runs(&[a, b]).unwrap();
    let c = compare::compare(&runs, &metrics(&["accepts_per_s", "peers_held_per_s"])).unwrap();
    let accepts = find(&c, "std", 16, "accepts_per_s");
    assert_eq!(
        accepts[0],
        Cell::NoValue,
        "format 2 has no accepts/s to the last close"
    );
    assert!(matches!(accepts[1], Cell::Value { .. }));
    let held = find(&c, "std", 16, "peers_held_per_s");
    assert_eq!(
        value(&held[0]).0,
        1025.0,
        "format 2's accepts/s, read as peers held/s"
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("format_version") && w.contains("= 2") && w.contains("= 3")),
        "{:?}",
        c.warnings
    );
    std::fs::remove_dir_all(&root).unwrap();
}
