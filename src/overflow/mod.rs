//! Backlog overflow: what a full accept queue does to clients.
//!
//! Modes `burst` (N connects against a paused acceptor, which then drains) and
//! `overload` (an open-loop rate above a deliberately slowed acceptor). Around the
//! usual driven run this samples the listener's accept-queue depth and reads the
//! TcpExt counters before and after. As root each run happens in a fresh network
//! namespace ([`crate::kernel::netns`]) so the counters count only our traffic.
//!
//! Kernel facts used here (Linux ≥ 4.x, checked by tests/overflow.rs): the queue
//! holds backlog+1 connections (`sk_acceptq_is_full` tests `>`); when it is full a
//! new SYN is dropped (ListenOverflows and ListenDrops grow) and the client retries
//! it after its SYN retransmit timeout; with tcp_abort_on_overflow=1 only a final
//! ACK that meets a full queue is answered with RST.

pub mod sampler;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::config::Mode;
use crate::kernel::netstat::{self, OVERFLOW_COUNTERS};
use crate::listener::Listener;
use crate::sweep::run::{run_driven, Measured, RunSpec};
use sampler::{Sampler, Samples};

/// What an overflow run saw beyond the usual figures.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Accept-queue samples.
    pub samples: Samples,
    /// CLOCK_MONOTONIC ns when sampling started (time 0 of the depth CSV).
    pub t0_ns: u64,
    /// TcpExt counter deltas over the run (empty when /proc/net/netstat is unreadable).
    pub counters: BTreeMap<String, u64>,
    /// TcpExt counter deltas from the start until the acceptor started accepting.
    pub counters_paused: BTreeMap<String, u64>,
    /// True when the run had a private network namespace (counters are exact).
    pub private_netns: bool,
}

/// Runs a burst or overload run on `listener`.
pub fn run(spec: &RunSpec, listener: &Listener) -> anyhow::Result<Measured> {
    let burst = spec.mode == Mode::Burst;
    let before = netstat::read_tcpext().ok();
    let t0_ns = loadgen::clock::mono_ns();
    // Bursts change the queue within microseconds: sample fast. Overload is steady.
    let interval = if burst {
        Duration::from_micros(100)
    } else {
        Duration::from_millis(1)
    };
    let sampler = Sampler::start(listener.as_raw_fd(), interval)?;
    let pause = if burst {
        spec.cfg.overflow.pause
    } else {
        Duration::ZERO
    };
    let result = run_driven(spec, listener, pause);
    let samples = sampler.finish();
    let after = netstat::read_tcpext().ok();
    let mut m = result?;
    let delta = |after: Option<&BTreeMap<String, u64>>| match (&before, after) {
        (Some(b), Some(a)) => netstat::delta(b, a, OVERFLOW_COUNTERS),
        _ => BTreeMap::new(),
    };
    let counters = delta(after.as_ref());
    let counters_paused = delta(m.counters_at_start.as_ref());
    m.overflow = Some(Figures {
        samples,
        t0_ns,
        counters,
        counters_paused,
        private_netns: spec.cfg.overflow.private_netns,
    });
    Ok(m)
}

/// Connect latencies at or above this are SYN retransmits (the first RTO is 1 s).
pub const RETRY_THRESHOLD_NS: u64 = 500_000_000;

/// Groups connect latencies at or above [`RETRY_THRESHOLD_NS`] into modes 0.5 s wide:
/// `[(centre_s, count)]` in time order. The centres show the kernel's SYN retransmit
/// schedule (about 1 s, 3 s, 7 s with exponential backoff).
pub fn retry_modes(latencies_ns: impl IntoIterator<Item = u64>) -> Vec<(f64, u64)> {
    let mut modes: BTreeMap<u64, u64> = BTreeMap::new();
    for l in latencies_ns {
        if l >= RETRY_THRESHOLD_NS {
            *modes.entry((l + 250_000_000) / 500_000_000).or_insert(0) += 1;
        }
    }
    modes
        .into_iter()
        .map(|(half_s, n)| (half_s as f64 * 0.5, n))
        .collect()
}

/// `1.0s:12;3.0s:4`, or empty.
pub fn format_modes(modes: &[(f64, u64)]) -> String {
    modes
        .iter()
        .map(|(s, n)| format!("{s:.1}s:{n}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// What the clients experienced when the queue overflowed, from their own outcomes
/// and the join: `none`, or `+`-joined parts — `syn-dropped` (connects retried or
/// never answered), `ack-dropped` (the client believes it is connected but the
/// acceptor never got the connection: its final ACK met a full queue and was
/// dropped, typical after a SYN cookie), `reset` (tcp_abort_on_overflow).
pub fn outcome(retried: u64, timeout_or_pending: u64, client_only: u64, reset: u64) -> String {
    let mut parts = Vec::new();
    if retried + timeout_or_pending > 0 {
        parts.push("syn-dropped");
    }
    if client_only > 0 {
        parts.push("ack-dropped");
    }
    if reset > 0 {
        parts.push("reset");
    }
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_modes_cluster_around_retransmit_times() {
        let ms = 1_000_000u64;
        let l = [10, 20, 1010 * ms, 1040 * ms, 3020 * ms, 400 * ms];
        let modes = retry_modes(l);
        assert_eq!(modes, vec![(1.0, 2), (3.0, 1)]);
        assert_eq!(format_modes(&modes), "1.0s:2;3.0s:1");
        assert_eq!(format_modes(&[]), "");
    }

    #[test]
    fn outcome_names_what_clients_saw() {
        assert_eq!(outcome(0, 0, 0, 0), "none");
        assert_eq!(outcome(3, 0, 0, 0), "syn-dropped");
        assert_eq!(outcome(0, 2, 0, 0), "syn-dropped");
        assert_eq!(outcome(0, 0, 0, 1), "reset");
        assert_eq!(outcome(1, 0, 5, 0), "syn-dropped+ack-dropped");
        assert_eq!(outcome(1, 0, 0, 1), "syn-dropped+reset");
    }
}
