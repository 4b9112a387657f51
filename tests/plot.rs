//! `plot`: charts of hand-made and real runs are written as PNG and SVG files
//! that decode (PNG: signature, IHDR size, every chunk's CRC, IDAT and IEND;
//! SVG: one <svg> element), with or without a font.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use acceptbench::config::PlotConfig;
use acceptbench::kernel::probe::UringProbe;
use acceptbench::plot;
use acceptbench::report::csv::SummaryWriter;
use acceptbench::report::hgrm;
use acceptbench::report::meta::Meta;
use acceptbench::report::row::{Status, SummaryRow};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ab-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Checks the PNG structure; returns (width, height).
fn check_png(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert!(
        b.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{}: no PNG signature",
        path.display()
    );
    let mut at = 8;
    let mut names = Vec::new();
    let mut size = (0, 0);
    while at + 12 <= b.len() {
        let len = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let body = &b[at + 4..at + 8 + len];
        let crc = u32::from_be_bytes(b[at + 8 + len..at + 12 + len].try_into().unwrap());
        assert_eq!(crc32(body), crc, "{}: bad CRC", path.display());
        let name = String::from_utf8_lossy(&body[..4]).into_owned();
        if name == "IHDR" {
            size = (
                u32::from_be_bytes(body[4..8].try_into().unwrap()),
                u32::from_be_bytes(body[8..12].try_into().unwrap()),
            );
        }
        names.push(name);
        at += 12 + len;
    }
    assert_eq!(at, b.len(), "{}: trailing bytes", path.display());
    assert_eq!(names.first().map(String::as_str), Some("IHDR"));
    assert!(names.iter().any(|n| n == "IDAT"), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("IEND"));
    assert!(size.0 > 0 && size.1 > 0, "{size:?}");
    size
}

fn check_svg(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap();
    let t = s.trim();
    assert!(
        t.starts_with("<svg") || t.starts_with("<?xml"),
        "{}: {}",
        path.display(),
        &t[..t.len().min(80)]
    );
    assert!(
        t.ends_with("</svg>"),
        "{}: does not end with </svg>",
        path.display()
    );
    assert_eq!(t.matches("<svg").count(), 1);
    assert!(
        t.contains("<polyline") || t.contains("<path") || t.contains("<line"),
        "no lines drawn"
    );
    s
}

fn check_all(files: &[PathBuf]) -> Vec<String> {
    assert!(!files.is_empty());
    let mut svgs = Vec::new();
    for f in files {
        assert!(
            std::fs::metadata(f).unwrap().len() > 0,
            "{} is empty",
            f.display()
        );
        match f.extension().and_then(|e| e.to_str()) {
            Some("png") => {
                check_png(f);
            }
            Some("svg") => svgs.push(check_svg(f)),
            other => panic!("unexpected file {} ({other:?})", f.display()),
        }
    }
    svgs
}

fn meta(kernel: &str) -> Meta {
    Meta {
        format_version: acceptbench::report::meta::FORMAT_VERSION,
        command: "acceptbench sweep".into(),
        acceptbench_version: "0.1.0".into(),
        git_rev: "abc".into(),
        crate_versions: BTreeMap::new(),
        kernel_release: kernel.into(),
        uname: String::new(),
        host: "test".into(),
        cpu_model: String::new(),
        cpus: 2,
        virtualised: "none".into(),
        rlimit_nofile: 65536,
        sysctls: BTreeMap::new(),
        io_uring: UringProbe::default(),
        server_cpu: 0,
        client_cpus: vec![1],
        started_utc: String::new(),
        finished_utc: String::new(),
        incomplete: false,
        notes: Vec::new(),
        engine_options: String::new(),
        client_connect: Vec::new(),
        machine: None,
    }
}

/// A run with two engines × three backlogs, closed and burst, hgrm and queue files.
fn fake_run(dir: &Path, kernel: &str, speed: f64) {
    std::fs::create_dir_all(dir.join("hgrm")).unwrap();
    std::fs::create_dir_all(dir.join("queue")).unwrap();
    meta(kernel).write(&dir.join("meta.json")).unwrap();
    let mut w = SummaryWriter::create(&dir.join("summary.csv")).unwrap();
    for (ei, engine) in ["std", "uring"].iter().enumerate() {
        for (bi, backlog) in [16u32, 1024].iter().enumerate() {
            for mode in ["closed", "burst"] {
                w.append(&SummaryRow {
                    engine: engine.to_string(),
                    backlog: *backlog,
                    mode: mode.into(),
                    repetition: 1,
                    status: Some(Status::Ok),
                    accepts_per_s: speed * (1.0 + ei as f64) * (1.0 + bi as f64 / 10.0),
                    acceptor_cpu_us_per_accept: Some(10.0 / (1.0 + ei as f64)),
                    ..Default::default()
                })
                .unwrap();
                for metric in ["connect", "peer", "peer-internal"] {
                    let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
                    for v in 1..2000u64 {
                        h.record(v * 37 * (ei as u64 + 1)).unwrap();
                    }
                    let name = format!("{engine}-b{backlog}-{mode}-{metric}.hgrm");
                    hgrm::write_file(&dir.join("hgrm").join(name), &h).unwrap();
                }
            }
        }
        let mut q = String::from("t_ms,depth,limit\n");
        for t in 0..50 {
            q.push_str(&format!("{},{},17\n", t * 2, (t * 3).min(17)));
        }
        std::fs::write(dir.join("queue").join(format!("{engine}-b16-burst.csv")), q).unwrap();
    }
    let mut skipped = SummaryRow {
        engine: "multishot".into(),
        backlog: 16,
        mode: "closed".into(),
        repetition: 1,
        status: Some(Status::Skipped),
        ..Default::default()
    };
    skipped.note = "unsupported".into();
    w.append(&skipped).unwrap();
}

#[test]
fn one_run_gives_every_chart_as_png_and_svg() {
    let root = scratch("one");
    let dir = root.join("run");
    fake_run(&dir, "6.8.0-test", 10_000.0);
    let files = plot::plot_run_dir_as(&dir, true).unwrap();
    check_all(&files);
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(dir.join("plots"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    for want in [
        "accepts-closed.png",
        "accepts-closed.svg",
        "cpu-burst.svg",
        "latency-connect-closed-b16.png",
        "latency-peer-burst-b1024.svg",
        "queue-b16-burst.png",
        "queue-b16-burst.svg",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("multishot")),
        "skipped engines are not drawn"
    );
    if plot::font::ready() {
        let svg = std::fs::read_to_string(dir.join("plots/accepts-closed.svg")).unwrap();
        assert!(
            svg.contains("uring") && svg.contains("backlog"),
            "labels are drawn"
        );
        let svg =
            std::fs::read_to_string(dir.join("plots/latency-connect-closed-b16.svg")).unwrap();
        assert!(svg.contains("99%"), "percentile ticks are labelled");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn several_runs_give_one_series_per_kernel() {
    let root = scratch("two");
    let a = root.join("a");
    let b = root.join("b");
    fake_run(&a, "6.1.0-test", 10_000.0);
    fake_run(&b, "6.12.0-test", 1_000.0);
    let out = root.join("charts");
    plot::run(&PlotConfig {
        runs: vec![a, b],
        out: Some(out.clone()),
        png: true,
    })
    .unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    check_all(&files);
    if plot::font::ready() {
        let svg = std::fs::read_to_string(out.join("accepts-closed.svg")).unwrap();
        for label in ["std · 6.1.0-test", "uring · 6.12.0-test"] {
            assert!(svg.contains(label), "{label} missing from the legend");
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn without_a_font_charts_are_still_written() {
    let root = scratch("nofont");
    let dir = root.join("run");
    fake_run(&dir, "6.8.0-test", 10_000.0);
    let out = assert_cmd::Command::cargo_bin("acceptbench")
        .unwrap()
        .env(plot::font::FONT_ENV, root.join("no-such-font.ttf"))
        .arg("plot")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no font found"));
    let files: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    assert!(files.len() >= 10, "{files:?}");
    check_all(&files);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_broken_run_is_named() {
    let root = scratch("broken");
    let dir = root.join("run");
    fake_run(&dir, "6.8.0-test", 10_000.0);
    std::fs::remove_file(dir.join("summary.csv")).unwrap();
    let e = format!("{:#}", plot::plot_run_dir(&dir).unwrap_err());
    assert!(e.contains("summary.csv"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// The sweep on this machine, then its plots. Needs loopback and a working sweep.
#[test]
fn plotting_a_real_tiny_sweep() {
    let out = scratch("sweep");
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .args([
            "sweep",
            "--repeat",
            "1",
            "--engines",
            "std",
            "--backlogs",
            "16",
            "--modes",
            "closed",
        ])
        .args(["--duration", "200ms", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    // The sweep itself drew SVG only (small enough to commit).
    let sweep_drew: Vec<String> = std::fs::read_dir(dirs[0].join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        sweep_drew.iter().any(|n| n == "accepts-closed.svg"),
        "{sweep_drew:?}"
    );
    assert!(
        !sweep_drew.iter().any(|n| n.ends_with(".png")),
        "{sweep_drew:?}"
    );
    let files = plot::plot_run_dir_as(&dirs[0], true).unwrap();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for want in [
        "accepts-closed.png",
        "accepts-closed.svg",
        "latency-connect-closed-b16.png",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    check_all(&files);
    std::fs::remove_dir_all(&out).unwrap();
}

/// Charts by backlog draw each cell's interval: a whisker per point from the cell's
/// order-statistic interval, flagged when the runs are too few for 95%.
#[test]
fn charts_by_backlog_carry_each_cells_interval() {
    let root = scratch("ci");
    let dir = root.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    meta("6.8.0-test").write(&dir.join("meta.json")).unwrap();
    let mut w = SummaryWriter::create(&dir.join("summary.csv")).unwrap();
    // backlog 16: 6 rounds (an interval at ≥ 95%); backlog 128: 3 rounds (too few).
    for (backlog, reps) in [(16u32, 6u32), (128, 3)] {
        for rep in 1..=reps {
            w.append(&SummaryRow {
                engine: "std".into(),
                backlog,
                mode: "drain".into(),
                repetition: rep,
                status: Some(Status::Ok),
                accepts_per_s: 1000.0 + 10.0 * rep as f64,
                acceptor_cpu_us_per_accept: Some(5.0),
                ..Default::default()
            })
            .unwrap();
        }
    }
    drop(w);
    let run = acceptbench::compare::load_run(&dir).unwrap();
    let charts = plot::all_charts(std::slice::from_ref(&run));
    let accepts = charts
        .iter()
        .find(|c| c.stem == "accepts-drain")
        .expect("accepts chart");
    let s = &accepts.series[0];
    assert_eq!(s.intervals.len(), s.points.len());
    let at = |x: f64| s.intervals.iter().find(|i| i.x == x).unwrap();
    // 6 runs: [x(1), x(6)] is the 95% interval; 3 runs: [min, max] at 75%.
    assert_eq!(
        (at(16.0).lo, at(16.0).hi, at(16.0).enough),
        (1010.0, 1060.0, true)
    );
    assert_eq!(
        (at(128.0).lo, at(128.0).hi, at(128.0).enough),
        (1010.0, 1030.0, false)
    );
    std::fs::remove_dir_all(&root).unwrap();
}
