//! Runs a configuration: resolves the connect method, starts the workers (scoped threads),
//! coordinates burst rounds and progress from the calling thread, merges the workers'
//! stats and records into one result. Prints nothing: observers decide what to show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::affinity;
use crate::clock::mono_ns;
use crate::config::{Config, MethodChoice, Mode, SocketOps};
use crate::counters::ThreadStats;
use crate::driver::uring::UringDriver;
use crate::driver::Method;
use crate::error::LoadgenError;
use crate::pacer::{Limit, Pacer};
use crate::record::ConnRecord;
use crate::report::{Percentiles, Report, RoundSummary};
use crate::sock::{self, RawAddr};
use crate::worker::{
    self, Published, RoundCmd, RoundLink, RoundMsg, WorkerMsg, WorkerOutput, WorkerSpec,
};

/// Progress so far, for a progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Seconds since the run started (including warm-up).
    pub elapsed_s: f64,
    /// Measured attempts so far (published every few dozen outcomes).
    pub attempted: u64,
    /// Established so far.
    pub established: u64,
}

/// Hooks into a running run; called on the thread that called `run_with`.
pub trait Observer {
    /// Called about once a second.
    fn progress(&mut self, _progress: &Progress) {}
    /// Called when every worker has finished a burst round; the answer goes to all workers.
    fn round_done(&mut self, _round: &RoundSummary) -> RoundCmd {
        RoundCmd::Next
    }
}

/// An observer that shows nothing and runs rounds back to back.
pub struct Quiet;
impl Observer for Quiet {}

/// Everything a run produced.
pub struct RunOutput {
    /// The summary.
    pub report: Report,
    /// Per-connection records (empty unless `config.keep_records`), thread by thread.
    pub records: Vec<ConnRecord>,
    /// Merged connect-latency histogram, ns.
    pub connect_ns: Histogram<u64>,
    /// Merged served-latency histogram (`--wait-close`; empty otherwise), ns.
    pub served_ns: Histogram<u64>,
    /// One histogram per second of the measured window (empty unless `config.keep_intervals`).
    pub intervals: Vec<Histogram<u64>>,
    /// CLOCK_MONOTONIC ns at which the measured window began.
    pub measure_start_ns: u64,
}

/// Runs `config` until done or until `stop` is raised; see `run_with`.
pub fn run(config: &Config, stop: &AtomicBool) -> Result<Report, LoadgenError> {
    run_with(config, stop, &mut Quiet).map(|o| o.report)
}

/// Runs `config`, reporting progress and burst rounds to `observer`.
pub fn run_with(
    config: &Config,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Result<RunOutput, LoadgenError> {
    config.validate()?;
    check_fd_limit(config)?;
    let resolved = resolve_method(config)?;
    let threads = config.threads;
    let published: Vec<Published> = (0..threads).map(|_| Published::default()).collect();
    let t0 = mono_ns();
    let measure_start_ns = t0 + config.warmup.as_nanos() as u64;
    let burst = matches!(config.mode, Mode::Burst { .. });
    let (msg_tx, msg_rx) = mpsc::channel::<WorkerMsg>();
    let mut cmd_txs = Vec::new();

    let mut specs = Vec::with_capacity(threads);
    let mut done_txs = Vec::with_capacity(threads);
    for (i, published_i) in published.iter().enumerate() {
        done_txs.push(msg_tx.clone());
        let rounds = if burst {
            let (tx, rx) = mpsc::channel();
            cmd_txs.push(tx);
            Some(RoundLink {
                tx: msg_tx.clone(),
                rx,
            })
        } else {
            None
        };
        specs.push(WorkerSpec {
            index: i,
            config,
            method: resolved.method,
            socket_ops: resolved.socket_ops,
            slots: config.per_thread_slots(i),
            pacer: pacer_for(config, i, t0, measure_start_ns),
            measure_start_ns,
            stop,
            published: published_i,
            rounds,
        });
    }
    drop(msg_tx);

    let (results, round_msgs): (Vec<Result<WorkerOutput, LoadgenError>>, Vec<RoundMsg>) =
        std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .into_iter()
                .zip(done_txs)
                .map(|(spec, done)| {
                    std::thread::Builder::new()
                        .name(format!("loadgen-{}", spec.index))
                        .spawn_scoped(scope, move || {
                            let r = worker::run_worker(spec);
                            let _ = done.send(WorkerMsg::Done);
                            r
                        })
                })
                .collect();
            let mut round_msgs = Vec::new();
            if handles.iter().all(|h| h.is_ok()) {
                let finished = || {
                    let n = handles
                        .iter()
                        .filter(|h| h.as_ref().is_ok_and(|h| h.is_finished()))
                        .count();
                    (n > 0, n == handles.len())
                };
                round_msgs = coordinate(
                    config, t0, &published, &msg_rx, &cmd_txs, observer, finished,
                );
            }
            // Workers waiting for a round command see the channel close and stop.
            drop(cmd_txs);
            let results = handles
                .into_iter()
                .enumerate()
                .map(|(i, h)| match h {
                    Ok(h) => h.join().unwrap_or(Err(LoadgenError::WorkerPanicked(i))),
                    Err(e) => Err(LoadgenError::io("cannot start worker thread", e)),
                })
                .collect();
            (results, round_msgs)
        });

    let mut outputs = Vec::with_capacity(threads);
    for r in results {
        outputs.push(r?);
    }
    Ok(merge(
        config,
        resolved,
        measure_start_ns,
        outputs,
        collect_rounds(round_msgs),
    ))
}

/// Progress ticks and burst-round coordination until every worker has finished.
fn coordinate(
    config: &Config,
    t0: u64,
    published: &[Published],
    msg_rx: &mpsc::Receiver<WorkerMsg>,
    cmd_txs: &[mpsc::Sender<RoundCmd>],
    observer: &mut dyn Observer,
    finished: impl Fn() -> (bool, bool),
) -> Vec<RoundMsg> {
    let mut next_tick = t0 + 1_000_000_000;
    let mut pending: Vec<RoundMsg> = Vec::new();
    let mut rounds_seen: Vec<RoundMsg> = Vec::new();
    let last_round = if let Mode::Burst { rounds } = config.mode {
        rounds.saturating_sub(1)
    } else {
        0
    };
    let mut stopped_early = false;
    let mut done = 0;
    // Bounded by the workers, which all end (duration, count, timeouts, stop flag).
    loop {
        let (any, all) = finished();
        if all || done == config.threads {
            break;
        }
        if any && !stopped_early {
            // A worker ended early (an error): release any worker waiting for a round command.
            stopped_early = true;
            for tx in cmd_txs {
                let _ = tx.send(RoundCmd::Stop);
            }
        }
        let wait_ns = next_tick
            .saturating_sub(mono_ns())
            .clamp(1_000_000, 100_000_000);
        match msg_rx.recv_timeout(Duration::from_nanos(wait_ns)) {
            Ok(WorkerMsg::Done) => done += 1,
            Ok(WorkerMsg::Round(m)) => {
                pending.push(m);
                if pending.len() == config.threads {
                    let summary = summarize_round(&pending);
                    rounds_seen.append(&mut pending);
                    let mut cmd = observer.round_done(&summary);
                    if summary.round >= last_round {
                        cmd = RoundCmd::Stop;
                    }
                    for tx in cmd_txs {
                        let _ = tx.send(cmd);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(5))
            }
        }
        let now = mono_ns();
        if now >= next_tick {
            next_tick += 1_000_000_000;
            let p = Progress {
                elapsed_s: (now - t0) as f64 / 1e9,
                attempted: published
                    .iter()
                    .map(|p| p.attempted.load(Ordering::Relaxed))
                    .sum(),
                established: published
                    .iter()
                    .map(|p| p.established.load(Ordering::Relaxed))
                    .sum(),
            };
            observer.progress(&p);
        }
    }
    rounds_seen
}

fn collect_rounds(msgs: Vec<RoundMsg>) -> Vec<RoundSummary> {
    let mut out: Vec<RoundSummary> = Vec::new();
    let max_round = msgs.iter().map(|m| m.round).max();
    if let Some(max_round) = max_round {
        for round in 0..=max_round {
            let these: Vec<RoundMsg> = msgs.iter().filter(|m| m.round == round).copied().collect();
            if !these.is_empty() {
                out.push(summarize_round(&these));
            }
        }
    }
    out
}

fn summarize_round(msgs: &[RoundMsg]) -> RoundSummary {
    let start = msgs.iter().map(|m| m.start_ns).min().unwrap_or(0);
    let known = msgs.iter().map(|m| m.known_ns).max().unwrap_or(start);
    RoundSummary {
        round: msgs.first().map_or(0, |m| m.round),
        attempted: msgs.iter().map(|m| m.attempted).sum(),
        established: msgs.iter().map(|m| m.established).sum(),
        pending: msgs.iter().map(|m| m.pending).sum(),
        errors: msgs.iter().map(|m| m.errors).sum(),
        duration_s: known.saturating_sub(start) as f64 / 1e9,
    }
}

fn merge(
    config: &Config,
    Resolved {
        method,
        note: method_note,
        ring_setup,
        socket_ops,
    }: Resolved,
    measure_start_ns: u64,
    outputs: Vec<WorkerOutput>,
    rounds: Vec<RoundSummary>,
) -> RunOutput {
    let mut stats = ThreadStats::new(measure_start_ns, config.keep_intervals);
    let mut records = Vec::with_capacity(outputs.iter().map(|o| o.records.len()).sum());
    let (mut cpu_user_s, mut cpu_sys_s, mut last_done_ns, mut interrupted) =
        (0.0, 0.0, 0u64, false);
    for o in outputs {
        stats.merge(&o.stats);
        records.extend(o.records);
        cpu_user_s += o.cpu_user_s;
        cpu_sys_s += o.cpu_sys_s;
        last_done_ns = last_done_ns.max(o.last_done_ns);
        interrupted |= o.interrupted;
    }
    let duration_s = match config.mode {
        Mode::Burst { .. } => rounds.iter().map(|r| r.duration_s).sum(),
        _ => last_done_ns.saturating_sub(measure_start_ns) as f64 / 1e9,
    };
    let per = |n: u64, d: f64| if d > 0.0 { n as f64 / d } else { 0.0 };
    let report = Report {
        mode: config.mode.name().into(),
        target: config.target.to_string(),
        method: method.name().into(),
        method_note,
        ring_setup,
        socket_ops: socket_ops.name().into(),
        threads: config.threads,
        concurrency: config.concurrency,
        rate_per_s: if let Mode::Rate { rate_per_s } = config.mode {
            Some(rate_per_s)
        } else {
            None
        },
        attempted: stats.attempted,
        established: stats.established,
        pending: stats.pending,
        errors: stats.errors.clone(),
        warmup_attempted: stats.warmup_attempted,
        wait_close_timeouts: stats.wait_close_timeouts,
        serve: config.wait_close.then(|| stats.serve.clone()),
        served_ns: config.wait_close.then(|| Percentiles::of(&stats.served_ns)),
        duration_s,
        conns_per_s: per(stats.established, duration_s),
        connect_ns: Percentiles::of(&stats.connect_ns),
        schedule_lag_ns: matches!(config.mode, Mode::Rate { .. })
            .then(|| Percentiles::of(&stats.lag_ns)),
        cpu_user_s,
        cpu_sys_s,
        conns_per_cpu_s: per(stats.established, cpu_user_s + cpu_sys_s),
        rounds,
        interrupted,
        kernel: None,
    };
    RunOutput {
        report,
        records,
        connect_ns: stats.connect_ns,
        served_ns: stats.served_ns,
        intervals: stats.intervals,
        measure_start_ns,
    }
}

fn pacer_for(config: &Config, thread: usize, t0: u64, measure_start_ns: u64) -> Pacer {
    let limit = Limit {
        measure_start_ns,
        end_ns: config
            .duration
            .map(|d| measure_start_ns + d.as_nanos() as u64),
        remaining: config.per_thread_connections(thread),
        halted: false,
    };
    match config.mode {
        Mode::Closed => Pacer::Closed { limit },
        Mode::Rate { rate_per_s } => Pacer::Rate {
            origin_ns: t0,
            period_ns: 1e9 / rate_per_s,
            threads: config.threads as u64,
            thread: thread as u64,
            k: 0,
            limit,
        },
        Mode::Burst { .. } => Pacer::Burst {
            size: config.per_thread_connections(thread).unwrap_or(0),
            issued: 0,
        },
    }
}

/// The connect method a run uses, and how.
struct Resolved {
    method: Method,
    /// Why it is not what was asked for, when it is not.
    note: Option<String>,
    /// io_uring: the ring's set-up as applied.
    ring_setup: Option<String>,
    /// `Syscall` or `Ring` (never `Auto`).
    socket_ops: SocketOps,
}

/// Picks the connect method: the one asked for, or the best available, with a note
/// when it is not the one asked for and, for io_uring, the ring set-up applied and
/// where sockets are made and closed.
///
/// One connect in flight per thread: a blocking connect needs no readiness notification
/// (on loopback the handshake completes inside connect()) and is the cheapest way to run
/// one at a time. Several in flight per thread (the closed-mode default, rate, burst) use
/// io_uring, or epoll where io_uring cannot be set up (the note says why). Sockets are
/// made and closed in the ring when asked (`ring`: never falls back, fails saying why)
/// or when the kernel can (`auto`: else system calls, and the note says why).
fn resolve_method(config: &Config) -> Result<Resolved, LoadgenError> {
    let plain = |method| Resolved {
        method,
        note: None,
        ring_setup: None,
        socket_ops: SocketOps::Syscall,
    };
    let ring_ops = config.socket_ops == SocketOps::Ring;
    let one_per_thread = config.concurrency == config.threads
        && !matches!(config.mode, Mode::Burst { .. })
        && !ring_ops;
    match config.method {
        MethodChoice::Blocking => return Ok(plain(Method::Blocking)),
        MethodChoice::Epoll => return Ok(plain(Method::Epoll)),
        MethodChoice::Std if one_per_thread => return Ok(plain(Method::Blocking)),
        MethodChoice::Std => return Ok(plain(Method::Epoll)),
        MethodChoice::Auto if one_per_thread => return Ok(plain(Method::Blocking)),
        MethodChoice::Auto | MethodChoice::Uring => {}
    }
    let target = RawAddr::new(&config.target);
    let slots = config.per_thread_slots(0);
    let try_ops = |ops| {
        let choice = crate::worker::ring_choice(config, ops);
        UringDriver::new(target, slots, config.wait_close, choice)
            .map(|d| d.ring_setup_applied().to_string())
    };
    let mut note = None;
    if config.socket_ops != SocketOps::Syscall {
        match try_ops(SocketOps::Ring) {
            Ok(applied) => {
                return Ok(Resolved {
                    method: Method::Uring,
                    note: None,
                    ring_setup: Some(applied),
                    socket_ops: SocketOps::Ring,
                })
            }
            Err(why) if ring_ops => {
                return Err(LoadgenError::BadOption(format!(
                    "--socket-ops ring cannot be used here: {why}; use --socket-ops syscall"
                )))
            }
            Err(why) => note = Some(format!("sockets by system call: {why}")),
        }
    }
    match try_ops(SocketOps::Syscall) {
        Ok(applied) => Ok(Resolved {
            method: Method::Uring,
            note,
            ring_setup: Some(applied),
            socket_ops: SocketOps::Syscall,
        }),
        Err(why) => Ok(Resolved {
            note: Some(format!("io_uring unavailable, used epoll: {why}")),
            ..plain(Method::Epoll)
        }),
    }
}

/// Sockets open at once must fit RLIMIT_NOFILE (raised to the hard limit first).
fn check_fd_limit(config: &Config) -> Result<(), LoadgenError> {
    let limit = sock::raise_nofile_limit();
    let needed = config.concurrency as u64 + 64;
    if needed > limit {
        return Err(LoadgenError::FdLimit {
            needed: config.concurrency as u64,
            limit,
            needed_with_slack: needed,
        });
    }
    Ok(())
}

/// CPU seconds (user, sys) of the whole process, for callers that want the total.
pub fn process_cpu_s() -> (f64, f64) {
    affinity::process_cpu_s()
}
