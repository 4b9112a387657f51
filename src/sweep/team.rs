//! The acceptor threads of a driven run: one per acceptor, each pinned round-robin
//! over the server CPUs and running its own engine instance on its listener of the
//! [`ListenerSet`]; their records are merged when they have all ended (per-thread
//! state, merged at the end — no shared counters on the hot path).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::run::RunSpec;
use crate::acceptors::{self, ListenerSet, PerAcceptor};
use crate::engine::{self, Limits, StopFlag};
use crate::overflow::{self, Counters};
use crate::record::Recorder;
use crate::timing::timed_run;

/// The acceptor threads of one measured run (`listen` has its own,
/// [`crate::acceptors::listen::ListenTeam`]): what they share.
pub struct RunTeam<'a> {
    /// The run.
    pub run: &'a RunSpec<'a>,
    /// The listeners.
    pub set: &'a ListenerSet,
    /// Burst: stay paused until the burst has arrived and settled this long.
    pub pause: Duration,
    /// Raised when the run is over.
    pub run_stop: &'a StopFlag,
    /// Safety net: no acceptor runs past this.
    pub deadline: Instant,
    /// Each acceptor's CPU clock id (-1 until known), for sampling while the run goes on.
    pub cpu_clocks: &'a [AtomicI32],
    /// Acceptors set up and about to accept (or, paused, to wait for the burst): the
    /// client starts only when all are, so no connection arrives at a listener whose
    /// acceptors are still being built (see [`wait_until_ready`]).
    pub ready: &'a AtomicUsize,
    /// Mode stall: the pause every acceptor takes once (armed by the run).
    pub stall: Option<&'a crate::engine::Stall>,
}

/// What one acceptor thread returns.
pub struct AcceptorOut {
    rec: Recorder,
    ring_setup: Option<String>,
    cpu_s: f64,
    cpu_at_release_s: f64,
    released_ns: u64,
    counters: Option<Counters>,
    usage: crate::kernel::perf::UsageDelta,
}

/// Every acceptor's records, merged.
pub struct TeamOut {
    /// The merged recorder (peers of acceptor 0 first, then 1, …).
    pub rec: Recorder,
    /// Which acceptor each merged peer came from.
    pub owner: Vec<u16>,
    /// Per-acceptor counts and CPU.
    pub per: Vec<PerAcceptor>,
    /// Ring set-up of acceptor 0 (every acceptor runs the same engine and options).
    pub ring_setup: Option<String>,
    /// Σ acceptor CPU over their runs, s.
    pub cpu_s: f64,
    /// Σ acceptor thread CPU at release, s.
    pub cpu_at_release_s: f64,
    /// The earliest release, CLOCK_MONOTONIC ns.
    pub released_ns: u64,
    /// TcpExt counters read by acceptor 0 at release.
    pub counters: Option<Counters>,
    /// Σ the acceptors' use of the kernel over their timed runs.
    pub usage: Option<crate::kernel::perf::UsageDelta>,
    /// Σ connections they accepted in those runs.
    pub usage_accepts: u64,
}

/// Starts every acceptor thread of the run.
pub fn spawn<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    team: &'env RunTeam<'env>,
) -> anyhow::Result<Vec<ScopedJoinHandle<'scope, anyhow::Result<AcceptorOut>>>> {
    (0..team.run.acceptors() as usize)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("acceptor-{i}"))
                .spawn_scoped(s, move || accept_on(team, i))
                .context("cannot start an acceptor thread")
        })
        .collect()
}

/// Acceptor `i`: pin, build, wait for the burst (if paused), run until stopped.
fn accept_on(team: &RunTeam, i: usize) -> anyhow::Result<AcceptorOut> {
    let run = team.run;
    common::affinity::pin_current_thread(acceptors::cpu_for(i, &run.settings.server_cpus))?;
    if let Some(id) = common::affinity::current_thread_cpu_clock() {
        team.cpu_clocks[i].store(id, Ordering::Relaxed);
    }
    let mut options = run.acceptor_options(i);
    options.stall = team.stall.cloned();
    let mut engine = engine::build(run.engine(), &options)?;
    // Room for a queue's worth of accepted descriptors before release, as in drain:
    // growing the fd table of a threaded process waits for RCU grace periods, a
    // one-time cost a running server has long paid (see `kernel::reserve_fds`).
    let l = team.set.for_acceptor(i);
    crate::kernel::reserve_fds(l.as_raw_fd(), l.backlog_effective + 1);
    if !team.pause.is_zero() {
        team.ready.fetch_add(1, Ordering::Release);
        wait_for_burst(team.set, team.pause, team.run_stop, run.stop);
    }
    // What the full queue turned away while nobody accepted.
    let counters = (i == 0 && run.mode().is_overflow())
        .then(overflow::read_counters)
        .flatten();
    let limits = Limits {
        count: None,
        deadline: Some(team.deadline),
        stop: team.run_stop.clone(),
    };
    let mut rec = Recorder::new(true);
    if let Ok(ids) = run.settings.perf {
        // Where perf is refused on this thread, the row's counts stay empty.
        let _ = rec.count_kernel(ids);
    }
    if team.pause.is_zero() {
        team.ready.fetch_add(1, Ordering::Release);
    }
    let t = timed_run(engine.as_mut(), team.set.for_acceptor(i), &limits, &mut rec);
    t.result?;
    Ok(AcceptorOut {
        ring_setup: engine.ring_setup_applied(),
        rec,
        cpu_s: t.cpu_s,
        cpu_at_release_s: t.cpu_at_release_s,
        released_ns: t.released_ns,
        counters,
        usage: t.usage,
    })
}

/// Waits until every acceptor of `handles` is ready (true), or one has ended — it
/// failed to start — or 10 s have passed (false). Without this wait a closed-loop
/// client could fill a small accept queue, and stall on a SYN retransmit, while an
/// acceptor thread was still waiting for a CPU busy with something else.
pub fn wait_until_ready<T>(ready: &AtomicUsize, handles: &[ScopedJoinHandle<'_, T>]) -> bool {
    let give_up = Instant::now() + Duration::from_secs(10);
    while ready.load(Ordering::Acquire) < handles.len() {
        if handles.iter().any(|h| h.is_finished()) || Instant::now() >= give_up {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

/// Σ CPU seconds of the acceptors whose clocks are known, now.
pub fn cpu_now_s(clocks: &[AtomicI32]) -> Option<f64> {
    let mut sum = None;
    for c in clocks {
        let id = c.load(Ordering::Relaxed);
        if let Some(s) = (id >= 0).then(|| common::affinity::clock_s(id)).flatten() {
            *sum.get_or_insert(0.0) += s;
        }
    }
    sum
}

/// Waits for every acceptor and merges what they recorded.
pub fn join(
    handles: Vec<ScopedJoinHandle<'_, anyhow::Result<AcceptorOut>>>,
) -> anyhow::Result<TeamOut> {
    let mut outs = Vec::with_capacity(handles.len());
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(o)) => outs.push(o),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(anyhow::anyhow!("an acceptor thread panicked"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let per = outs
        .iter()
        .map(|o| PerAcceptor {
            accepted: o.rec.accepted,
            cpu_s: o.cpu_s,
            ..Default::default()
        })
        .collect();
    let ring_setup = outs.first().and_then(|o| o.ring_setup.clone());
    let counters = outs.first().and_then(|o| o.counters.clone());
    let cpu_s = outs.iter().map(|o| o.cpu_s).sum();
    let cpu_at_release_s = outs.iter().map(|o| o.cpu_at_release_s).sum();
    let released_ns = outs.iter().map(|o| o.released_ns).min().unwrap_or(0);
    let usage = outs.iter().map(|o| o.usage).reduce(|a, b| a.add(&b));
    let usage_accepts = outs.iter().map(|o| o.rec.accepted).sum();
    let (rec, owner) = acceptors::merge(outs.into_iter().map(|o| o.rec).collect());
    Ok(TeamOut {
        rec,
        owner,
        per,
        ring_setup,
        cpu_s,
        cpu_at_release_s,
        released_ns,
        counters,
        usage,
        usage_accepts,
    })
}

/// Paused: the accept queues fill (and overflow) while nobody accepts. Resumes once
/// the listeners together have held connections, unchanged, for `settle` — the burst
/// has arrived, however long the client took to start (seconds under emulation) — or
/// after 10 s. Every acceptor watches the same total, so they resume together.
pub fn wait_for_burst(set: &ListenerSet, settle: Duration, run_stop: &StopFlag, stop: &StopFlag) {
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut last = (u32::MAX, Instant::now());
    while Instant::now() < give_up && !run_stop.is_raised() && !stop.is_raised() {
        let depth = set.total_depth();
        if depth != last.0 {
            last = (depth, Instant::now());
        } else if depth > 0 && last.1.elapsed() >= settle {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_waits_for_every_acceptor_but_not_for_one_that_failed() {
        let ready = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..2u64)
                .map(|i| {
                    let ready = &ready;
                    s.spawn(move || {
                        std::thread::sleep(Duration::from_millis(20 * (i + 1)));
                        ready.fetch_add(1, Ordering::Release);
                        std::thread::sleep(Duration::from_millis(50));
                    })
                })
                .collect();
            assert!(wait_until_ready(&ready, &handles));
            // Released only when the slower one (40 ms) had signalled.
            assert_eq!(ready.load(Ordering::Acquire), 2);
            assert!(handles.iter().all(|h| !h.is_finished()));
        });
        let ready = AtomicUsize::new(0);
        std::thread::scope(|s| {
            let handles = vec![
                s.spawn(|| ()),
                s.spawn(|| std::thread::sleep(Duration::from_millis(100))),
            ];
            let t = Instant::now();
            assert!(
                !wait_until_ready(&ready, &handles),
                "a thread that ended unready is a failure"
            );
            assert!(t.elapsed() < Duration::from_secs(5));
        });
    }
}
