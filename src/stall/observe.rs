//! What a measured stall run shows, in the same terms as the model's prediction
//! ([`super::model`]): drops, retry waves, when connections were held, the recovery
//! (judged by [`super::recovery`] for both), and the excess latency. Plain data in,
//! plain data out; the sweep gathers the inputs (client records joined with the
//! acceptor's, queue samples, the stall's own mark and counters).

use super::schedule::SynSchedule;
use super::{recovery, Conn, Criteria, Recovery, Sample};

/// How a client connection ended, from the client's records and the join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Established, and the acceptor held its peer.
    Held,
    /// Established on the client, never accepted (its final ACK met a full queue, or a
    /// SYN-cookie handshake completed on the client only).
    ClientOnly,
    /// Gave up: the kernel's SYN schedule or loadgen's connect timeout.
    TimedOut,
    /// Reset during the handshake.
    Reset,
    /// Still unresolved when loadgen ended.
    Pending,
    /// Refused, no local port, or another errno.
    Other,
}

/// One client connection of a stall run (CLOCK_MONOTONIC ns throughout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConn {
    /// When it was meant to start (open loop: its place in the schedule; closed loop:
    /// its connect()).
    pub intended_ns: u64,
    /// When connect() was called.
    pub connect_start_ns: u64,
    /// When connect() completed, if it was established.
    pub established_ns: Option<u64>,
    /// When the acceptor held its peer, if it did.
    pub held_ns: Option<u64>,
    /// How it ended.
    pub fate: Fate,
}

/// What a stall run did, measured or predicted: the same figures either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Connections made (arrivals).
    pub arrivals: u64,
    /// Of those, meant to start while the acceptor was stopped.
    pub arrivals_in_stall: u64,
    /// SYNs dropped on a full queue over the run (measured: TcpExt ListenOverflows,
    /// which also counts final ACKs that met a full queue).
    pub dropped: Option<u64>,
    /// The same while the acceptor was stopped.
    pub dropped_in_stall: Option<u64>,
    /// Per retransmit (1-based), connections admitted by it: the retry waves.
    pub waves: Vec<u64>,
    /// Connections the acceptor held.
    pub held: u64,
    /// Connections that gave up.
    pub timed_out: u64,
    /// Connections established on the client but never accepted.
    pub client_only: u64,
    /// Connections armed operations took out of the queue during the stall (measured:
    /// SYNs admitted while stopped, plus the queue at the stall's start, minus the
    /// queue at the resume).
    pub armed_taken: Option<u64>,
    /// When the clients were back to normal.
    pub recovery: Recovery,
    /// The queue's depth at the resume.
    pub queue_at_resume: u32,
    /// Time from the resume until the queue first ran empty, ms (None: never).
    pub empty_after_resume_ms: Option<f64>,
    /// Lag (intended start → held) percentiles of the connections meant to start from
    /// the stall's start on, ns (held ones only).
    pub lag_p50_ns: u64,
    /// p99 of that lag.
    pub lag_p99_ns: u64,
    /// p99.9 of that lag.
    pub lag_p999_ns: u64,
    /// Excess latency the stall caused: Σ over those connections of their lag beyond
    /// the pre-stall median, connection-seconds (held ones only).
    pub excess_conn_s: f64,
    /// The most connections held within one 10 ms bin after the resume: how the
    /// acceptor took them (one at a time at its rate, or whole batches at once).
    pub most_held_in_bin: u64,
    /// The same before the stall: what its rate allowed then.
    pub most_held_in_bin_before: u64,
}

/// The judgement's inputs that both sides share, in ns on the run's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The stall's start.
    pub stall_start_ns: u64,
    /// The resume.
    pub resume_ns: u64,
    /// When new arrivals stopped (the last one's intended start).
    pub arrivals_end_ns: u64,
}

/// A retransmit index (1-based) for a connect that took `latency_ns`: the schedule's
/// nearest retransmit within 300 ms, for latencies of 0.5 s and more.
pub fn wave_of(latency_ns: u64, rtx_ms: &[u64]) -> Option<usize> {
    if latency_ns < crate::overflow::RETRY_THRESHOLD_NS {
        return None;
    }
    let ms = latency_ns / 1_000_000;
    rtx_ms
        .iter()
        .enumerate()
        .min_by_key(|(_, &t)| t.abs_diff(ms))
        .filter(|(_, &t)| t.abs_diff(ms) <= 300)
        .map(|(i, _)| i + 1)
}

/// The times a connection's SYNs left: its connect() and each retransmit before the
/// one that got it in (all of them, up to `give_up_ms`, when it never got in).
pub fn syn_times(c: &ClientConn, rtx_ms: &[u64], give_up_ms: u64) -> Vec<u64> {
    let attempts = match c.established_ns {
        Some(e) => wave_of(e.saturating_sub(c.connect_start_ns), rtx_ms).unwrap_or(0),
        None => rtx_ms.iter().take_while(|&&t| t < give_up_ms).count(),
    };
    std::iter::once(c.connect_start_ns)
        .chain(
            rtx_ms
                .iter()
                .take(attempts)
                .map(|t| c.connect_start_ns + t * 1_000_000),
        )
        .collect()
}

/// Queue depth per `step_ns` bin over [from, to): the deepest the queue was in each
/// (from change-only samples of one or more listeners: the deepest listener).
pub fn queue_bins(
    listeners: &[Vec<Sample>],
    from_ns: u64,
    to_ns: u64,
    step_ns: u64,
) -> Vec<Sample> {
    let bins = (to_ns.saturating_sub(from_ns)).div_ceil(step_ns) as usize;
    let mut out: Vec<Sample> = (0..bins)
        .map(|i| Sample {
            t_ns: from_ns + i as u64 * step_ns,
            depth: 0,
        })
        .collect();
    for changes in listeners {
        let mut depth = 0;
        let mut k = 0;
        for (i, bin) in out.iter_mut().enumerate() {
            let end = from_ns + (i as u64 + 1) * step_ns;
            // The depth in force at the bin's start, then every change inside it.
            let mut deepest = depth;
            while k < changes.len() && changes[k].t_ns < end {
                depth = changes[k].depth;
                if changes[k].t_ns >= bin.t_ns {
                    deepest = deepest.max(depth);
                } else {
                    deepest = depth;
                }
                k += 1;
            }
            bin.depth = bin.depth.max(deepest.max(depth));
        }
    }
    out
}

/// The pre-stall lag (intended → held) at p50 and p99, ns: what "normal" was.
pub fn prestall_lag(conns: &[ClientConn], stall_start_ns: u64) -> (u64, u64) {
    let mut lags: Vec<u64> = conns
        .iter()
        .filter(|c| c.intended_ns < stall_start_ns)
        .filter_map(|c| c.held_ns.map(|h| h.saturating_sub(c.intended_ns)))
        .collect();
    lags.sort_unstable();
    (pct(&lags, 0.5), pct(&lags, 0.99))
}

/// The `q` quantile of sorted values (nearest rank); 0 for none.
pub fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The figures both sides share, from connections (`Conn`: intended, held) and a
/// binned queue series, judged with `criteria` from `w.resume_ns`.
pub fn common_figures(
    conns: &[Conn],
    queue: &[Sample],
    w: &Window,
    criteria: &Criteria,
    prestall_p50_ns: u64,
) -> Figures {
    let mut lags = Vec::new();
    let mut excess = 0.0;
    for c in conns.iter().filter(|c| c.intended_ns >= w.stall_start_ns) {
        if let Some(d) = c.done_ns {
            let lag = d.saturating_sub(c.intended_ns);
            lags.push(lag);
            excess += lag.saturating_sub(prestall_p50_ns) as f64 * 1e-9;
        }
    }
    lags.sort_unstable();
    let depth_at = |t: u64| {
        queue
            .iter()
            .rev()
            .find(|s| s.t_ns <= t)
            .map_or(0, |s| s.depth)
    };
    let mut held_bins: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    let mut before: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for d in conns.iter().filter_map(|c| c.done_ns) {
        if d >= w.resume_ns {
            *held_bins.entry((d - w.resume_ns) / 10_000_000).or_default() += 1;
        } else if d < w.stall_start_ns {
            *before.entry(d / 10_000_000).or_default() += 1;
        }
    }
    let empty_after = queue
        .iter()
        .find(|s| s.t_ns >= w.resume_ns && s.depth == 0)
        .map(|s| s.t_ns.saturating_sub(w.resume_ns) as f64 / 1e6);
    Figures {
        arrivals: conns.len() as u64,
        arrivals_in_stall: conns
            .iter()
            .filter(|c| (w.stall_start_ns..w.resume_ns).contains(&c.intended_ns))
            .count() as u64,
        dropped: None,
        dropped_in_stall: None,
        waves: Vec::new(),
        held: conns.iter().filter(|c| c.done_ns.is_some()).count() as u64,
        timed_out: 0,
        client_only: 0,
        armed_taken: None,
        recovery: recovery(conns, queue, w.resume_ns, w.arrivals_end_ns, criteria),
        queue_at_resume: depth_at(w.resume_ns.saturating_sub(1)),
        empty_after_resume_ms: empty_after,
        lag_p50_ns: pct(&lags, 0.5),
        lag_p99_ns: pct(&lags, 0.99),
        lag_p999_ns: pct(&lags, 0.999),
        excess_conn_s: excess,
        most_held_in_bin: held_bins.values().copied().max().unwrap_or(0),
        most_held_in_bin_before: before.values().copied().max().unwrap_or(0),
    }
}

/// What was measured: the client's connections (with the acceptor's held times), the
/// binned queue, the window, ListenOverflows over the run and during the stall.
#[allow(clippy::too_many_arguments)]
pub fn measured(
    conns: &[ClientConn],
    queue: &[Sample],
    w: &Window,
    criteria: &Criteria,
    schedule: &SynSchedule,
    give_up_ms: u64,
    overflows: Option<u64>,
    overflows_in_stall: Option<u64>,
) -> Figures {
    let (p50, _) = prestall_lag(conns, w.stall_start_ns);
    let plain: Vec<Conn> = conns
        .iter()
        .map(|c| Conn {
            intended_ns: c.intended_ns,
            done_ns: c.held_ns,
        })
        .collect();
    let mut f = common_figures(&plain, queue, w, criteria, p50);
    let rtx = schedule.retransmits_ms();
    f.waves = vec![0; rtx.len()];
    let mut syns_in_stall = 0u64;
    for c in conns {
        if let Some(k) = c
            .established_ns
            .and_then(|e| wave_of(e.saturating_sub(c.connect_start_ns), &rtx))
        {
            f.waves[k - 1] += 1;
        }
        syns_in_stall += syn_times(c, &rtx, give_up_ms)
            .into_iter()
            .filter(|t| (w.stall_start_ns..w.resume_ns).contains(t))
            .count() as u64;
    }
    f.timed_out = conns.iter().filter(|c| c.fate == Fate::TimedOut).count() as u64;
    f.client_only = conns.iter().filter(|c| c.fate == Fate::ClientOnly).count() as u64;
    f.dropped = overflows;
    f.dropped_in_stall = overflows_in_stall;
    // What the stall found queued was not admitted during it.
    let at_start = queue
        .iter()
        .rev()
        .find(|s| s.t_ns <= w.stall_start_ns)
        .map_or(0, |s| s.depth);
    f.armed_taken = overflows_in_stall.map(|d| {
        (syns_in_stall + u64::from(at_start))
            .saturating_sub(d)
            .saturating_sub(u64::from(f.queue_at_resume))
    });
    f
}

/// The model's prediction in the same terms, its times moved onto the run's clock by
/// `t0_ns` (the first arrival's intended start).
pub fn predicted(
    p: &super::model::Prediction,
    t0_ns: u64,
    w: &Window,
    criteria: &Criteria,
) -> Figures {
    let shift = |c: &Conn| Conn {
        intended_ns: c.intended_ns + t0_ns,
        done_ns: c.done_ns.map(|d| d + t0_ns),
    };
    let conns: Vec<Conn> = p.conns.iter().map(shift).collect();
    let queue: Vec<Sample> = p
        .queue
        .iter()
        .map(|s| Sample {
            t_ns: s.t_ns + t0_ns,
            depth: s.depth,
        })
        .collect();
    let mut f = common_figures(&conns, &queue, w, criteria, 0);
    // As ListenOverflows counts them: dropped SYNs and final ACKs that met a full queue.
    f.dropped = Some(p.dropped_syns + p.client_only);
    f.dropped_in_stall = Some(p.dropped_in_stall);
    f.waves = p.waves.clone();
    f.timed_out = p.timed_out;
    f.client_only = p.client_only;
    f.armed_taken = Some(p.armed_taken);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const RTX: [u64; 6] = [1000, 2000, 3000, 4000, 5000, 7000];

    #[test]
    fn waves_are_the_nearest_retransmit_within_300_ms() {
        assert_eq!(wave_of(20 * MS, &RTX), None);
        assert_eq!(wave_of(1004 * MS, &RTX), Some(1));
        assert_eq!(wave_of(2290 * MS, &RTX), Some(2));
        assert_eq!(wave_of(6000 * MS, &RTX), None, "between 5 s and 7 s");
        assert_eq!(wave_of(7100 * MS, &RTX), Some(6));
    }

    #[test]
    fn syns_leave_at_connect_and_at_each_retransmit_before_the_last() {
        let c = ClientConn {
            intended_ns: 0,
            connect_start_ns: 100 * MS,
            established_ns: Some(2101 * MS),
            held_ns: Some(2102 * MS),
            fate: Fate::Held,
        };
        assert_eq!(syn_times(&c, &RTX, 8000), [100 * MS, 1100 * MS, 2100 * MS]);
        let lost = ClientConn {
            established_ns: None,
            held_ns: None,
            fate: Fate::TimedOut,
            ..c
        };
        assert_eq!(syn_times(&lost, &RTX, 4000).len(), 4, "0, 1, 2, 3 s");
    }

    #[test]
    fn queue_bins_keep_the_deepest_moment_of_each_bin() {
        let changes = vec![
            Sample { t_ns: 0, depth: 0 },
            Sample {
                t_ns: 12 * MS,
                depth: 9,
            },
            Sample {
                t_ns: 13 * MS,
                depth: 2,
            },
            Sample {
                t_ns: 35 * MS,
                depth: 0,
            },
        ];
        let bins = queue_bins(&[changes], 0, 50 * MS, 10 * MS);
        let d: Vec<u32> = bins.iter().map(|s| s.depth).collect();
        // 9 for a millisecond inside bin 1, 2 in force through bin 2, 0 from 35 ms.
        assert_eq!(d, [0, 9, 2, 2, 0]);
    }

    #[test]
    fn armed_taken_is_what_stopped_acceptor_let_in_beyond_the_queue() {
        // 100 arrivals 1 ms apart from 0; stall 10..60 ms; the queue holds 9. The
        // 50 arriving in the stall: 20 taken by armed accepts, 9 queued, 21 dropped and
        // admitted by their first retransmit after the resume.
        let mut conns = Vec::new();
        for i in 0..100u64 {
            let t = i * MS;
            let in_stall = (10..60).contains(&i);
            let dropped = in_stall && i >= 39;
            let est = if dropped { t + 1000 * MS } else { t + 50_000 };
            conns.push(ClientConn {
                intended_ns: t,
                connect_start_ns: t,
                established_ns: Some(est),
                held_ns: Some(if in_stall && !dropped { 60 * MS } else { est }),
                fate: Fate::Held,
            });
        }
        let queue = vec![
            Sample { t_ns: 0, depth: 0 },
            Sample {
                t_ns: 30 * MS,
                depth: 9,
            },
            Sample {
                t_ns: 60 * MS,
                depth: 0,
            },
        ];
        let w = Window {
            stall_start_ns: 10 * MS,
            resume_ns: 60 * MS,
            arrivals_end_ns: 100 * MS,
        };
        let bins = queue_bins(&[queue], 0, 2000 * MS, MS);
        let schedule = SynSchedule {
            retries: 6,
            linear: 4,
        };
        let f = measured(
            &conns,
            &bins,
            &w,
            &Criteria::new(8, 0),
            &schedule,
            8000,
            Some(21),
            Some(21),
        );
        assert_eq!(f.arrivals_in_stall, 50);
        assert_eq!(f.waves[0], 21);
        assert_eq!(f.queue_at_resume, 9);
        assert_eq!(f.armed_taken, Some(50 - 21 - 9));
        assert_eq!(f.held, 100);
        // Lags: 21 connections a second late dominate the p99 and the excess.
        assert!(f.lag_p99_ns >= 1000 * MS, "{}", f.lag_p99_ns);
        assert!(
            f.excess_conn_s > 21.0 && f.excess_conn_s < 23.0,
            "{}",
            f.excess_conn_s
        );
    }
}
