//! Many acceptors on one port: N engine instances, each on a thread of its own with
//! its own engine (its own io_uring ring, its own single-threaded tokio runtime), on
//! one shared listener or on N `SO_REUSEPORT` listeners ("shards") of the same port.
//!
//! This module owns the listener set, the per-acceptor CPU and delay assignment, and
//! the merge of the per-acceptor records at the end (per-thread state, merged once).
//! It measures nothing itself and formats nothing (the `per_acceptor` column is
//! `report::per_acceptor`'s).
//!
//! Kernel behaviour a reader must know (Linux ≥ 4.5):
//! - shared: every acceptor waits on the same accept queue. A blocking `accept(2)`
//!   waits exclusively (`inet_csk_wait_for_connect` uses `prepare_to_wait_exclusive`),
//!   so one connection wakes one sleeper. io_uring accepts arm a poll on the listener
//!   with `EPOLLEXCLUSIVE` (the accept opcode is `poll_exclusive`, Linux ≥ 5.16) and
//!   retry inside the kernel: a completion is posted only for a real connection, so
//!   any futile retry is invisible to the application — and the ring whose poll sits
//!   at the head of the wait queue tends to take every connection (a multishot accept
//!   never leaves the queue), so a shared listener can be very unfair. tokio (mio) registers the
//!   listener with edge-triggered epoll *without* `EPOLLEXCLUSIVE`: every runtime is
//!   woken for each connection and all but one find `EAGAIN` inside tokio's accept,
//!   which retries silently — invisible here too.
//! - reuseport: the kernel picks the shard for each SYN by a hash of the 4-tuple
//!   (`reuseport_select_sock`), knowing nothing of how busy the shard's acceptor is.
//!   Each shard has its own accept queue of backlog+1 entries: a slow shard's queue
//!   overflows (its clients see SYN drops and retries) while the others stay empty.

mod listen;
mod steer;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use listen::{run_listen, ListenOut, ListenTeam};

use crate::listener::{Listener, ListenerError, ListenerSpec};
use crate::record::Recorder;
use common::hist::new_histogram;

/// How N acceptors share the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// One listener (one accept queue), every acceptor on it.
    Shared,
    /// One SO_REUSEPORT listener per acceptor on the same port, each its own queue.
    Reuseport,
    /// As `Reuseport`, with a classic BPF program on the group
    /// (`SO_ATTACH_REUSEPORT_CBPF`, Linux ≥ 4.5) that picks shard `cpu % N`, where
    /// `cpu` is the CPU processing the SYN: connections stay on the CPU they arrive on.
    ReuseportCpu,
}

impl Sharing {
    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Sharing::Shared => "shared",
            Sharing::Reuseport => "reuseport",
            Sharing::ReuseportCpu => "reuseport-cpu",
        }
    }
}

impl fmt::Display for Sharing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Sharing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shared" => Ok(Sharing::Shared),
            "reuseport" => Ok(Sharing::Reuseport),
            "reuseport-cpu" => Ok(Sharing::ReuseportCpu),
            _ => Err("use shared (one listener), reuseport (one SO_REUSEPORT listener per acceptor) or reuseport-cpu (the same, steered by CPU)".into()),
        }
    }
}

/// `--slow-acceptor I:DELAY`: acceptor I busy-waits DELAY per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowAcceptor {
    /// The acceptor's index, from 0.
    pub index: u32,
    /// Work per connection.
    pub delay: Duration,
}

impl FromStr for SlowAcceptor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (i, d) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: write INDEX:DELAY, e.g. 0:2ms"))?;
        let index = i
            .trim()
            .parse()
            .map_err(|_| format!("{i:?} is not an acceptor index (0, 1, …)"))?;
        let delay = crate::parse::parse_duration(d.trim())?;
        if delay.is_zero() {
            return Err("the delay must be above zero".into());
        }
        Ok(SlowAcceptor { index, delay })
    }
}

impl fmt::Display for SlowAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.index,
            humantime::format_duration(self.delay)
        )
    }
}

/// The listeners of a run: one (shared) or one per acceptor (reuseport).
#[derive(Debug)]
pub struct ListenerSet {
    listeners: Vec<Listener>,
    /// How the acceptors share the port.
    pub sharing: Sharing,
    /// Acceptors the set was made for.
    pub acceptors: u32,
}

impl ListenerSet {
    /// Binds the set. reuseport: the first listener picks the port (port 0 → a free
    /// one) with SO_REUSEPORT set, the others bind the same port with it set too
    /// (the kernel allows that to sockets of the same user).
    pub fn bind(
        spec: &ListenerSpec,
        acceptors: u32,
        sharing: Sharing,
    ) -> Result<ListenerSet, ListenerError> {
        let n = match sharing {
            Sharing::Shared => 1,
            Sharing::Reuseport | Sharing::ReuseportCpu => acceptors.max(1),
        };
        let mut spec = spec.clone();
        spec.reuse_port |= sharing != Sharing::Shared;
        let first = Listener::bind(&spec)?;
        spec.addr = first.local_addr;
        let mut listeners = vec![first];
        for _ in 1..n {
            listeners.push(Listener::bind(&spec)?);
        }
        if sharing == Sharing::ReuseportCpu {
            steer::by_cpu(&listeners[0], n).map_err(|source| ListenerError::Io {
                what: "SO_ATTACH_REUSEPORT_CBPF (steering by CPU, Linux 4.5)",
                addr: spec.addr,
                source,
            })?;
        }
        Ok(ListenerSet {
            listeners,
            sharing,
            acceptors: acceptors.max(1),
        })
    }

    /// The listener acceptor `i` takes connections from.
    pub fn for_acceptor(&self, i: usize) -> &Listener {
        &self.listeners[i % self.listeners.len()]
    }

    /// Every listener, shard 0 first.
    pub fn all(&self) -> &[Listener] {
        &self.listeners
    }

    /// The first listener (its address is the port's; its backlog every shard's).
    pub fn first(&self) -> &Listener {
        &self.listeners[0]
    }

    /// Connections waiting over every listener (0 for a listener that cannot be read).
    pub fn total_depth(&self) -> u32 {
        self.listeners
            .iter()
            .map(|l| l.queue_info().map_or(0, |q| q.depth))
            .sum()
    }
}

/// The CPU acceptor `i` is pinned to: round-robin over `cpus`.
pub fn cpu_for(i: usize, cpus: &[usize]) -> usize {
    if cpus.is_empty() {
        0
    } else {
        cpus[i % cpus.len()]
    }
}

/// The work-per-connection of acceptor `i`: the slow one's delay, else `default`.
pub fn delay_for(
    i: usize,
    slow: Option<SlowAcceptor>,
    default: Option<Duration>,
) -> Option<Duration> {
    match slow {
        Some(s) if s.index as usize == i => Some(s.delay),
        _ => default,
    }
}

/// What each acceptor did, beside the merged recorder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerAcceptor {
    /// Connections accepted.
    pub accepted: u64,
    /// Thread CPU over its run, s.
    pub cpu_s: f64,
    /// End-to-end peer latency p50, ns (set after the join).
    pub peer_p50_ns: Option<u64>,
    /// End-to-end peer latency p99, ns (set after the join; empty without a timed connection).
    pub peer_p99_ns: Option<u64>,
    /// Its connections whose end-to-end peer latency (client connect() → peer held)
    /// reached 0.5 s (set after the join). Either the SYN was dropped and retransmitted
    /// — on a reuseport shard by that shard's own full queue, since a retransmitted SYN
    /// hashes to the same shard — or the connection waited that long after the kernel
    /// accepted it (multishot: in the ring's completion queue behind a slow acceptor).
    /// summary.csv `syn_retry_stalls` (client connect ≥ 0.5 s) tells the two apart.
    pub stalled: u64,
}

/// Merges the acceptors' recorders into one (peers concatenated, acceptor 0 first)
/// and says which acceptor each merged peer came from.
pub fn merge(recs: Vec<Recorder>) -> (Recorder, Vec<u16>) {
    let mut owner = Vec::new();
    let mut out: Option<Recorder> = None;
    for (i, r) in recs.into_iter().enumerate() {
        owner.extend(std::iter::repeat_n(i as u16, r.peers.len()));
        match out.as_mut() {
            None => out = Some(r),
            Some(m) => m.absorb(r),
        }
    }
    (out.unwrap_or_default(), owner)
}

/// min/max of the per-acceptor counts: 1 = perfectly even, 0 = one acceptor got nothing.
pub fn fairness(counts: &[u64]) -> Option<f64> {
    let max = counts.iter().copied().max()?;
    let min = counts.iter().copied().min()?;
    (max > 0).then(|| min as f64 / max as f64)
}

/// Per-acceptor latency histograms, filled by the join through `owner`.
pub fn histograms(n: usize) -> Vec<hdrhistogram::Histogram<u64>> {
    (0..n).map(|_| new_histogram()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuseport_cpu_hands_connections_to_the_shard_of_the_connecting_cpu() {
        let spec = ListenerSpec {
            addr: ([127, 0, 0, 1], 0).into(),
            backlog: 16,
            reuse_port: false,
            dual_stack: false,
        };
        let set = ListenerSet::bind(&spec, 2, Sharing::ReuseportCpu).unwrap();
        let addr = set.first().local_addr;
        let cpu = *common::affinity::allowed_cpus().last().unwrap();
        // On loopback the SYN is processed on the CPU that sends it.
        let conns = std::thread::spawn(move || {
            common::affinity::pin_current_thread(cpu).unwrap();
            (0..5)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        let depth: Vec<u32> = set
            .all()
            .iter()
            .map(|l| l.queue_info().unwrap().depth)
            .collect();
        let mut want = vec![0, 0];
        want[cpu % 2] = 5;
        assert_eq!(depth, want, "connected from CPU {cpu}");
        drop(conns);
    }

    #[test]
    fn slow_acceptor_parses_and_refuses_nonsense() {
        let s: SlowAcceptor = "1:2ms".parse().unwrap();
        assert_eq!(s.index, 1);
        assert_eq!(s.delay, Duration::from_millis(2));
        assert!("2ms".parse::<SlowAcceptor>().is_err());
        assert!("x:2ms".parse::<SlowAcceptor>().is_err());
        assert!("0:0s".parse::<SlowAcceptor>().is_err());
        assert_eq!(delay_for(1, Some(s), None), Some(Duration::from_millis(2)));
        assert_eq!(delay_for(0, Some(s), None), None);
    }

    #[test]
    fn fairness_and_cpus() {
        assert_eq!(fairness(&[10, 5]), Some(0.5));
        assert_eq!(fairness(&[0, 0]), None);
        assert_eq!(fairness(&[]), None);
        assert_eq!(cpu_for(3, &[0]), 0);
        assert_eq!(cpu_for(3, &[0, 1]), 1);
    }

    #[test]
    fn reuseport_shards_share_one_port() {
        let spec = ListenerSpec {
            addr: ([127, 0, 0, 1], 0).into(),
            backlog: 8,
            reuse_port: false,
            dual_stack: false,
        };
        let set = ListenerSet::bind(&spec, 3, Sharing::Reuseport).unwrap();
        assert_eq!(set.all().len(), 3);
        let port = set.first().local_addr.port();
        assert!(set.all().iter().all(|l| l.local_addr.port() == port));
        let steered = ListenerSet::bind(&spec, 2, Sharing::ReuseportCpu).unwrap();
        assert_eq!(steered.all().len(), 2);
        let shared = ListenerSet::bind(&spec, 3, Sharing::Shared).unwrap();
        assert_eq!(shared.all().len(), 1);
        assert_eq!(shared.for_acceptor(2).local_addr, shared.first().local_addr);
    }
}
