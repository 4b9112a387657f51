//! The commands: one function each, called by `main` with a validated config.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use common::ktrace::view::{KernelView, Session};

use crate::acceptors::{self, ListenTeam, ListenerSet, Sharing};
use crate::config::{Command, ListenConfig};
use crate::engine::{self, EngineKind, Limits, StopFlag};
use crate::kernel::account::Accepted;
use crate::kernel::{self, probe, sysctl};
use crate::listener::Listener;
use crate::record::{PeerRecord, Recorder};
use crate::stdout;
use crate::summary::{ListenSummary, ProbeReport};

/// Runs one command to completion.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Probe { json } => {
            let report = probe_report();
            if json {
                stdout::println(serde_json::to_string_pretty(&report)?)?;
            } else {
                stdout::print(report.to_text())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Listen(cfg) => listen(&cfg),
        Command::Sweep(cfg) => crate::sweep::run(&cfg),
        Command::Compare(cfg) => crate::compare::run(&cfg),
        Command::Plot(cfg) => crate::plot::run(&cfg),
        Command::PlotTimeline { file, out } => crate::plot::timeline::run(&file, out.as_deref()),
        Command::Merge(cfg) => crate::merge::run(&cfg),
        Command::Join(cfg) => crate::hostjoin::run(&cfg),
        Command::Loadgen(args) => Ok(loadgen::cli_main(args)),
        Command::HostInfo { clock } => host_info(clock),
    }
}

/// `host-info`: one JSON line; with `clock`, then the wall clock for every stdin line.
fn host_info(clock: bool) -> anyhow::Result<ExitCode> {
    use std::io::BufRead;
    stdout::println(serde_json::to_string(&crate::sweep::ssh::this_host())?)?;
    if clock {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            stdout::println(common::record_header::realtime_ns())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Kernel facts and engine support.
pub fn probe_report() -> ProbeReport {
    let u = kernel::uname();
    let uring = probe::probe_uring();
    ProbeReport {
        kernel_release: u.release,
        kernel_version: u.version,
        machine: u.machine,
        sysctls: sysctl::snapshot(),
        rlimit_nofile: kernel::rlimit_nofile().0,
        cpus: common::affinity::available_cpus(),
        virtualised: kernel::virtualisation(),
        engines: EngineKind::ALL
            .iter()
            .map(|&k| crate::engine::engine_support(k, &uring))
            .collect(),
        io_uring: uring,
    }
}

/// `listen`: the classic server, instrumented.
fn listen(cfg: &ListenConfig) -> anyhow::Result<ExitCode> {
    kernel::raise_nofile();
    if cfg.acceptors > 1 || cfg.sharing != Sharing::Shared {
        return listen_many(cfg);
    }
    let mut acceptor = engine::build(cfg.engine, &cfg.options)?;
    let listener = Listener::bind(&cfg.listener)?;
    warn_about(cfg, &listener);
    peer_op_note(cfg);
    // Ring, tables and runtime are set up (or refused) before the server says it listens.
    let mut rec = Recorder::new(cfg.records.is_some());
    engine::set_up(acceptor.as_mut(), &listener, &mut rec)?;
    let session = start_trace(cfg, listener.local_addr.port())?;
    // On stderr in JSON mode too: it tells a script (or a test) that the server listens.
    eprintln!(
        "acceptbench: {} listening on {} (backlog {}, effective {}); Ctrl-C to stop",
        cfg.engine, listener.local_addr, listener.backlog_requested, listener.backlog_effective
    );
    if let Some(&cpu) = cfg.cpus.first() {
        common::affinity::pin_current_thread(cpu)?;
    }
    let stop = StopFlag::new();
    crate::signal::stop_on_signal(&stop)?;
    let start = Instant::now();
    let limits = Limits {
        count: cfg.count,
        deadline: cfg.duration.map(|d| start + d),
        stop,
    };
    // The records file's clock anchor is taken as listening starts.
    let record_meta = cfg
        .records
        .as_ref()
        .map(|(_, run_id)| loadgen::RecordMeta::here(Some(listener.local_addr), run_id));
    if cfg.print_peers {
        let mut out = std::io::LineWriter::new(std::io::stdout());
        // SocketAddr's Display writes IPv6 as [ip]:port, the form users paste into tools.
        rec = rec.with_observer(Box::new(move |peer| {
            let _ = writeln!(out, "{peer}");
        }));
    }
    let cpu0 = common::affinity::thread_cpu_s();
    let timed = crate::timing::timed_run(acceptor.as_mut(), &listener, &limits, &mut rec);
    let cpu1 = common::affinity::thread_cpu_s();
    let window = crate::summary::ListenWindow::of(std::slice::from_ref(&timed), &rec);
    let result = timed.result;
    let wall_s = start.elapsed().as_secs_f64();
    if let (false, Some(applied)) = (cfg.json, acceptor.ring_setup_applied()) {
        eprintln!("acceptbench: io_uring setup {applied}");
    }
    let mut summary = ListenSummary::new(
        cfg.engine.name(),
        listener.local_addr.to_string(),
        (listener.backlog_requested, listener.backlog_effective),
        &rec,
        wall_s,
        (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1),
        window,
    );
    summary.engine_counters = acceptor.counters();
    let peers = cfg.records.is_some().then_some(&rec.peers[..]);
    summary.kernel = finish_trace(
        cfg,
        session,
        peers,
        "give --records FILE (listen keeps its accepts only then)",
    )?;
    if let (Some((path, _)), Some(meta)) = (&cfg.records, &record_meta) {
        crate::serverrec::write(path, meta, &rec.peers)
            .map_err(|e| anyhow::anyhow!("cannot write --records: {e}"))?;
    }
    if cfg.json {
        stdout::println(serde_json::to_string(&summary)?)?;
    } else {
        stdout::print(summary.to_text())?;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr that the kernel clamped the backlog, and when the direct table is
/// smaller than a full accept queue.
fn warn_about(cfg: &ListenConfig, listener: &Listener) {
    if listener.is_clamped() {
        eprintln!(
            "acceptbench: warning: backlog {} was clamped by the kernel to {} (net.core.somaxconn); raise it with `sysctl -w net.core.somaxconn={}` to get the backlog you asked for",
            listener.backlog_requested, listener.backlog_effective, listener.backlog_requested
        );
    }
    if let Some(note) = engine::direct_table_note(&cfg.options, listener.backlog_effective) {
        eprintln!("acceptbench: note: {note}");
    }
}

/// `listen --trace kernel`: starts recording the port; where that is not possible
/// says why on stderr and goes on, unless `--trace-required`.
fn start_trace(cfg: &ListenConfig, port: u16) -> anyhow::Result<Session> {
    let session = Session::start(cfg.trace_kernel, cfg.trace_required, port)?;
    if let Some(w) = session.warning() {
        eprintln!("acceptbench: warning: {w}");
    }
    Ok(session)
}

/// Stops the recording: the kernel's view for the summary (queue waits from `peers`,
/// the accepts listen kept, if any; else `no_accepts` says why there are none), and
/// the per-connection timeline written to `--trace-out`.
fn finish_trace(
    cfg: &ListenConfig,
    session: Session,
    peers: Option<&[PeerRecord]>,
    no_accepts: &str,
) -> anyhow::Result<Option<KernelView>> {
    let accepts: Option<Vec<Accepted>> = peers.map(|p| {
        p.iter()
            .map(|p| Accepted {
                peer: p.peer,
                at_ns: p.accepted_ns,
            })
            .collect()
    });
    let Some(traced) = session.finish(accepts.as_deref()) else {
        return Ok(None);
    };
    if let Some(path) = &cfg.trace_out {
        traced
            .write_trace_out(path, "acceptbench")
            .with_context(|| format!("cannot write --trace-out {}", path.display()))?;
    }
    Ok(Some(KernelView::of(
        &traced,
        accepts.is_none().then_some(no_accepts),
    )))
}

/// `listen --acceptors N` (or `--sharing reuseport`): N acceptor threads, each its own
/// engine, on one shared listener or on N SO_REUSEPORT listeners of one port.
fn listen_many(cfg: &ListenConfig) -> anyhow::Result<ExitCode> {
    let set = ListenerSet::bind(&cfg.listener, cfg.acceptors, cfg.sharing)?;
    let first = set.first();
    let session = start_trace(cfg, first.local_addr.port())?;
    let early = set_up_and_announce(cfg, &set)?;
    let stop = StopFlag::new();
    crate::signal::stop_on_signal(&stop)?;
    let start = Instant::now();
    let outs = acceptors::run_listen(&ListenTeam {
        set: &set,
        engine: cfg.engine,
        options: &cfg.options,
        slow: cfg.slow_acceptor,
        cpus: &cfg.cpus,
        count: cfg.count,
        deadline: cfg.duration.map(|d| start + d),
        stop: &stop,
        print_peers: cfg.print_peers,
    })?;
    let wall_s = start.elapsed().as_secs_f64();
    let counts: Vec<u64> = outs.iter().map(|o| o.rec.accepted).collect();
    let cpu = outs
        .iter()
        .fold((0.0, 0.0), |a, o| (a.0 + o.cpu.0, a.1 + o.cpu.1));
    let ring_setup = outs.first().and_then(|o| o.ring_setup.clone());
    let counters = outs.first().map(|o| o.counters).unwrap_or_default();
    let mut result = Ok(());
    let mut recs = Vec::with_capacity(outs.len());
    let mut timed = Vec::with_capacity(outs.len());
    for mut o in outs {
        if result.is_ok() {
            result = std::mem::replace(&mut o.timed.result, Ok(()));
        }
        recs.push(o.rec);
        timed.push(o.timed);
    }
    let (mut rec, _) = acceptors::merge(recs);
    rec.absorb(early);
    let window = crate::summary::ListenWindow::of(&timed, &rec);
    if let (false, Some(applied)) = (cfg.json, ring_setup) {
        eprintln!("acceptbench: io_uring setup {applied}");
    }
    let mut summary = ListenSummary::new(
        cfg.engine.name(),
        first.local_addr.to_string(),
        (first.backlog_requested, first.backlog_effective),
        &rec,
        wall_s,
        cpu,
        window,
    );
    summary.engine_counters = counters;
    summary.kernel = finish_trace(
        cfg,
        session,
        None,
        "listen with several acceptors keeps no accepts",
    )?;
    summary.acceptors = Some(crate::summary::AcceptorSummary {
        sharing: cfg.sharing.name().into(),
        listeners: set.all().len() as u32,
        accepted: counts.clone(),
        fairness: acceptors::fairness(&counts),
        futile_wakeups: cfg
            .engine
            .counts_futile_wakeups()
            .then_some(rec.futile_wakeups),
    });
    if cfg.json {
        stdout::println(serde_json::to_string(&summary)?)?;
    } else {
        stdout::print(summary.to_text())?;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Says which in-ring peer read `uring-linked` uses (`--peer-op`, auto resolved by the
/// io_uring probe).
fn peer_op_note(cfg: &ListenConfig) {
    if cfg.engine == EngineKind::UringLinked {
        let how = match cfg.options.peer_op {
            engine::PeerOp::Getsockname => "getsockname with the peer flag (Linux 6.19)",
            _ => "getsockopt(SO_PEERNAME) (Linux 6.7)",
        };
        eprintln!("acceptbench: note: uring-linked reads each peer in the ring with {how}");
    }
}

/// `listen` with several acceptors, before they start: warns about a clamped backlog
/// and a small direct table, sets one engine up (so that what the kernel refuses is
/// refused before the server says it listens) and says it listens. Returns what that
/// engine recorded (a connection it took meanwhile is counted, not lost).
fn set_up_and_announce(cfg: &ListenConfig, set: &ListenerSet) -> anyhow::Result<Recorder> {
    let first = set.first();
    if first.is_clamped() {
        eprintln!(
            "acceptbench: warning: backlog {} was clamped by the kernel to {} (net.core.somaxconn)",
            first.backlog_requested, first.backlog_effective
        );
    }
    if let Some(note) = engine::direct_table_note(&cfg.options, first.backlog_effective) {
        eprintln!("acceptbench: note: {note}");
    }
    peer_op_note(cfg);
    // One engine set up here first, so that what the kernel refuses (a ring, a direct
    // table) is refused before the server says it listens; each acceptor thread then
    // sets up its own. A connection it took meanwhile is counted below, not lost.
    let mut early = Recorder::new(false);
    engine::set_up(
        engine::build(cfg.engine, &cfg.options)?.as_mut(),
        first,
        &mut early,
    )?;
    // On stderr in JSON mode too: it tells a script (or a test) that the server listens.
    eprintln!(
        "acceptbench: {} × {} ({}, {} listener{}) on {} (backlog {} each, effective {}); Ctrl-C to stop",
        cfg.acceptors,
        cfg.engine,
        cfg.sharing,
        set.all().len(),
        if set.all().len() == 1 { "" } else { "s" },
        first.local_addr,
        first.backlog_requested,
        first.backlog_effective
    );
    Ok(early)
}
