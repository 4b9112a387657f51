//! The machine's own costs, measured on the acceptor's CPU: one system call, one
//! `io_uring_enter` of a NOP, one context switch between two threads on one CPU; and
//! what explains them — CPU model, microcode, the kernel's mitigations, HZ,
//! virtualisation, steal time. Which engine wins depends on them: where entering the
//! kernel is dear (a 600 ns `getppid()` under AMD TSA/SRSO mitigations), the engine that
//! enters it least wins, and a ratio measured on one machine is not a law for another.
//!
//! Owns these measurements and the files it reads for them; formats nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What one kernel entry costs here, measured once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Costs {
    /// The CPU the threads were pinned to.
    pub cpu: usize,
    /// A null system call (`getppid`), ns: the median of 7 batches' means.
    pub null_syscall_ns: Option<f64>,
    /// The same while perf counts the thread's system calls (what a sweep's
    /// `syscalls_per_accept` costs: every system call then takes the traced path).
    pub null_syscall_counted_ns: Option<f64>,
    /// `io_uring_enter` submitting one NOP and waiting for its completion, ns.
    pub uring_nop_enter_ns: Option<f64>,
    /// One context switch between two threads on this CPU, ns: half a round trip of a
    /// byte through two pipes (so it includes a pipe write and read on each side).
    pub context_switch_ns: Option<f64>,
    /// How long measuring took, ms.
    pub took_ms: f64,
}

/// The machine's profile over a sweep: the facts, and the costs measured at its start
/// and its end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// CPU model (/proc/cpuinfo).
    pub cpu_model: String,
    /// Microcode revision (/proc/cpuinfo), empty where not shown (many VMs).
    pub microcode: String,
    /// /sys/devices/system/cpu/vulnerabilities/*: each vulnerability and the kernel's
    /// mitigation of it.
    pub mitigations: BTreeMap<String, String>,
    /// Timer interrupts per second (from CLOCK_MONOTONIC_COARSE's resolution).
    pub hz: Option<u64>,
    /// Virtualised or not (see [`super::virtualisation`]).
    pub virtualised: String,
    /// Costs measured when the sweep started.
    pub start: Costs,
    /// Costs measured when it ended (absent for an interrupted sweep).
    pub end: Option<Costs>,
    /// Steal time over the sweep, % of all CPU time (/proc/stat; absent if unreadable).
    pub steal_pct: Option<f64>,
    /// /proc/stat's cpu line at the start: (steal, total) jiffies.
    #[serde(skip)]
    pub stat_at_start: Option<(u64, u64)>,
}

impl Profile {
    /// The facts of this machine and the costs on `cpu`, now (at most about a second);
    /// with `ids`, also a system call's cost while perf counts them.
    pub fn at_start(cpu: usize, ids: Option<super::perf::Ids>) -> Profile {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Profile {
            cpu_model: super::cpu_model().unwrap_or_default(),
            microcode: field(&cpuinfo, "microcode").unwrap_or_default(),
            mitigations: mitigations(),
            hz: hz(),
            virtualised: super::virtualisation(),
            start: measure(cpu, ids),
            end: None,
            steal_pct: None,
            stat_at_start: cpu_stat(),
        }
    }

    /// Measures again at the sweep's end and works out the steal over it.
    pub fn at_end(&mut self, ids: Option<super::perf::Ids>) {
        self.end = Some(measure(self.start.cpu, ids));
        if let (Some((s0, t0)), Some((s1, t1))) = (self.stat_at_start, cpu_stat()) {
            if t1 > t0 {
                self.steal_pct = Some(100.0 * s1.saturating_sub(s0) as f64 / (t1 - t0) as f64);
            }
        }
    }

    /// What a reader must know before trusting the sweep's ratios: steal above 2% of
    /// the sweep, or a cost that moved more than 20% between start and end.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(s) = self.steal_pct.filter(|s| *s > 2.0) {
            w.push(format!(
                "the hypervisor stole {s:.1}% of the CPU time during the sweep: figures include waiting for it"
            ));
        }
        if let Some(end) = &self.end {
            for (name, a, b) in [
                (
                    "null system call",
                    self.start.null_syscall_ns,
                    end.null_syscall_ns,
                ),
                (
                    "io_uring NOP enter",
                    self.start.uring_nop_enter_ns,
                    end.uring_nop_enter_ns,
                ),
                (
                    "context switch",
                    self.start.context_switch_ns,
                    end.context_switch_ns,
                ),
            ] {
                if let (Some(a), Some(b)) = (a, b) {
                    if a > 0.0 && (b / a - 1.0).abs() > 0.20 {
                        w.push(format!(
                            "the machine changed during the sweep: {name} {a:.0} ns at the start, {b:.0} ns at the end"
                        ));
                    }
                }
            }
        }
        w
    }

    /// One line: the costs (start → end) and what explains them.
    pub fn describe(&self) -> String {
        let ns = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.0} ns"));
        let pair = |a: Option<f64>, b: Option<f64>| match self.end {
            Some(_) => format!("{} → {}", ns(a), ns(b)),
            None => ns(a),
        };
        let end = self.end.clone().unwrap_or_default();
        let mitigated: Vec<String> = self
            .mitigations
            .iter()
            .filter(|(_, v)| !v.starts_with("Not affected"))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "null system call {}{}, io_uring NOP enter {}, context switch {} (CPU {}, start → end); {}{}, HZ {}, virtualised: {}, steal {}; mitigations: {}",
            pair(self.start.null_syscall_ns, end.null_syscall_ns),
            self.start
                .null_syscall_counted_ns
                .map_or(String::new(), |c| format!(" ({c:.0} ns while perf counts system calls)")),
            pair(self.start.uring_nop_enter_ns, end.uring_nop_enter_ns),
            pair(self.start.context_switch_ns, end.context_switch_ns),
            self.start.cpu,
            self.cpu_model,
            if self.microcode.is_empty() { String::new() } else { format!(" (microcode {})", self.microcode) },
            self.hz.map_or("?".into(), |h| h.to_string()),
            self.virtualised,
            self.steal_pct.map_or("?".into(), |s| format!("{s:.1}%")),
            if mitigated.is_empty() { "none reported".into() } else { mitigated.join("; ") },
        )
    }
}

fn field(cpuinfo: &str, name: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn mitigations() -> BTreeMap<String, String> {
    let dir = "/sys/devices/system/cpu/vulnerabilities";
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                text.trim().to_string(),
            ))
        })
        .collect()
}

fn hz() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes one timespec we own.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    (rc == 0 && ns > 0).then(|| 1_000_000_000 / ns)
}

/// /proc/stat's first line: (steal, total) jiffies over every CPU.
fn cpu_stat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_stat(text.lines().next()?)
}

fn parse_cpu_stat(line: &str) -> Option<(u64, u64)> {
    let mut it = line.split_whitespace();
    if it.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice: inside user]
    let v: Vec<u64> = it.take(8).map(|x| x.parse().ok()).collect::<Option<_>>()?;
    (v.len() == 8).then(|| (v[7], v.iter().sum()))
}

/// Measures the three costs on a thread pinned to `cpu` (and a second one for the
/// switch), each as the median of several batches' means; with `ids`, a system call
/// again while perf counts it.
pub fn measure(cpu: usize, ids: Option<super::perf::Ids>) -> Costs {
    let started = Instant::now();
    let on_cpu = |f: &(dyn Fn() -> Option<f64> + Sync)| {
        std::thread::scope(|s| {
            s.spawn(|| {
                common::affinity::pin_current_thread(cpu).ok()?;
                f()
            })
            .join()
            .ok()
            .flatten()
        })
    };
    let (null_syscall_ns, null_syscall_counted_ns) = match ids {
        None => (on_cpu(&null_syscall), None),
        Some(ids) => std::thread::scope(|s| {
            s.spawn(|| {
                if common::affinity::pin_current_thread(cpu).is_err() {
                    return (None, None);
                }
                null_syscall_interleaved(ids)
            })
            .join()
            .unwrap_or((None, None))
        }),
    };
    let uring_nop_enter_ns = on_cpu(&uring_nop);
    let context_switch_ns = context_switch(cpu);
    Costs {
        cpu,
        null_syscall_ns,
        null_syscall_counted_ns,
        uring_nop_enter_ns,
        context_switch_ns,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

const BATCHES: usize = 7;

/// The median of `BATCHES` batch means of `per_batch` calls of `one`, ns per call; None
/// when `one` fails.
fn median_batches(per_batch: u32, mut one: impl FnMut() -> bool) -> Option<f64> {
    let mut means = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let t = Instant::now();
        for _ in 0..per_batch {
            if !one() {
                return None;
            }
        }
        means.push(t.elapsed().as_nanos() as f64 / f64::from(per_batch));
    }
    means.sort_by(f64::total_cmp);
    Some(means[BATCHES / 2])
}

fn null_syscall() -> Option<f64> {
    median_batches(20_000, || {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
        true
    })
}

/// A null system call without and with perf counting it, batches alternating (the
/// machine drifts: what is compared is measured interleaved).
fn null_syscall_interleaved(ids: super::perf::Ids) -> (Option<f64>, Option<f64>) {
    const PER_BATCH: u32 = 20_000;
    let (mut plain, mut counted) = (Vec::new(), Vec::new());
    let batch = || {
        let t = Instant::now();
        for _ in 0..PER_BATCH {
            // SAFETY: getppid takes no arguments and cannot fail.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        t.elapsed().as_nanos() as f64 / f64::from(PER_BATCH)
    };
    for _ in 0..BATCHES {
        plain.push(batch());
        if let Ok(_counting) = super::perf::ThreadCounters::open(ids) {
            counted.push(batch());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    (median(plain), median(counted))
}

fn uring_nop() -> Option<f64> {
    let mut ring = io_uring::IoUring::new(8).ok()?;
    median_batches(10_000, || {
        let nop = io_uring::opcode::Nop::new().build().user_data(1);
        // SAFETY: a NOP carries no buffers.
        if unsafe { ring.submission().push(&nop) }.is_err() {
            return false;
        }
        if ring.submit_and_wait(1).is_err() {
            return false;
        }
        ring.completion().next().is_some()
    })
}

/// Two threads on `cpu` pass one byte back and forth through two pipes: each pass is
/// one switch (plus a write and a read).
fn context_switch(cpu: usize) -> Option<f64> {
    use std::io::{Read, Write};
    let (mut a_rx, mut b_tx) = std::io::pipe().ok()?;
    let (mut b_rx, mut a_tx) = std::io::pipe().ok()?;
    const ROUNDS: u32 = 4_000;
    let deadline = Instant::now() + Duration::from_secs(2);
    std::thread::scope(|s| {
        let echo = s.spawn(move || -> Option<()> {
            common::affinity::pin_current_thread(cpu).ok()?;
            let mut byte = [0u8; 1];
            for _ in 0..ROUNDS * BATCHES as u32 {
                b_rx.read_exact(&mut byte).ok()?;
                b_tx.write_all(&byte).ok()?;
            }
            Some(())
        });
        let timed = (|| {
            common::affinity::pin_current_thread(cpu).ok()?;
            let mut byte = [0u8; 1];
            median_batches(ROUNDS, || {
                Instant::now() < deadline
                    && a_tx.write_all(&byte).is_ok()
                    && a_rx.read_exact(&mut byte).is_ok()
            })
        })();
        // The echo thread ends when its pipes close (dropped with the closure's captures
        // on a failure) or after its rounds.
        drop(a_tx);
        let _ = echo.join();
        // A round trip is two switches.
        timed.map(|rt| rt / 2.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_field_of_the_cpu_line() {
        let (steal, total) =
            parse_cpu_stat("cpu  100 5 50 1000 10 1 2 30 0 0").expect("a cpu line");
        assert_eq!((steal, total), (30, 100 + 5 + 50 + 1000 + 10 + 1 + 2 + 30));
        assert_eq!(parse_cpu_stat("cpu0 1 2 3 4 5 6 7 8"), None);
    }

    #[test]
    fn costs_are_measured_and_positive_here() {
        let c = measure(common::affinity::allowed_cpus()[0], None);
        for (name, v) in [
            ("null system call", c.null_syscall_ns),
            ("context switch", c.context_switch_ns),
        ] {
            let v = v.unwrap_or_else(|| panic!("{name} not measured"));
            assert!(v > 0.0 && v < 1e6, "{name}: {v} ns");
        }
        assert!(c.took_ms < 5_000.0, "{c:?}");
    }

    #[test]
    fn a_cost_that_moved_or_steal_is_a_warning() {
        let costs = |ns| Costs {
            null_syscall_ns: Some(ns),
            ..Default::default()
        };
        let mut p = Profile {
            start: costs(500.0),
            end: Some(costs(650.0)),
            steal_pct: Some(3.0),
            ..Default::default()
        };
        let w = p.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[1].contains("null system call 500 ns at the start, 650 ns at the end"),
            "{w:?}"
        );
        p.end = Some(costs(550.0));
        p.steal_pct = Some(0.5);
        assert!(p.warnings().is_empty());
    }
}
