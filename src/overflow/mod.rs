//! Backlog overflow: what a full accept queue does to clients.
//!
//! An observer wrapped around a driven run (modes `burst` and `overload`): [`Watch`]
//! reads the TcpExt counters and starts sampling the listener's accept-queue depth
//! before the run, and turns both into [`Figures`] after it. It knows nothing of how
//! the run is driven; the sweep decides that, and whether the run gets a private
//! network namespace ([`crate::kernel::netns`]) so the counters count only its traffic.
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

use crate::kernel::netstat::{self, OVERFLOW_COUNTERS};
use crate::listener::Listener;
use sampler::{Sampler, Samples};

/// TcpExt counters by name.
pub type Counters = BTreeMap<String, u64>;

/// What an overflow run saw beyond the usual figures.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Accept-queue samples, one set per listener (several with SO_REUSEPORT shards).
    pub samples: Vec<Samples>,
    /// CLOCK_MONOTONIC ns when sampling started (time 0 of the depth CSV).
    pub t0_ns: u64,
    /// TcpExt counter deltas over the run (empty when /proc/net/netstat is unreadable).
    pub counters: Counters,
    /// TcpExt counter deltas from the start until the acceptor was released.
    pub counters_paused: Counters,
}

/// Counters and queue sampling around one run, a sampler per listener. Start it on
/// the thread (and so in the network namespace) the run uses.
pub struct Watch {
    before: Option<Counters>,
    t0_ns: u64,
    samplers: Vec<Sampler>,
}

impl Watch {
    /// Reads the counters and starts sampling `listener`'s queue: every 100 µs for a
    /// burst (it changes within microseconds), every 1 ms otherwise (steady overload).
    pub fn start(listeners: &[Listener], burst: bool) -> std::io::Result<Watch> {
        let before = netstat::read_tcpext().ok();
        let t0_ns = common::clock::mono_ns();
        let interval = Self::interval(burst);
        let samplers = listeners
            .iter()
            .map(|l| Sampler::start(l.as_raw_fd(), interval))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Watch {
            before,
            t0_ns,
            samplers,
        })
    }

    /// As [`Watch::start`] for the LISTEN sockets on `port` seen through `diag` (opened
    /// in their namespace): an external server's, one series per socket.
    pub fn start_port(
        diag: crate::kernel::sockdiag::ListenerDiag,
        port: u16,
        burst: bool,
    ) -> std::io::Result<Watch> {
        let before = netstat::read_tcpext().ok();
        let t0_ns = common::clock::mono_ns();
        let sampler =
            Sampler::start_source(sampler::Source::Port { diag, port }, Self::interval(burst))?;
        Ok(Watch {
            before,
            t0_ns,
            samplers: vec![sampler],
        })
    }

    /// Every 100 µs for a burst (the queue changes within microseconds), every 1 ms
    /// otherwise (steady overload).
    fn interval(burst: bool) -> Duration {
        if burst {
            Duration::from_micros(100)
        } else {
            Duration::from_millis(1)
        }
    }

    /// Stops sampling and reads the counters again; `at_release` are the counters read
    /// when the acceptor was released (burst), for what the queue turned away while paused.
    pub fn finish(self, at_release: Option<&Counters>) -> Figures {
        // One series per listener we hold (empty if it could not be read), one per
        // socket on an external server's port.
        let samples = self
            .samplers
            .into_iter()
            .flat_map(|s| {
                let v = s.finish_all();
                if v.is_empty() {
                    vec![Samples::default()]
                } else {
                    v
                }
            })
            .collect();
        let after = netstat::read_tcpext().ok();
        let delta = |after: Option<&Counters>| match (&self.before, after) {
            (Some(b), Some(a)) => netstat::delta(b, a, OVERFLOW_COUNTERS),
            _ => BTreeMap::new(),
        };
        Figures {
            counters: delta(after.as_ref()),
            counters_paused: delta(at_release),
            samples,
            t0_ns: self.t0_ns,
        }
    }
}

/// Reads the TcpExt counters now (None when unreadable).
pub fn read_counters() -> Option<Counters> {
    netstat::read_tcpext().ok()
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
