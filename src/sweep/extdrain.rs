//! drain for an external server: its process group is stopped (SIGSTOP) while loadgen
//! fills the accept queue (backlog+1 connections, reset by the client once queued, as
//! for the built-in engines), then continued (SIGCONT); the round is done when sock_diag
//! sees the queue empty — the server has taken every connection. Repeated until the
//! run's time is used. accepts/s = Σ taken / Σ (SIGCONT → queue empty), the server's
//! own drain rate; its CPU over the same spans comes from /proc.
//!
//! What it cannot tell: the clients reset their connections once queued, so served is
//! not seen; the span ends when the last connection left the queue, not at its close.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::client::Client;
use super::run::{Measured, ModeFigures, RunEnv, RunSpec};
use crate::external::ExternalServer;
use crate::kernel::sockdiag::ListenerDiag;
use crate::record::Recorder;

/// A queue that has not emptied this long after SIGCONT fails the round.
const ROUND_LIMIT: Duration = Duration::from_secs(5);

/// What the rounds measured.
#[derive(Default)]
struct Rounds {
    rounds: u32,
    taken: u64,
    drain_ns: u64,
    cpu_s: f64,
    first_release_ns: u64,
    failure: Option<String>,
    interrupted: bool,
}

/// Runs drain rounds against `srv` (listening on `port`, seen through `diag`).
pub(super) fn drain(
    spec: &RunSpec,
    srv: &ExternalServer,
    diag: &mut ListenerDiag,
    port: u16,
    lg: &loadgen::Config,
    backlog_effective: u32,
    env: RunEnv,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    srv.pause().context("cannot stop the server (SIGSTOP)")?;
    let mut child = Client::spawn(spec.exe, spec.tmp, lg)?;
    let out = rounds(spec, srv, diag, port, &mut child);
    // Whatever happened, the server runs again (its stop needs it running).
    let resumed = srv.resume();
    let out = out?;
    resumed.context("cannot continue the server (SIGCONT)")?;
    let window_s = started.elapsed().as_secs_f64();
    let client = child.finish(Duration::from_secs(10))?;
    let mut rec = Recorder::new(false);
    rec.accepted = out.taken;
    let per_s = if out.drain_ns > 0 {
        out.taken as f64 / (out.drain_ns as f64 * 1e-9)
    } else {
        0.0
    };
    Ok(Measured {
        window_accepts: out.taken,
        accepts_per_s: per_s,
        accept_window_s: out.drain_ns as f64 * 1e-9,
        peers_held_per_s: 0.0,
        peer_window_s: 0.0,
        usage: None,
        usage_accepts: 0,
        kernel: Default::default(),
        cpu_s: srv.cpu_known().then_some(out.cpu_s),
        backlog_effective,
        rec,
        client,
        failure: out.failure,
        interrupted: out.interrupted,
        window_s,
        released_ns: out.first_release_ns,
        env,
        ring_setup: None,
        figures: ModeFigures::Drain { rounds: out.rounds },
        per_acceptor: Vec::new(),
        owner: Vec::new(),
        acceptor_cpus: String::new(),
        slow_acceptor: String::new(),
    })
}

/// Queued connections on `port` now (all its sockets).
fn depth(diag: &mut ListenerDiag, port: u16) -> anyhow::Result<u32> {
    Ok(diag
        .listening(port)
        .context("reading the queue with sock_diag")?
        .iter()
        .map(|l| l.queued)
        .sum())
}

/// The rounds: wait for a fill, SIGCONT, wait for an empty queue, SIGSTOP, next.
fn rounds(
    spec: &RunSpec,
    srv: &ExternalServer,
    diag: &mut ListenerDiag,
    port: u16,
    child: &mut Client,
) -> anyhow::Result<Rounds> {
    use loadgen::protocol::Reply;
    let mut out = Rounds::default();
    let mut budget_from: Option<Instant> = None;
    loop {
        let round = match super::drain::next_round(child) {
            Ok(round) => round,
            Err(why) => {
                out.failure = Some(why);
                break;
            }
        };
        let queued = depth(diag, port)?;
        let first = *budget_from.get_or_insert_with(Instant::now);
        let cpu0 = srv.cpu_s();
        let released_ns = common::clock::mono_ns();
        srv.resume()
            .context("cannot continue the server (SIGCONT)")?;
        let give_up = Instant::now() + ROUND_LIMIT;
        let mut left = queued;
        while left > 0 && Instant::now() < give_up {
            left = depth(diag, port)?;
        }
        let empty_ns = common::clock::mono_ns();
        srv.pause().context("cannot stop the server (SIGSTOP)")?;
        out.cpu_s += (srv.cpu_s() - cpu0).max(0.0);
        if out.rounds == 0 {
            out.first_release_ns = released_ns;
        }
        out.rounds += 1;
        out.taken += u64::from(queued - left);
        out.drain_ns += empty_ns.saturating_sub(released_ns);
        out.interrupted = spec.stop.is_raised();
        if left > 0 {
            out.failure = Some(format!(
                "the server took {} of {queued} queued connections within {}s (round {}, {} established)",
                queued - left,
                ROUND_LIMIT.as_secs(),
                round.round,
                round.established
            ));
        }
        let done =
            first.elapsed() >= spec.settings.duration || out.interrupted || out.failure.is_some();
        child.send(if done { Reply::Stop } else { Reply::Next })?;
        if done {
            break;
        }
    }
    Ok(out)
}
