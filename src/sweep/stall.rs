//! A stall run's own row (`stall.csv`) and timeline: its records put in the model's
//! terms ([`crate::stall::observe`]), the model run with the run's actual stall,
//! backlog, load and engine ([`crate::stall::model`]), and the verdict between them.

use super::plan::Planned;
use super::run::{Measured, StallFacts};
use crate::config::StallLoad;
use crate::join;
use crate::overflow;
use crate::report::stall::{Bin, StallRow};
use crate::stall::model::{Prediction, Scenario};
use crate::stall::observe::{self, ClientConn, Fate, Figures, Window};
use crate::stall::schedule::SynSchedule;
use crate::stall::{verdict, Criteria, Sample};

/// Timeline bins, ns.
const BIN_NS: u64 = 10_000_000;
/// Above this schedule lag before the stall (intended start → connect()), loadgen did
/// not keep to the asked rate on this machine: 100 ms behind its schedule, a client no
/// longer makes the load asked for at the time scale of a stall and its retransmits.
/// (Under software emulation loadgen runs ~20 ms late at 200/s and still keeps the
/// rate: the pre-stall lag then sets what normal is.)
const CLIENT_LAG_LIMIT_NS: u64 = 100_000_000;

/// What a stall run adds to its summary row.
pub struct StallOut {
    /// Its stall.csv row.
    pub row: StallRow,
    /// Its timeline.
    pub bins: Vec<Bin>,
}

/// Analyses a stall run; Err says why it cannot be measured (the row becomes failed).
pub fn analyse(
    p: &Planned,
    m: &Measured,
    f: &overflow::Figures,
    facts: &StallFacts,
) -> Result<StallOut, String> {
    let cell = p.stall.ok_or("a stall run without its stall cell")?;
    let mark = m.rec.stall.ok_or(
        "the acceptor never stopped: no connection reached it after --stall-at (is the load too light?)",
    )?;
    let schedule = facts
        .schedule
        .clone()
        .ok_or("cannot read net.ipv4.tcp_syn_retries: no SYN schedule to predict with")?;
    let conns = client_conns(m);
    let t0 = conns
        .iter()
        .map(|c| c.intended_ns)
        .min()
        .ok_or("no connection was made")?;
    let w = Window {
        stall_start_ns: mark.start_ns,
        resume_ns: mark.end_ns,
        arrivals_end_ns: conns.iter().map(|c| c.intended_ns).max().unwrap_or(t0),
    };
    check_client_kept_up(&conns, &w, cell.load)?;
    let end_ns = conns
        .iter()
        .filter_map(|c| c.held_ns.or(c.established_ns))
        .max()
        .unwrap_or(w.arrivals_end_ns)
        .max(w.arrivals_end_ns)
        + BIN_NS;
    let queue = queue_bins(f, t0, end_ns);
    let (_, pre_p99) = observe::prestall_lag(&conns, w.stall_start_ns);
    let criteria = Criteria::new(m.backlog_effective, pre_p99).with_prestall_queue(prestall_queue(
        &queue,
        t0,
        w.stall_start_ns,
    ));
    let give_up_ms = schedule.give_up_ms().min(facts.connect_timeout_ms);
    let measured = observe::measured(
        &conns,
        &queue,
        &w,
        &criteria,
        &schedule,
        give_up_ms,
        f.counters.get("ListenOverflows").copied(),
        mark.overflows,
    );
    let scenario = scenario(p, m, facts, &conns, &w, t0, schedule.clone(), cell.load);
    // No μ (an external server without a drain rate): no model, said so.
    let prediction = facts.mu.per_s().is_ok().then(|| scenario.predict());
    let predicted = prediction
        .as_ref()
        .map(|pr| observe::predicted(pr, t0, &w, &criteria));
    let pr = predicted.as_ref();
    let mut row = stall_row(p, m, &scenario, &measured, pr, &w, pre_p99, &schedule);
    row.mu_source = facts.mu.source();
    row.prestall_retries = prestall_retries(&conns, w.stall_start_ns);
    kernel_columns(&mut row, &m.kernel, &schedule);
    if row.prestall_retries > 0 {
        row.verdict = format!(
            "{} connects waited for a SYN retransmit (or failed) before the stall: the clients outran the acceptor already, so what the run calls normal was not (a closed loop at full speed does this at small backlogs); {}",
            row.prestall_retries, row.verdict
        );
    }
    let bins = timeline(
        &conns,
        &queue,
        prediction.as_ref(),
        t0,
        end_ns,
        &schedule,
        give_up_ms,
    );
    Ok(StallOut { row, bins })
}

/// The listeners' queue depth in 1 ms bins from `t0` to `end_ns`.
fn queue_bins(f: &overflow::Figures, t0: u64, end_ns: u64) -> Vec<Sample> {
    let listeners: Vec<Vec<Sample>> = f
        .samples
        .iter()
        .map(|s| {
            s.changes
                .iter()
                .map(|c| Sample {
                    t_ns: c.t_ns,
                    depth: c.depth,
                })
                .collect()
        })
        .collect();
    observe::queue_bins(&listeners, t0, end_ns, 1_000_000)
}

/// What normal was before the stall: the queue it kept through a whole 10 ms bin
/// (skipping the first 100 ms, while the client starts).
fn prestall_queue(queue: &[Sample], t0: u64, stall_start_ns: u64) -> u32 {
    let settle = t0 + 100_000_000;
    let pre_bins = (stall_start_ns.saturating_sub(settle) / 10_000_000) as usize;
    crate::stall::shallowest_per_bin(queue, settle, pre_bins, 10_000_000)
        .into_iter()
        .max()
        .unwrap_or(0)
}

/// Connects before the stall that waited for a SYN retransmit (or failed).
fn prestall_retries(conns: &[ClientConn], stall_start_ns: u64) -> u64 {
    conns
        .iter()
        .filter(|c| c.intended_ns < stall_start_ns)
        .filter(|c| match c.established_ns {
            Some(e) => e.saturating_sub(c.connect_start_ns) >= overflow::RETRY_THRESHOLD_NS,
            None => true,
        })
        .count() as u64
}

/// Every connection loadgen made, with when the acceptor held it (by the join).
fn client_conns(m: &Measured) -> Vec<ClientConn> {
    let records = &m.client.records;
    let established: Vec<(usize, join::ClientConn)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.outcome == loadgen::Outcome::Established)
        .map(|(i, r)| {
            (
                i,
                join::ClientConn {
                    local: r.local,
                    connect_start_ns: r.connect_start_ns,
                    warmup: r.warmup,
                },
            )
        })
        .collect();
    let only: Vec<join::ClientConn> = established.iter().map(|(_, c)| *c).collect();
    let mut held = vec![None; records.len()];
    for ((i, _), h) in established
        .iter()
        .zip(join::held_times(&only, &m.rec.peers))
    {
        held[*i] = h;
    }
    records
        .iter()
        .zip(held)
        .map(|(r, held_ns)| {
            let fate = match r.outcome {
                loadgen::Outcome::Established if held_ns.is_some() => Fate::Held,
                loadgen::Outcome::Established => Fate::ClientOnly,
                loadgen::Outcome::Timeout => Fate::TimedOut,
                loadgen::Outcome::Reset => Fate::Reset,
                loadgen::Outcome::Pending => Fate::Pending,
                _ => Fate::Other,
            };
            ClientConn {
                intended_ns: r.intended_ns,
                connect_start_ns: r.connect_start_ns,
                established_ns: (r.outcome == loadgen::Outcome::Established).then_some(r.done_ns),
                held_ns,
                fate,
            }
        })
        .collect()
}

/// An open-loop client that started its connects late before the stall did not keep
/// to the asked rate: that run measured another load, and fails saying so.
fn check_client_kept_up(conns: &[ClientConn], w: &Window, load: StallLoad) -> Result<(), String> {
    if !matches!(load, StallLoad::Rate(_)) {
        return Ok(());
    }
    let mut lags: Vec<u64> = conns
        .iter()
        .filter(|c| c.intended_ns < w.stall_start_ns)
        .map(|c| c.connect_start_ns.saturating_sub(c.intended_ns))
        .collect();
    lags.sort_unstable();
    let p99 = observe::pct(&lags, 0.99);
    if p99 > CLIENT_LAG_LIMIT_NS {
        return Err(format!(
            "loadgen did not keep to {load} here: its connects started {:.1} ms late at p99 before the stall (more than {} ms): lower the rate, or give loadgen more CPUs (--client-cpus, --threads)",
            p99 as f64 / 1e6,
            CLIENT_LAG_LIMIT_NS / 1_000_000
        ));
    }
    Ok(())
}

/// The model's scenario for this run: its actual stall, backlog, load and engine.
#[allow(clippy::too_many_arguments)]
fn scenario(
    p: &Planned,
    m: &Measured,
    facts: &StallFacts,
    conns: &[ClientConn],
    w: &Window,
    t0: u64,
    schedule: SynSchedule,
    load: StallLoad,
) -> Scenario {
    let ms = |ns: u64| ns / 1_000_000;
    let (rate_per_s, closed_loop) = match load {
        StallLoad::Rate(n) => (n as f64, false),
        StallLoad::Closed(_) => {
            let before = conns
                .iter()
                .filter(|c| c.intended_ns < w.stall_start_ns)
                .count();
            let span_s = (w.stall_start_ns.saturating_sub(t0) as f64 * 1e-9).max(1e-3);
            (before as f64 / span_s, true)
        }
    };
    let inflight = p.inflight.unwrap_or(1) as usize;
    Scenario {
        rate_per_s: rate_per_s.max(1.0),
        stall_at_ms: ms(w.stall_start_ns.saturating_sub(t0)),
        stall_ms: ms(w.resume_ns.saturating_sub(w.stall_start_ns)),
        backlog: m.backlog_effective,
        accept_per_s: facts.mu.per_s().ok().flatten(),
        armed_slots: crate::engine::armed_in_stall(
            p.engine,
            inflight,
            m.ring_setup.as_deref().unwrap_or("default"),
            m.backlog_effective,
        ),
        concurrency: Some(facts.concurrency),
        closed_loop,
        arrivals_ms: ms(w.arrivals_end_ns.saturating_sub(t0)) + 1,
        connect_timeout_ms: facts.connect_timeout_ms,
        schedule,
        wheel: facts.wheel,
    }
}

/// The verdict of a run without a model.
fn no_model() -> String {
    "no model: its μ (the server's rate once resumed) is unknown; add drain to --modes or give --stall-mu NAME=RATE".into()
}

/// `1s:491;2s:3`: the nonzero waves, named by their retransmit's time.
fn format_waves(waves: &[u64], schedule: &SynSchedule) -> String {
    schedule
        .retransmits_ms()
        .iter()
        .zip(waves)
        .filter(|(_, &n)| n > 0)
        .map(|(t, n)| format!("{}s:{n}", *t as f64 / 1000.0))
        .collect::<Vec<_>>()
        .join(";")
}

/// `--trace kernel`: the kernel's retry waves and client-only count beside the
/// model's (left empty when not recorded).
fn kernel_columns(row: &mut StallRow, k: &super::ktrace::KernelTrace, schedule: &SynSchedule) {
    use crate::kernel::perf::decode::Tp;
    let super::ktrace::KernelTrace::Recorded(k) = k else {
        return;
    };
    row.kernel_client_only = Some(k.client_only);
    if !k.recorded(Tp::RetransmitSkb) {
        return;
    }
    let mut waves = vec![0u64; schedule.retransmits_ms().len()];
    for c in k
        .connections
        .iter()
        .filter(|c| c.client_established_ns.is_some())
    {
        let n = c.syn_retransmits_ns.len();
        if n > 0 {
            if waves.len() < n {
                waves.resize(n, 0);
            }
            waves[n - 1] += 1;
        }
    }
    // More retransmits than the schedule has (it changed mid-run): named by their
    // number rather than a time.
    let mut text = format_waves(&waves, schedule);
    for (i, n) in waves
        .iter()
        .enumerate()
        .skip(schedule.retransmits_ms().len())
    {
        if *n > 0 {
            let sep = if text.is_empty() { "" } else { ";" };
            text += &format!("{sep}#{}:{n}", i + 1);
        }
    }
    row.kernel_waves = Some(text);
}

#[allow(clippy::too_many_arguments)]
fn stall_row(
    p: &Planned,
    m: &Measured,
    s: &Scenario,
    me: &Figures,
    pr: Option<&Figures>,
    w: &Window,
    pre_p99: u64,
    schedule: &SynSchedule,
) -> StallRow {
    let cell = p.stall.expect("checked by analyse");
    let ms = |ns: u64| ns as f64 / 1e6;
    let count = |fate: Fate| {
        m.client
            .records
            .iter()
            .filter(|r| match fate {
                Fate::Reset => r.outcome == loadgen::Outcome::Reset,
                _ => r.outcome == loadgen::Outcome::Pending,
            })
            .count() as u64
    };
    StallRow {
        series: crate::report::series(
            &p.label(),
            p.inflight,
            p.accept_flags.map_or("", |f| f.name()),
            p.peer_op.map_or("", |op| op.name()),
            p.acceptors,
            p.sharing.name(),
        ),
        backlog: p.backlog,
        backlog_effective: m.backlog_effective,
        load: cell.load.to_string(),
        rate_per_s: s.rate_per_s,
        stall_ms: cell.duration.as_secs_f64() * 1e3,
        stall_actual_ms: ms(w.resume_ns.saturating_sub(w.stall_start_ns)),
        accept_per_s: s.accept_per_s,
        repetition: p.round,
        status: String::new(),
        arrivals: me.arrivals,
        arrivals_in_stall: me.arrivals_in_stall,
        dropped: me.dropped,
        dropped_pred: pr.and_then(|pr| pr.dropped),
        dropped_in_stall: me.dropped_in_stall,
        dropped_in_stall_pred: pr.and_then(|pr| pr.dropped_in_stall),
        waves: format_waves(&me.waves, schedule),
        waves_pred: pr.map_or(String::new(), |pr| format_waves(&pr.waves, schedule)),
        kernel_waves: None,
        held: me.held,
        held_pred: pr.map(|pr| pr.held),
        client_only: me.client_only,
        client_only_pred: pr.map(|pr| pr.client_only),
        kernel_client_only: None,
        timed_out: me.timed_out,
        timed_out_pred: pr.map(|pr| pr.timed_out),
        reset: count(Fate::Reset),
        pending: count(Fate::Pending),
        armed_taken: me.armed_taken,
        armed_taken_pred: pr.map(|pr| pr.armed_taken.unwrap_or(0)),
        armed_assumed: s.armed_slots,
        queue_at_resume: me.queue_at_resume,
        queue_at_resume_pred: pr.map(|pr| pr.queue_at_resume),
        empty_after_resume_ms: me.empty_after_resume_ms,
        empty_after_resume_ms_pred: pr.and_then(|pr| pr.empty_after_resume_ms),
        recovered: verdict::recovery_ms(me.recovery).is_some(),
        recover_ms: verdict::recovery_ms(me.recovery),
        recovered_pred: pr.map(|pr| verdict::recovery_ms(pr.recovery).is_some()),
        recover_ms_pred: pr.and_then(|pr| verdict::recovery_ms(pr.recovery)),
        judged_s: w.arrivals_end_ns.saturating_sub(w.resume_ns) as f64 * 1e-9,
        prestall_lag_p99_us: pre_p99 as f64 / 1e3,
        prestall_retries: 0,
        lag_p50_ms: ms(me.lag_p50_ns),
        lag_p99_ms: ms(me.lag_p99_ns),
        lag_p99_ms_pred: pr.map(|pr| ms(pr.lag_p99_ns)),
        lag_p999_ms: ms(me.lag_p999_ns),
        excess_conn_s: me.excess_conn_s,
        excess_conn_s_pred: pr.map(|pr| pr.excess_conn_s),
        verdict: pr.map_or_else(no_model, |pr| verdict::verdict(me, pr, s.armed_slots)),
        mu_source: String::new(),
    }
}

/// The run in 10 ms bins from the first arrival, measured and predicted.
fn timeline(
    conns: &[ClientConn],
    queue_1ms: &[Sample],
    pred: Option<&Prediction>,
    t0: u64,
    end_ns: u64,
    schedule: &SynSchedule,
    give_up_ms: u64,
) -> Vec<Bin> {
    let n = (end_ns.saturating_sub(t0)).div_ceil(BIN_NS) as usize;
    let mut bins: Vec<Bin> = (0..n)
        .map(|i| Bin {
            t_ms: (i as u64 * BIN_NS) as f64 / 1e6,
            ..Default::default()
        })
        .collect();
    let at = |t: u64| {
        t.checked_sub(t0)
            .map(|d| (d / BIN_NS) as usize)
            .filter(|&i| i < n)
    };
    let rtx = schedule.retransmits_ms();
    for c in conns {
        if let Some(i) = at(c.intended_ns) {
            bins[i].arrivals += 1;
        }
        for t in observe::syn_times(c, &rtx, give_up_ms) {
            if let Some(i) = at(t) {
                bins[i].syns += 1;
            }
        }
        if let Some(i) = c.established_ns.and_then(at) {
            bins[i].established += 1;
        }
        if let Some(i) = c.held_ns.and_then(at) {
            bins[i].held += 1;
        }
    }
    for s in queue_1ms {
        if let Some(i) = at(s.t_ns) {
            bins[i].queue = bins[i].queue.max(s.depth);
        }
    }
    let Some(pred) = pred else {
        return bins; // no model: the predicted columns stay empty
    };
    for b in bins.iter_mut() {
        (b.held_pred, b.queue_pred) = (Some(0), Some(0));
    }
    for c in &pred.conns {
        if let Some(i) = c.done_ns.and_then(|d| at(d + t0)) {
            bins[i].held_pred = bins[i].held_pred.map(|h| h + 1);
        }
    }
    for s in &pred.queue {
        if let Some(i) = at(s.t_ns + t0) {
            bins[i].queue_pred = bins[i].queue_pred.map(|q| q.max(s.depth));
        }
    }
    bins
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::account::{KernelAccount, KernelConn};
    use crate::sweep::ktrace::KernelTrace;

    #[test]
    fn the_kernels_waves_are_named_by_the_schedule() {
        let schedule = SynSchedule {
            retries: 2,
            linear: 4,
        };
        let conn = |rtx: usize, established: bool| KernelConn {
            syn_retransmits_ns: vec![1; rtx],
            client_established_ns: established.then_some(5),
            ..KernelConn::default()
        };
        let k = KernelAccount {
            connections: vec![
                conn(0, true),
                conn(1, true),
                conn(1, true),
                conn(2, true),
                conn(3, true),
                // Never established: admitted by no wave.
                conn(2, false),
            ],
            client_only: 4,
            ..KernelAccount::default()
        };
        let mut row = StallRow::default();
        kernel_columns(&mut row, &KernelTrace::Off, &schedule);
        assert_eq!(
            (row.kernel_waves.as_deref(), row.kernel_client_only),
            (None, None)
        );
        kernel_columns(&mut row, &KernelTrace::Recorded(Box::new(k)), &schedule);
        assert_eq!(row.kernel_waves.as_deref(), Some("1s:2;2s:1;#3:1"));
        assert_eq!(row.kernel_client_only, Some(4));
    }
}
