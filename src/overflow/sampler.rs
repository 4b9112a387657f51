//! Samples accept-queue depth and limit on its own thread — of a listener we hold
//! (`TCP_INFO` on its descriptor) or of every LISTEN socket on a port, ours or an
//! external server's (`kernel::sockdiag`). Both read the same two kernel fields
//! (`sk_ack_backlog`, `sk_max_ack_backlog`; tested equal in tests/external.rs), so one
//! loop serves both and the series look alike. A listener we hold keeps `TCP_INFO`: one
//! getsockopt per read against two netlink dumps (1.6 µs and 38 µs a read, 20 000 reads
//! each on a 2-vCPU VM, Linux 6.18, release build), which at a burst's 100 µs interval
//! would cost the sampler's CPU a third of its time. Only changes are kept, so a long
//! flat stretch costs one sample.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::clock::mono_ns;

use crate::kernel::sockdiag::ListenerDiag;
use crate::listener;

/// Where a sampler reads the queue.
pub enum Source {
    /// A listener we hold: `TCP_INFO` on its descriptor, one series.
    Fd(RawFd),
    /// Every LISTEN socket on `port` in `diag`'s network namespace: one series per
    /// socket (an `SO_REUSEPORT` group has several), in the order they first appear.
    Port {
        /// A sock_diag socket opened in the namespace of the listeners.
        diag: ListenerDiag,
        /// Their port.
        port: u16,
    },
}

impl Source {
    /// Reads (socket key, depth, limit) of every socket into `out` (cleared first).
    fn read(&mut self, out: &mut Vec<(u32, u32, u32)>) -> std::io::Result<()> {
        out.clear();
        match self {
            Source::Fd(fd) => {
                let q = listener::queue_info(*fd)?;
                out.push((0, q.depth, q.limit));
            }
            Source::Port { diag, port } => {
                for l in diag.listening(*port)? {
                    out.push((l.inode, l.queued, l.backlog));
                }
            }
        }
        Ok(())
    }
}

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// CLOCK_MONOTONIC ns.
    pub t_ns: u64,
    /// Connections waiting in the accept queue.
    pub depth: u32,
    /// The queue's limit.
    pub limit: u32,
}

/// A running sampler.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Samples>>,
}

/// What a sampler saw.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Changes of (depth, limit), in time order (the first sample is always kept).
    pub changes: Vec<Sample>,
    /// Samples taken in all.
    pub taken: u64,
    /// Σ depth over every sample taken, for the mean.
    pub depth_sum: u64,
    /// Largest gap between two samples, ns (shows whether the interval was kept).
    pub max_gap_ns: u64,
}

impl Samples {
    /// Deepest queue seen.
    pub fn max_depth(&self) -> u32 {
        self.changes.iter().map(|s| s.depth).max().unwrap_or(0)
    }
    /// Mean depth over every sample.
    pub fn mean_depth(&self) -> f64 {
        if self.taken == 0 {
            0.0
        } else {
            self.depth_sum as f64 / self.taken as f64
        }
    }
    /// The queue limit (last seen).
    pub fn limit(&self) -> u32 {
        self.changes.last().map_or(0, |s| s.limit)
    }
    /// First time at or after `from_ns` when the queue was empty.
    pub fn first_empty_after(&self, from_ns: u64) -> Option<u64> {
        // The depth in force at `from_ns` may have been set by an earlier change.
        let at = self
            .changes
            .iter()
            .rev()
            .find(|s| s.t_ns <= from_ns)
            .map(|s| s.depth);
        if at == Some(0) {
            return Some(from_ns);
        }
        self.changes
            .iter()
            .find(|s| s.t_ns >= from_ns && s.depth == 0)
            .map(|s| s.t_ns)
    }
}

impl Sampler {
    /// Starts sampling listener `fd` every `interval`.
    pub fn start(fd: RawFd, interval: Duration) -> std::io::Result<Sampler> {
        Sampler::start_source(Source::Fd(fd), interval)
    }

    /// Starts sampling `source` every `interval`.
    pub fn start_source(source: Source, interval: Duration) -> std::io::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("queue-sampler".into())
            .spawn(move || sample_loop(source, interval, &flag))?;
        Ok(Sampler { stop, handle })
    }

    /// Stops sampling and returns what was seen of the first (an `Fd` source's only)
    /// socket.
    pub fn finish(self) -> Samples {
        self.finish_all().into_iter().next().unwrap_or_default()
    }

    /// Stops sampling and returns what was seen, one series per socket.
    pub fn finish_all(self) -> Vec<Samples> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// One socket's series while sampling: its key, what was seen, the last (depth, limit).
type Series = (u32, Samples, Option<(u32, u32)>);

/// Samples `source` until `stop` or until it cannot be read (the listener is gone).
fn sample_loop(mut source: Source, interval: Duration, stop: &AtomicBool) -> Vec<Samples> {
    let mut series: Vec<Series> = Vec::new();
    let mut read = Vec::new();
    let mut prev_t = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if source.read(&mut read).is_err() {
            break;
        }
        let t_ns = mono_ns();
        for &(key, depth, limit) in &read {
            let i = match series.iter().position(|s| s.0 == key) {
                Some(i) => i,
                None => {
                    series.push((key, Samples::default(), None));
                    series.len() - 1
                }
            };
            let (_, out, last) = &mut series[i];
            if prev_t != 0 {
                out.max_gap_ns = out.max_gap_ns.max(t_ns - prev_t);
            }
            out.taken += 1;
            out.depth_sum += depth as u64;
            if *last != Some((depth, limit)) {
                out.changes.push(Sample { t_ns, depth, limit });
                *last = Some((depth, limit));
            }
        }
        prev_t = t_ns;
        std::thread::sleep(interval);
    }
    series.into_iter().map(|s| s.1).collect()
}

/// Writes the samples as CSV `t_ms,depth,limit`, time relative to `t0_ns`.
pub fn write_csv(path: &std::path::Path, samples: &Samples, t0_ns: u64) -> std::io::Result<()> {
    let mut text = String::from("t_ms,depth,limit\n");
    for s in &samples.changes {
        let t_ms = (s.t_ns as f64 - t0_ns as f64) / 1e6;
        text.push_str(&format!("{t_ms:.3},{},{}\n", s.depth, s.limit));
    }
    std::fs::write(path, text)
}
