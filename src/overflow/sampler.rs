//! Samples a listener's accept-queue depth and limit (`TCP_INFO`) on its own thread.
//! Only changes are kept, so a long flat stretch costs one sample.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::clock::mono_ns;

use crate::listener;

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
    handle: JoinHandle<Samples>,
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
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("queue-sampler".into())
            .spawn(move || sample_loop(fd, interval, &flag))?;
        Ok(Sampler { stop, handle })
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

fn sample_loop(fd: RawFd, interval: Duration, stop: &AtomicBool) -> Samples {
    let mut out = Samples::default();
    let mut last: Option<(u32, u32)> = None;
    let mut prev_t = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Ok(q) = listener::queue_info(fd) else {
            break;
        };
        let t_ns = mono_ns();
        if prev_t != 0 {
            out.max_gap_ns = out.max_gap_ns.max(t_ns - prev_t);
        }
        prev_t = t_ns;
        out.taken += 1;
        out.depth_sum += q.depth as u64;
        if last != Some((q.depth, q.limit)) {
            out.changes.push(Sample {
                t_ns,
                depth: q.depth,
                limit: q.limit,
            });
            last = Some((q.depth, q.limit));
        }
        std::thread::sleep(interval);
    }
    out
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
