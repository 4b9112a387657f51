//! The sweep: engines × backlogs × modes × repetitions, each run measured by
//! [`run`], joined with the client's records by [`join`], and written as it finishes
//! into a self-describing results directory ([`crate::report`]). Ctrl-C stops the
//! current run, keeps every finished row and marks the directory incomplete.

pub mod client;
pub mod join;
pub mod run;

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{Mode, SweepConfig};
use crate::engine::{EngineKind, StopFlag};
use crate::kernel::{self, probe};
use crate::overflow;
use crate::record::new_histogram;
use crate::report::csv::SummaryWriter;
use crate::report::meta::{self, Meta};
use crate::report::row::{Status, SummaryRow};
use crate::report::{hgrm, readme, RunDir};
use crate::summary::LatencyNs;
use join::ClientConn;
use run::{Measured, RunSpec};

/// Runs a sweep; returns exit code 130 when interrupted (the results are still written).
pub fn run(cfg: &SweepConfig) -> anyhow::Result<ExitCode> {
    kernel::raise_nofile();
    let exe = std::env::current_exe().context("cannot find this executable to start loadgen")?;
    let uring = probe::probe_uring();
    let u = kernel::uname();
    let dir = RunDir::create(&cfg.out, &u.release, &u.nodename)?;
    let mut meta = Meta::collect(
        &cfg.command,
        uring.clone(),
        (cfg.server_cpu, cfg.client_cpus.clone()),
    );
    for &b in &cfg.backlogs {
        if let Ok(m) = kernel::sysctl::read_u64("net.core.somaxconn") {
            if b as u64 > m {
                let note = format!(
                    "backlog {b} is above net.core.somaxconn={m}: the kernel applies {m} (column backlog_effective)"
                );
                eprintln!("acceptbench: warning: {note}");
                meta.notes.push(note);
            }
        }
    }
    if cfg.modes.iter().any(|m| m.is_overflow()) {
        meta.notes.push(if cfg.overflow.private_netns {
            format!(
                "burst/overload runs ran in a fresh private network namespace each (exact TcpExt counters), tcp_abort_on_overflow={}, syncookies={}, somaxconn={}",
                u8::from(cfg.overflow.netns.abort_on_overflow),
                cfg.overflow.netns.syncookies.map_or("default".into(), |v| v.to_string()),
                cfg.overflow.netns.somaxconn.map_or("default".into(), |v| v.to_string()),
            )
        } else {
            "burst/overload runs ran on the host's loopback (not root): TcpExt counters may include other traffic".to_string()
        });
    }
    meta.write(&dir.meta_json())?;
    let mut csv = SummaryWriter::create(&dir.summary_csv())?;
    let tmp = std::env::temp_dir().join(format!("acceptbench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;

    let stop = StopFlag::new();
    crate::app::stop_on_signal(&stop)?;
    // The sweep's own thread does the drain runs: it sits on the acceptor's CPU.
    loadgen::affinity::pin_current_thread(cfg.server_cpu)?;

    let plan = plan(cfg);
    let progress = ProgressBar::new(plan.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows: Vec<SummaryRow> = Vec::with_capacity(plan.len());
    let mut std_rows: HashMap<(u32, Mode, u32), SummaryRow> = HashMap::new();
    for (engine, backlog, mode, rep) in plan {
        if stop.is_raised() {
            break;
        }
        progress.set_message(format!("{engine} backlog {backlog} {} #{rep}", mode.name()));
        let support = probe::engine_support(engine, &uring);
        let mut row = if !support.supported {
            skipped_row(engine, backlog, mode, rep, &support.reason)
        } else {
            let spec = RunSpec {
                cfg,
                engine,
                backlog,
                mode,
                stop: &stop,
                exe: &exe,
                tmp: &tmp,
            };
            match run::run(&spec) {
                Ok(m) => measured_row(&dir, engine, backlog, mode, rep, &m)?,
                Err(e) => {
                    let mut r = skipped_row(engine, backlog, mode, rep, &format!("{e:#}"));
                    r.status = Some(Status::Incomplete);
                    r
                }
            }
        };
        if engine == EngineKind::Std {
            std_rows.insert((backlog, mode, rep), row.clone());
        }
        if let Some(std) = std_rows.get(&(backlog, mode, rep)) {
            row.set_ratios(std);
        }
        progress.println(line_of(&row));
        csv.append(&row)?;
        rows.push(row);
        progress.inc(1);
    }
    progress.finish_and_clear();
    let _ = std::fs::remove_dir_all(&tmp);

    meta.incomplete = stop.is_raised();
    meta.finished_utc = meta::now_utc();
    meta.write(&dir.meta_json())?;
    std::fs::write(dir.readme(), readme::render(&meta, &rows))
        .with_context(|| format!("writing {}", dir.readme().display()))?;
    if cfg.plots && !rows.is_empty() {
        // Charts are a convenience: a failure to draw never loses the measured data.
        if let Err(e) = crate::plot::plot_run_dir(&dir.path) {
            eprintln!("acceptbench: warning: plots not drawn: {e:#}");
        }
    }
    finish_message(&dir.path, &rows, meta.incomplete);
    Ok(if meta.incomplete {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Run order: per backlog and mode, every engine back to back (std first), so each
/// ratio compares runs made minutes, not the whole sweep, apart.
fn plan(cfg: &SweepConfig) -> Vec<(EngineKind, u32, Mode, u32)> {
    let mut out = Vec::new();
    for &backlog in &cfg.backlogs {
        for &mode in &cfg.modes {
            for rep in 1..=cfg.repeat {
                for &engine in &cfg.engines {
                    out.push((engine, backlog, mode, rep));
                }
            }
        }
    }
    out
}

fn skipped_row(engine: EngineKind, backlog: u32, mode: Mode, rep: u32, why: &str) -> SummaryRow {
    SummaryRow {
        engine: engine.name().into(),
        backlog,
        mode: mode.name().into(),
        repetition: rep,
        status: Some(Status::Skipped),
        note: why.to_string(),
        ..Default::default()
    }
}

/// Turns a measured run into its row and writes its histograms.
fn measured_row(
    dir: &RunDir,
    engine: EngineKind,
    backlog: u32,
    mode: Mode,
    rep: u32,
    m: &Measured,
) -> anyhow::Result<SummaryRow> {
    let report = &m.client.report;
    let from_intended = mode == Mode::Rate;
    let mut connect = new_histogram();
    let mut established = Vec::with_capacity(m.client.records.len());
    let mut latencies = Vec::new();
    for r in &m.client.records {
        if r.outcome == loadgen::Outcome::Established {
            let start = if from_intended {
                r.intended_ns
            } else {
                r.connect_start_ns
            };
            let latency = r.done_ns.saturating_sub(start).max(1);
            if !r.warmup {
                connect.saturating_record(latency);
            }
            if m.overflow.is_some() {
                latencies.push(r.done_ns.saturating_sub(r.connect_start_ns));
            }
            established.push(ClientConn {
                local: r.local,
                connect_start_ns: r.connect_start_ns,
                warmup: r.warmup,
            });
        }
    }
    let j = join::join(&established, &m.rec.peers);
    let name = engine.name();
    for (metric, h) in [
        ("connect", &connect),
        ("peer", &j.peer_e2e_ns),
        ("peer-internal", &m.rec.peer_extract_ns),
    ] {
        let path = dir.hgrm(name, backlog, mode.name(), rep, metric);
        hgrm::write_file(&path, h).with_context(|| format!("writing {}", path.display()))?;
    }
    let c = LatencyNs::of(&connect);
    let p = LatencyNs::of(&j.peer_e2e_ns);
    let pi = LatencyNs::of(&m.rec.peer_extract_ns);
    let cpu_s = m.cpu_s;
    let accepts_per_s = match m.drain {
        Some((n, ns)) if ns > 0 => n as f64 / (ns as f64 * 1e-9),
        Some(_) => 0.0,
        None => m.rec.active_accepts_per_s(),
    };
    let mut notes = Vec::new();
    if let Some(why) = &m.incomplete {
        notes.push(why.clone());
    }
    if j.unmatched() > 0 {
        notes.push(format!(
            "UNMATCHED connections: {} established by the client but never accepted, {} accepted with no client connection left, {} accepted with an address the client never used",
            j.unmatched_client, j.unmatched_server, j.unknown_peer
        ));
    }
    let errors = &report.errors;
    let mut row = SummaryRow {
        engine: name.into(),
        backlog,
        backlog_effective: m.backlog_effective,
        mode: mode.name().into(),
        repetition: rep,
        status: Some(if m.incomplete.is_some() {
            Status::Incomplete
        } else {
            Status::Ok
        }),
        note: notes.join("; "),
        duration_s: m.window_s,
        attempted: report.attempted + report.warmup_attempted,
        // Every connection the client established, warm-up included: the acceptor
        // accepted those too, and the accounting (established = accepted = matched)
        // covers them. Latency histograms leave them out.
        established: established.len() as u64,
        accepted: m.rec.accepted,
        matched: j.matched,
        unmatched: j.unmatched(),
        unmatched_client: j.unmatched_client,
        unmatched_server: j.unmatched_server,
        unknown_peer: j.unknown_peer,
        accepts_per_s,
        client_conns_per_s: report.conns_per_s,
        acceptor_cpu_s: cpu_s,
        acceptor_cpu_us_per_accept: if m.rec.accepted > 0 {
            cpu_s * 1e6 / m.rec.accepted as f64
        } else {
            0.0
        },
        loadgen_cpu_s: report.cpu_user_s + report.cpu_sys_s,
        accept_errors: m.rec.error_total(),
        connect_p50_ns: c.p50,
        connect_p99_ns: c.p99,
        connect_p999_ns: c.p999,
        connect_max_ns: c.max,
        peer_p50_ns: p.p50,
        peer_p99_ns: p.p99,
        peer_p999_ns: p.p999,
        peer_max_ns: p.max,
        peer_internal_p50_ns: pi.p50,
        peer_internal_p99_ns: pi.p99,
        refused: errors.refused,
        reset: errors.reset,
        timeout: errors.timeout,
        pending: report.pending,
        client_other_errors: errors.addr_unavailable + errors.other,
        ..Default::default()
    };
    if let Some(f) = &m.overflow {
        overflow_columns(&mut row, f, &latencies, m.acceptor_start_ns, mode);
        let path = dir.queue_csv(name, backlog, mode.name(), rep)?;
        overflow::sampler::write_csv(&path, &f.samples, f.t0_ns)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(row)
}

/// Fills the burst/overload columns of `row`.
fn overflow_columns(
    row: &mut SummaryRow,
    f: &overflow::Figures,
    latencies_ns: &[u64],
    acceptor_start_ns: u64,
    mode: Mode,
) {
    let counter = |name: &str| f.counters.get(name).copied();
    row.queue_max = Some(f.samples.max_depth());
    row.queue_mean = Some(f.samples.mean_depth());
    row.queue_limit = Some(f.samples.limit());
    row.listen_overflows = counter("ListenOverflows");
    row.listen_drops = counter("ListenDrops");
    if mode == Mode::Burst {
        row.listen_overflows_paused = f.counters_paused.get("ListenOverflows").copied();
    }
    row.reqq_full_drop = counter("TCPReqQFullDrop");
    row.reqq_full_do_cookies = counter("TCPReqQFullDoCookies");
    row.syncookies_sent = counter("SyncookiesSent");
    let modes = overflow::retry_modes(latencies_ns.iter().copied());
    let retried: u64 = modes.iter().map(|(_, n)| n).sum();
    row.syn_retry_modes = Some(overflow::format_modes(&modes));
    row.established_immediately = Some(row.established.saturating_sub(retried));
    row.overflow_outcome = Some(overflow::outcome(
        retried,
        row.timeout + row.pending,
        row.unmatched_client,
        row.reset,
    ));
    if mode == Mode::Burst && acceptor_start_ns > 0 {
        row.drain_ms = f
            .samples
            .first_empty_after(acceptor_start_ns)
            .map(|t| (t - acceptor_start_ns) as f64 / 1e6);
    }
    row.netns = Some(f.private_netns);
}

fn line_of(r: &SummaryRow) -> String {
    match r.status {
        Some(Status::Skipped) => format!(
            "{:<12} b{:<5} {:<7} skipped: {}",
            r.engine, r.backlog, r.mode, r.note
        ),
        _ => format!(
            "{:<12} b{:<5} {:<7} {:>9.0} accepts/s{} {:>6.2} µs/accept  peer p99 {:>8.1} µs  {}/{}/{} est/acc/matched{}",
            r.engine,
            r.backlog,
            r.mode,
            r.accepts_per_s,
            r.ratio_accepts_vs_std
                .map_or(String::new(), |x| format!(" ({x:.2}× std)")),
            r.acceptor_cpu_us_per_accept,
            r.peer_p99_ns as f64 / 1e3,
            r.established,
            r.accepted,
            r.matched,
            if r.note.is_empty() {
                String::new()
            } else {
                format!("  [{}]", r.note)
            }
        ),
    }
}

fn finish_message(path: &std::path::Path, rows: &[SummaryRow], incomplete: bool) {
    let unmatched: u64 = rows.iter().map(|r| r.unmatched).sum();
    if unmatched > 0 {
        eprintln!("acceptbench: WARNING: {unmatched} connections did not match between client and server; see the notes in summary.csv");
    }
    if incomplete {
        eprintln!(
            "acceptbench: interrupted; {} finished runs kept in {} (marked incomplete)",
            rows.len(),
            path.display()
        );
    } else {
        eprintln!("acceptbench: results in {}", path.display());
    }
}
