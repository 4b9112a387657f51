//! drain: the server-bound accept rate. loadgen fills the accept queue (backlog+1
//! connections, reset by the client) while the acceptor waits, set up; then the
//! acceptor is released and drains the queue back to back; repeated until the run's
//! time is used. accepts/s = Σ accepted / Σ (release → last close), each round timed
//! by [`crate::timing::timed_run`]; peers held/s = Σ accepted / Σ (release → last
//! peer held) beside it.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::client::Client;
use super::run::{Measured, ModeFigures, RunEnv, RunSpec};
use crate::acceptors::PerAcceptor;
use crate::engine::{self, Limits};
use crate::listener::Listener;
use crate::record::Recorder;
use crate::timing::timed_run;

/// What the drain rounds measured.
struct DrainOut {
    rec: Recorder,
    ring_setup: Option<String>,
    rounds: u32,
    accepted: u64,
    /// Σ release → last close.
    drain_ns: u64,
    /// Σ release → last peer held.
    peer_ns: u64,
    cpu_s: f64,
    usage: Option<crate::kernel::perf::UsageDelta>,
    first_release_ns: u64,
    failure: Option<String>,
    interrupted: bool,
}

impl DrainOut {
    /// Adds one drained round's timing, CPU and kernel use.
    fn add_round(&mut self, t: &crate::timing::Timed) {
        if self.rounds == 0 {
            self.first_release_ns = t.released_ns;
        }
        self.rounds += 1;
        self.accepted += t.accepted;
        self.drain_ns += t.span_ns();
        self.peer_ns += t.peer_span_ns();
        self.cpu_s += t.cpu_s;
        self.usage = Some(self.usage.map_or(t.usage, |u| u.add(&t.usage)));
    }
}

/// drain: loadgen fills the queue (backlog+1 connections) while the acceptor waits;
/// the acceptor is released and drains it back to back; repeated until the run's
/// time is used. accepts/s = Σ accepted / Σ (release → last close).
pub(super) fn drain(
    spec: &RunSpec,
    listener: &Listener,
    lg: &loadgen::Config,
    env: RunEnv,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let (out, child) = std::thread::scope(|s| -> anyhow::Result<(DrainOut, Client)> {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let (child_tx, child_rx) = std::sync::mpsc::sync_channel::<Client>(1);
        let acceptor = std::thread::Builder::new()
            .name("acceptor".into())
            .spawn_scoped(s, move || -> anyhow::Result<(DrainOut, Client)> {
                let mut engine = prepare_acceptor(spec, listener)?;
                let _ = ready_tx.send(());
                let mut child = child_rx
                    .recv()
                    .context("the run ended before loadgen started")?;
                let out = drain_rounds(spec, listener, engine.as_mut(), &mut child)?;
                Ok((out, child))
            })
            .context("cannot start the acceptor thread")?;
        // loadgen starts filling only once the acceptor's one-time setup (ring, runtime)
        // is done: a server sets those up once, before its first accept.
        if ready_rx.recv().is_ok() {
            // Started from this thread: the child dies with the run's thread.
            child_tx
                .send(Client::spawn(spec.exe, spec.tmp, lg)?)
                .map_err(|_| anyhow::anyhow!("the acceptor thread ended early"))?;
        }
        drop(child_tx);
        acceptor
            .join()
            .map_err(|_| anyhow::anyhow!("the acceptor thread panicked"))?
    })?;
    let window_s = started.elapsed().as_secs_f64();
    let client = child.finish(Duration::from_secs(10))?;
    let per_acceptor = vec![PerAcceptor {
        accepted: out.rec.accepted,
        cpu_s: out.cpu_s,
        ..Default::default()
    }];
    let per_s = |ns: u64| {
        if ns > 0 {
            out.accepted as f64 / (ns as f64 * 1e-9)
        } else {
            0.0
        }
    };
    Ok(Measured {
        window_accepts: out.accepted,
        accepts_per_s: per_s(out.drain_ns),
        accept_window_s: out.drain_ns as f64 * 1e-9,
        peers_held_per_s: per_s(out.peer_ns),
        peer_window_s: out.peer_ns as f64 * 1e-9,
        usage: out.usage,
        usage_accepts: out.accepted,
        cpu_s: Some(out.cpu_s),
        backlog_effective: listener.backlog_effective,
        rec: out.rec,
        client,
        failure: out.failure,
        interrupted: out.interrupted,
        window_s,
        released_ns: out.first_release_ns,
        env,
        ring_setup: out.ring_setup,
        figures: ModeFigures::Drain { rounds: out.rounds },
        per_acceptor,
        owner: Vec::new(),
        acceptor_cpus: String::new(),
        slow_acceptor: String::new(),
        kernel: Default::default(),
    })
}

/// Pins the calling thread to the server CPU and builds the engine, running it once
/// with nothing to accept so that its one-time setup (ring, runtime, descriptor table)
/// is done.
fn prepare_acceptor(
    spec: &RunSpec,
    listener: &Listener,
) -> anyhow::Result<Box<dyn engine::Acceptor>> {
    common::affinity::pin_current_thread(spec.settings.server_cpu)?;
    // Room for a whole queue of accepted descriptors (see `reserve_fds`): otherwise the
    // first drain of a batch engine pays the table's growth, one RCU grace period per
    // doubling, and the later ones do not.
    crate::kernel::reserve_fds(listener.as_raw_fd(), listener.backlog_effective + 1);
    let mut engine = engine::build(spec.engine(), &spec.engine_options())?;
    let mut scratch = Recorder::new(false);
    engine::set_up(engine.as_mut(), listener, &mut scratch).context("setting the engine up")?;
    if scratch.accepted > 0 {
        anyhow::bail!("the engine accepted a connection before any was made");
    }
    Ok(engine)
}

/// The next fill loadgen reports (its round line), or why the rounds end: loadgen
/// ended before the run's time was used, or its output broke.
pub(super) fn next_round(child: &mut Client) -> Result<loadgen::protocol::RoundLine, String> {
    loop {
        let line = match child.read_line_spinning(Duration::from_secs(12)) {
            Ok(Some(line)) => line,
            Ok(None) => return Err("loadgen ended before the run's time was used".into()),
            Err(e) => return Err(format!("{e:#}")),
        };
        if let Some(round) = loadgen::protocol::RoundLine::parse(&line) {
            return Ok(round);
        }
    }
}

/// The acceptor's side of the drain rounds (on the pinned acceptor thread).
fn drain_rounds(
    spec: &RunSpec,
    listener: &Listener,
    engine: &mut dyn engine::Acceptor,
    child: &mut Client,
) -> anyhow::Result<DrainOut> {
    use loadgen::protocol::Reply;
    let cfg = spec.settings;
    let mut out = DrainOut {
        rec: Recorder::new(true),
        ring_setup: None,
        rounds: 0,
        accepted: 0,
        drain_ns: 0,
        peer_ns: 0,
        cpu_s: 0.0,
        usage: None,
        first_release_ns: 0,
        failure: None,
        interrupted: false,
    };
    out.ring_setup = engine.ring_setup_applied();
    if let Ok(ids) = cfg.perf {
        // Where perf is refused on this thread, the row's counts stay empty.
        let _ = out.rec.count_kernel(ids);
    }
    let mut budget_from: Option<Instant> = None;
    loop {
        // A round is a fill (≤ backlog+1 connects, microseconds each on loopback) plus
        // the connect timeout at most; longer means the child is stuck.
        // The acceptor waits for each fill on its CPU, spinning, as a busy server is
        // running: a blocking wait let the idle vCPU halt, and the wake-up at release
        // spread the drain rate of one cell by up to 27% (multishot, backlog 4096).
        let round = match next_round(child) {
            Ok(round) => round,
            Err(why) => {
                out.failure = Some(why);
                break;
            }
        };
        let before = out.rec.accepted;
        let limits = Limits {
            count: Some(before + round.established),
            deadline: Some(Instant::now() + Duration::from_secs(5)),
            stop: spec.stop.clone(),
        };
        // The run's time is its rounds', from the first release: the one-time set-up
        // (the engine's ring or runtime, loadgen's start, the first fill) is not spent
        // out of it, so a 4096-deep queue gets more than one drain per run.
        let first_release = *budget_from.get_or_insert_with(Instant::now);
        let mut t = timed_run(engine, listener, &limits, &mut out.rec);
        std::mem::replace(&mut t.result, Ok(())).context("draining the accept queue")?;
        out.add_round(&t);
        out.interrupted = spec.stop.is_raised();
        if t.accepted < round.established && !out.interrupted {
            out.failure = Some(format!(
                "a round accepted {} of {} queued connections within 5 s",
                t.accepted, round.established
            ));
        }
        let done =
            first_release.elapsed() >= cfg.duration || out.interrupted || out.failure.is_some();
        child.send(if done { Reply::Stop } else { Reply::Next })?;
        if done {
            break;
        }
    }
    Ok(out)
}
