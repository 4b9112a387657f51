//! One measured run: an engine on a fresh listener, driven by a loadgen child.
//!
//! `closed` and `rate`: the acceptor runs in its own pinned thread while loadgen
//! connects; when loadgen ends, the run waits until the accept queue is empty and
//! then stops the acceptor. `drain`: the acceptor is paused while loadgen fills the
//! queue with backlog+1 connections, then drains it back to back; repeated until the
//! run's time is used.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::client::{self, Client, ClientResult};
use crate::config::{Mode, SweepConfig};
use crate::engine::{self, EngineKind, Limits, StopFlag};
use crate::listener::{Listener, ListenerSpec};
use crate::record::Recorder;

type Counters = std::collections::BTreeMap<String, u64>;

/// What one run measured, before it is turned into a summary row.
pub struct Measured {
    /// The acceptor's records (peers kept for the join).
    pub rec: Recorder,
    /// Acceptor thread CPU (user + sys) while its engine ran, s (CLOCK_THREAD_CPUTIME_ID).
    pub cpu_s: f64,
    /// Accept-queue limit the kernel applied.
    pub backlog_effective: u32,
    /// loadgen's report and records.
    pub client: ClientResult,
    /// Drain mode: Σ(accepted − 1) over rounds and Σ drain time (ns) — the server-bound rate.
    pub drain: Option<(u64, u64)>,
    /// Set when the run was cut short (Ctrl-C) or something failed part-way.
    pub incomplete: Option<String>,
    /// Wall time of the measured window, s.
    pub window_s: f64,
    /// CLOCK_MONOTONIC ns when the acceptor started accepting (after any pause).
    pub acceptor_start_ns: u64,
    /// Burst/overload: queue samples and counter deltas.
    pub overflow: Option<crate::overflow::Figures>,
    /// Burst/overload: TcpExt counters when the acceptor started accepting.
    pub counters_at_start: Option<std::collections::BTreeMap<String, u64>>,
}

/// Everything a run needs.
pub struct RunSpec<'a> {
    /// The sweep's settings.
    pub cfg: &'a SweepConfig,
    /// Engine.
    pub engine: EngineKind,
    /// Backlog.
    pub backlog: u32,
    /// Mode.
    pub mode: Mode,
    /// The sweep's stop flag (Ctrl-C).
    pub stop: &'a StopFlag,
    /// This executable, started again as `loadgen`.
    pub exe: &'a Path,
    /// Scratch directory for the child's records.
    pub tmp: &'a Path,
}

/// Runs one (engine, backlog, mode).
pub fn run(spec: &RunSpec) -> anyhow::Result<Measured> {
    if spec.mode.is_overflow() && spec.cfg.overflow.private_netns {
        // A fresh namespace per overflow run: exact counters, our own sysctls. This
        // thread (and what it starts later) stays in it; loopback works the same there.
        crate::kernel::netns::enter_private(&spec.cfg.overflow.netns)?;
    }
    let listener = Listener::bind(&ListenerSpec {
        addr: crate::config::sweep_listen_addr(),
        backlog: spec.backlog,
        reuse_port: false,
        dual_stack: false,
    })?;
    match spec.mode {
        Mode::Closed | Mode::Rate => run_driven(spec, &listener, Duration::ZERO),
        Mode::Drain => run_drain(spec, &listener),
        Mode::Burst | Mode::Overload => crate::overflow::run(spec, &listener),
    }
}

fn loadgen_args(spec: &RunSpec, target: SocketAddr) -> Vec<String> {
    let cfg = spec.cfg;
    let mode = match spec.mode {
        Mode::Closed => "closed",
        Mode::Rate | Mode::Overload => "rate",
        Mode::Drain | Mode::Burst => "burst",
    };
    let mut args = client::base_args(target, mode, cfg.client_threads, &cfg.client_cpus);
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    match spec.mode {
        Mode::Closed | Mode::Rate => {
            args.extend(["--duration".into(), ms(cfg.duration)]);
            if !cfg.warmup.is_zero() {
                args.extend(["--warmup".into(), ms(cfg.warmup)]);
            }
            if spec.mode == Mode::Closed {
                let total = cfg.client_concurrency * cfg.client_threads;
                args.extend(["--concurrency".into(), total.to_string()]);
            }
            if spec.mode == Mode::Rate {
                args.extend(["--rate".into(), cfg.rate.to_string()]);
            }
        }
        Mode::Drain => {}
        Mode::Burst => args.extend([
            "--connections".into(),
            cfg.overflow.burst_for(spec.backlog).to_string(),
            "--connect-timeout".into(),
            ms(cfg.overflow.connect_timeout),
        ]),
        Mode::Overload => args.extend([
            "--rate".into(),
            cfg.rate.to_string(),
            "--duration".into(),
            ms(cfg.duration),
            "--connect-timeout".into(),
            ms(cfg.overflow.connect_timeout),
        ]),
    }
    args
}

/// closed / rate / burst / overload: acceptor thread + loadgen child at the same
/// time; the acceptor starts accepting `pause` after loadgen was started.
pub(crate) fn run_driven(
    spec: &RunSpec,
    listener: &Listener,
    pause: Duration,
) -> anyhow::Result<Measured> {
    let cfg = spec.cfg;
    let run_stop = StopFlag::new();
    // A safety net only: the run normally ends when loadgen does.
    let deadline = Instant::now()
        + cfg.duration
        + cfg.warmup
        + pause
        + cfg.overflow.connect_timeout
        + Duration::from_secs(30);
    let mut options = cfg.options.clone();
    if spec.mode == Mode::Overload {
        options.accept_delay = Some(cfg.overflow.accept_delay).filter(|d| !d.is_zero());
    }
    let options = &options;
    let args = loadgen_args(spec, listener.local_addr);
    std::thread::scope(|s| {
        type AcceptorOut = (Recorder, f64, u64, Option<Counters>);
        let acceptor = s.spawn(|| -> anyhow::Result<AcceptorOut> {
            loadgen::affinity::pin_current_thread(cfg.server_cpu)?;
            let mut engine = engine::build(spec.engine, options)?;
            if !pause.is_zero() {
                wait_for_burst(listener, pause, &run_stop, spec.stop);
            }
            // What the full queue turned away while nobody accepted.
            let counters = spec
                .mode
                .is_overflow()
                .then(|| crate::kernel::netstat::read_tcpext().ok())
                .flatten();
            let start_ns = loadgen::clock::mono_ns();
            let limits = Limits {
                count: None,
                deadline: Some(deadline),
                stop: run_stop.clone(),
            };
            let mut rec = Recorder::new(true);
            let c0 = loadgen::affinity::thread_cpu_total_s();
            let result = engine.run(listener, &limits, &mut rec);
            let c1 = loadgen::affinity::thread_cpu_total_s();
            result?;
            Ok((rec, c1 - c0, start_ns, counters))
        });
        let started = Instant::now();
        let outcome = (|| -> anyhow::Result<(ClientResult, Option<String>)> {
            let mut child = Client::spawn(spec.exe, spec.tmp, &args, false)?;
            let mut interrupted = None;
            while !child.has_exited() {
                if spec.stop.is_raised() && interrupted.is_none() {
                    child.interrupt();
                    interrupted = Some("interrupted (Ctrl-C) during the run".to_string());
                }
                if acceptor.is_finished() && interrupted.is_none() {
                    // The acceptor failed (or hit the safety deadline): stop the client too.
                    child.interrupt();
                    interrupted.get_or_insert_with(|| "the acceptor stopped early".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            // loadgen ends on its own after its duration; the limit only guards a stuck child.
            let result = child.finish(cfg.duration + cfg.warmup + Duration::from_secs(30))?;
            // Every connection the client completed sits in the accept queue or was
            // accepted; let the acceptor empty the queue before stopping it.
            let drained = client::wait_until(Duration::from_secs(3), || {
                listener.queue_info().map_or(true, |q| q.depth == 0)
            });
            if !drained {
                interrupted
                    .get_or_insert_with(|| "the accept queue did not drain within 3 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
            Ok((result, interrupted))
        })();
        let window_s = started.elapsed().as_secs_f64();
        run_stop.raise();
        let acceptor = acceptor
            .join()
            .map_err(|_| anyhow::anyhow!("the acceptor thread panicked"))?;
        let (rec, cpu_s, acceptor_start_ns, counters_at_start) = acceptor?;
        let (client, incomplete) = outcome?;
        Ok(Measured {
            counters_at_start,
            acceptor_start_ns,
            overflow: None,
            rec,
            cpu_s,
            backlog_effective: listener.backlog_effective,
            window_s: client
                .report
                .duration_s
                .max(0.0)
                .min(window_s)
                .max(f64::MIN_POSITIVE),
            client,
            drain: None,
            incomplete,
        })
    })
}

/// Paused: the accept queue fills (and overflows) while nobody accepts. Resumes once
/// the queue has held connections, unchanged, for `settle` — the burst has arrived,
/// however long the client took to start (seconds under emulation) — or after 10 s.
fn wait_for_burst(listener: &Listener, settle: Duration, run_stop: &StopFlag, stop: &StopFlag) {
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut last = (u32::MAX, Instant::now());
    while Instant::now() < give_up && !run_stop.is_raised() && !stop.is_raised() {
        let depth = listener.queue_info().map_or(0, |q| q.depth);
        if depth != last.0 {
            last = (depth, Instant::now());
        } else if depth > 0 && last.1.elapsed() >= settle {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// drain: fill the queue (acceptor paused), drain it back to back, repeat.
fn run_drain(spec: &RunSpec, listener: &Listener) -> anyhow::Result<Measured> {
    let cfg = spec.cfg;
    let fill = listener.backlog_effective as u64 + 1;
    let mut args = loadgen_args(spec, listener.local_addr);
    args.extend([
        "--connections".into(),
        fill.to_string(),
        "--rounds".into(),
        "1000000".into(),
        "--sync-stdio".into(),
        // Each round's connections are reset by the client once established: they stay
        // in the accept queue, and the acceptor's close() no longer does the client's
        // FIN handling on loopback — the same as the C reference's pre-filled drain.
        "--close-early".into(),
        // Everything fits in the queue, so each connect completes in microseconds;
        // a generous timeout only matters if the kernel disagrees.
        "--connect-timeout".into(),
        "2s".into(),
    ]);
    // This thread is the acceptor: pin it and build the engine once.
    loadgen::affinity::pin_current_thread(cfg.server_cpu)?;
    let mut engine = engine::build(spec.engine, &cfg.options)?;
    let mut rec = Recorder::new(true);
    let mut child = Client::spawn(spec.exe, spec.tmp, &args, true)?;
    let started = Instant::now();
    let mut cpu_s = 0.0;
    let (mut drained, mut drain_ns) = (0u64, 0u64);
    let mut incomplete = None;
    loop {
        // A round is a fill (≤ backlog+1 connects, microseconds each on loopback) plus
        // the connect timeout at most; longer means the child is stuck.
        let line = match child.read_line(Duration::from_secs(12)) {
            Ok(line) => line,
            Err(e) => {
                incomplete = Some(format!("{e:#}"));
                break;
            }
        };
        let Some(line) = line else {
            incomplete = Some("loadgen ended before the run's time was used".to_string());
            break;
        };
        let Some(established) = parse_round(&line) else {
            continue;
        };
        let before = rec.accepted;
        let limits = Limits {
            count: Some(before + established),
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            stop: spec.stop.clone(),
        };
        let c0 = loadgen::affinity::thread_cpu_total_s();
        let result = engine.run(listener, &limits, &mut rec);
        cpu_s += loadgen::affinity::thread_cpu_total_s() - c0;
        result.context("draining the accept queue")?;
        let got = rec.accepted - before;
        if got >= 2 {
            let first = rec.peers[before as usize].accepted_ns;
            drained += got - 1;
            drain_ns += rec.last_accept_ns.saturating_sub(first);
        }
        if got < established && !spec.stop.is_raised() {
            incomplete = Some(format!(
                "a round accepted {got} of {established} queued connections within 5 s"
            ));
        }
        let done = started.elapsed() >= cfg.duration || spec.stop.is_raised();
        if spec.stop.is_raised() {
            incomplete.get_or_insert_with(|| "interrupted (Ctrl-C) during the run".into());
        }
        child.send(if done || incomplete.is_some() {
            "stop"
        } else {
            "next"
        })?;
        if done || incomplete.is_some() {
            break;
        }
    }
    let window_s = started.elapsed().as_secs_f64();
    let client = child.finish(Duration::from_secs(10))?;
    Ok(Measured {
        counters_at_start: None,
        acceptor_start_ns: 0,
        overflow: None,
        rec,
        cpu_s,
        backlog_effective: listener.backlog_effective,
        client,
        drain: Some((drained, drain_ns)),
        incomplete,
        window_s,
    })
}

/// Parses loadgen's `round <i> established <n> pending <p>` line.
fn parse_round(line: &str) -> Option<u64> {
    let mut it = line.split_whitespace();
    if it.next()? != "round" {
        return None;
    }
    let _round = it.next()?;
    if it.next()? != "established" {
        return None;
    }
    it.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_round;

    #[test]
    fn parses_round_lines() {
        assert_eq!(parse_round("round 3 established 17 pending 0"), Some(17));
        assert_eq!(parse_round("{\"mode\":\"burst\"}"), None);
        assert_eq!(parse_round("round x"), None);
    }
}
