//! `listen --acceptors N`: N acceptor threads, each its own engine, on a
//! [`ListenerSet`], until `--count` (in all), `--duration` or Ctrl-C. Per-thread
//! recorders, merged by the caller; the only shared state is the optional peer
//! counter behind `--count`/`--print-peers` (not a measurement path).

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Instant;

use super::{cpu_for, delay_for, ListenerSet, SlowAcceptor};
use crate::engine::{
    self, EngineCounters, EngineError, EngineKind, EngineOptions, Limits, StopFlag,
};
use crate::record::{PeerObserver, Recorder};
use crate::timing::{timed_run, Timed};

/// What `listen`'s acceptors are asked to do.
pub struct ListenTeam<'a> {
    /// The listeners.
    pub set: &'a ListenerSet,
    /// Engine.
    pub engine: EngineKind,
    /// Options every acceptor starts from (the slow one's delay replaces its `accept_delay`).
    pub options: &'a EngineOptions,
    /// The slow acceptor, if any.
    pub slow: Option<SlowAcceptor>,
    /// Pin acceptors round-robin over these (empty: not pinned).
    pub cpus: &'a [usize],
    /// Stop once this many were accepted in all (the acceptors then stop together; a
    /// few accepts already in flight may complete and are recorded).
    pub count: Option<u64>,
    /// Stop at this instant.
    pub deadline: Option<Instant>,
    /// Ctrl-C.
    pub stop: &'a StopFlag,
    /// Print each peer (one line each, whole lines from every acceptor).
    pub print_peers: bool,
}

/// What one of `listen`'s acceptors did.
pub struct ListenOut {
    /// Its records.
    pub rec: Recorder,
    /// Its thread CPU (user, sys), s.
    pub cpu: (f64, f64),
    /// Its ring's set-up (ring engines).
    pub ring_setup: Option<String>,
    /// Its engine counters.
    pub counters: EngineCounters,
    /// Its timed run (window, window CPU and result).
    pub timed: Timed,
}

/// Runs `listen`'s acceptors, each on a thread of its own, until the limits say stop.
/// Engines are built (and support checked) before any thread starts.
pub fn run_listen(team: &ListenTeam) -> Result<Vec<ListenOut>, EngineError> {
    let mut engines = Vec::new();
    for i in 0..team_size(team) {
        let mut o = team.options.clone();
        o.accept_delay = delay_for(i, team.slow, team.options.accept_delay);
        engines.push(engine::build(team.engine, &o)?);
    }
    let total = Arc::new(AtomicU64::new(0));
    let stop = team.stop.clone();
    Ok(std::thread::scope(|s| {
        let handles: Vec<_> = engines
            .into_iter()
            .enumerate()
            .map(|(i, mut engine)| {
                let (total, stop) = (total.clone(), stop.clone());
                s.spawn(move || {
                    let pinned = match team.cpus.is_empty() {
                        true => Ok(()),
                        false => common::affinity::pin_current_thread(cpu_for(i, team.cpus)),
                    };
                    let mut rec = Recorder::new(false);
                    if team.print_peers || team.count.is_some() {
                        rec = rec.with_observer(observer(team, total, stop.clone()));
                    }
                    let limits = Limits {
                        count: None,
                        deadline: team.deadline,
                        stop,
                    };
                    let cpu0 = common::affinity::thread_cpu_s();
                    let timed = match pinned {
                        Ok(()) => {
                            timed_run(engine.as_mut(), team.set.for_acceptor(i), &limits, &mut rec)
                        }
                        Err(e) => failed(EngineError::Io {
                            engine: team.engine,
                            what: "pinning the acceptor thread",
                            source: std::io::Error::other(format!("{e:#}")),
                        }),
                    };
                    let cpu1 = common::affinity::thread_cpu_s();
                    // One acceptor failing ends the others too.
                    if timed.result.is_err() {
                        limits.stop.raise();
                    }
                    ListenOut {
                        rec,
                        cpu: (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1),
                        ring_setup: engine.ring_setup_applied(),
                        counters: engine.counters(),
                        timed,
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(out) => out,
                Err(_) => ListenOut {
                    rec: Recorder::new(false),
                    cpu: (0.0, 0.0),
                    ring_setup: None,
                    counters: EngineCounters::default(),
                    timed: failed(EngineError::Io {
                        engine: team.engine,
                        what: "an acceptor thread",
                        source: std::io::Error::other("panicked"),
                    }),
                },
            })
            .collect()
    }))
}

/// The timed run of an acceptor that never ran.
fn failed(e: EngineError) -> Timed {
    Timed {
        released_ns: 0,
        accepted: 0,
        closed: 0,
        last_held_ns: 0,
        last_closed_ns: 0,
        cpu_s: 0.0,
        cpu_at_release_s: 0.0,
        usage: Default::default(),
        result: Err(e),
    }
}

/// Acceptors in a `listen` team: one per listener with reuseport, else as asked.
fn team_size(team: &ListenTeam) -> usize {
    team.set.acceptors.max(1) as usize
}

/// The per-peer observer of a `listen` acceptor: prints the peer if asked, and stops
/// every acceptor once `count` connections were accepted in all.
fn observer(team: &ListenTeam, total: Arc<AtomicU64>, stop: StopFlag) -> PeerObserver {
    let count = team.count;
    let mut out = team
        .print_peers
        .then(|| std::io::LineWriter::new(std::io::stdout()));
    Box::new(move |peer| {
        if let Some(out) = out.as_mut() {
            use std::io::Write;
            // SocketAddr's Display writes IPv6 as [ip]:port, the form users paste into tools.
            let _ = writeln!(out, "{peer}");
        }
        let n = total.fetch_add(1, AtomicOrdering::Relaxed) + 1;
        if count.is_some_and(|c| n >= c) {
            stop.raise();
        }
    })
}
