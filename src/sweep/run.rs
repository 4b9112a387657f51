//! One run as one value, from plan to row: the [`RunSpec`] a planned run becomes (the
//! [`Planned`] it came from and the settings every run shares, resolved once), and the
//! values a run passes between its steps — [`RunEnv`], [`Measured`], [`ModeFigures`].
//! `measure`, `drain` and the acceptor team depend on this module and never on each
//! other's types; it depends on none of them.

use std::time::Duration;

use super::client::ClientResult;
use super::plan::Planned;
use crate::acceptors::{self, PerAcceptor, SlowAcceptor};
use crate::config::{Mode, OverflowConfig, StallConfig, SweepConfig};
use crate::engine::{EngineKind, EngineOptions, StopFlag};
use crate::overflow;
use crate::record::Recorder;

/// What every run of a sweep shares, resolved once from its configuration.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Measured time per run.
    pub duration: Duration,
    /// Warm-up before measuring (closed/rate).
    pub warmup: Duration,
    /// Rate for mode `rate` and `overload`, conn/s.
    pub rate: u64,
    /// Engine options before the run's own (inflight, direct, accept delay).
    pub options: EngineOptions,
    /// loadgen threads.
    pub client_threads: u32,
    /// Connects in flight per loadgen thread (closed mode).
    pub client_concurrency: u32,
    /// loadgen CPUs.
    pub client_cpus: Vec<usize>,
    /// Acceptor CPU of a one-acceptor run (drain).
    pub server_cpu: usize,
    /// Acceptor CPUs: acceptor i is pinned to `server_cpus[i % len]`.
    pub server_cpus: Vec<usize>,
    /// Burst/overload: this acceptor works `delay` per connection, the others run free.
    pub slow_acceptor: Option<SlowAcceptor>,
    /// Overflow-study settings (modes burst and overload).
    pub overflow: OverflowConfig,
    /// Client namespaces per run (`--client-hosts K`).
    pub client_hosts: Option<u32>,
    /// ssh client hosts after preflight (`--client-hosts ssh://…`).
    pub ssh: Option<super::hosts::SshRun>,
    /// Mode stall's settings.
    pub stall: StallConfig,
    /// The tracepoints that count the acceptors' system calls and io_uring enters, or
    /// why they cannot be counted here (see [`crate::kernel::perf`]).
    pub perf: Result<crate::kernel::perf::Ids, String>,
    /// External servers (`--server`).
    pub servers: Vec<crate::config::external::ExternalConfig>,
    /// Where external servers' logs go (the run directory's `servers/`).
    pub servers_dir: Option<std::path::PathBuf>,
}

impl RunSettings {
    /// Where `--trace kernel`'s reader runs: the client's CPUs that no acceptor uses
    /// (none on a one-CPU machine: then it runs where the scheduler puts it, and shares
    /// the acceptor's).
    pub fn trace_reader_cpus(&self) -> Vec<usize> {
        self.client_cpus
            .iter()
            .copied()
            .filter(|c| *c != self.server_cpu && !self.server_cpus.contains(c))
            .collect()
    }
}

impl RunSettings {
    /// The settings of `cfg`'s runs.
    pub fn of(cfg: &SweepConfig) -> RunSettings {
        RunSettings {
            duration: cfg.duration,
            warmup: cfg.warmup,
            rate: cfg.rate,
            options: cfg.options.clone(),
            client_threads: cfg.client_threads,
            client_concurrency: cfg.client_concurrency,
            client_cpus: cfg.client_cpus.clone(),
            server_cpu: cfg.server_cpu,
            server_cpus: cfg.server_cpus.clone(),
            slow_acceptor: cfg.slow_acceptor,
            overflow: cfg.overflow.clone(),
            client_hosts: match cfg.client_hosts {
                Some(crate::config::ClientHostsConfig::Namespaces(k)) => Some(k),
                _ => None,
            },
            ssh: None,
            stall: cfg.stall.clone(),
            perf: Err("not opened".into()),
            servers: cfg.servers.clone(),
            servers_dir: None,
        }
    }
}

/// Everything a run needs: the planned run itself and the shared settings.
pub struct RunSpec<'a> {
    /// The planned run (engine, depth, backlog, mode, acceptors, sharing, round).
    pub planned: Planned,
    /// The sweep's settings, shared by every run.
    pub settings: &'a RunSettings,
    /// The sweep's stop flag (Ctrl-C).
    pub stop: &'a StopFlag,
    /// This executable, started again as `loadgen`.
    pub exe: &'a std::path::Path,
    /// Scratch directory for the child's records.
    pub tmp: &'a std::path::Path,
}

impl RunSpec<'_> {
    /// The engine.
    pub fn engine(&self) -> EngineKind {
        self.planned.engine
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.planned.mode
    }

    /// Acceptor threads (at least 1).
    pub fn acceptors(&self) -> u32 {
        self.planned.acceptors.max(1)
    }

    /// The options the run's engine is built with: `--direct` applies to uring-linked
    /// only, the planned depth to `uring`.
    pub fn engine_options(&self) -> EngineOptions {
        let mut o = self.settings.options.clone();
        o.direct &= self.engine() == EngineKind::UringLinked;
        if let Some(q) = self.planned.inflight {
            o.inflight = q as usize;
        }
        if let Some(f) = self.planned.accept_flags {
            o.accept_flags = f;
        }
        if let Some(op) = self.planned.peer_op {
            o.peer_op = op;
        }
        o
    }

    /// The options of acceptor `i`: in burst/overload/stall with `--slow-acceptor` the
    /// slow one works its delay per connection and the others run free; otherwise
    /// overload slows every acceptor by `--accept-delay` (default 200 µs), and stall by
    /// `--accept-delay` if given.
    pub fn acceptor_options(&self, i: usize) -> EngineOptions {
        let mut o = self.engine_options();
        if !self.mode().is_overflow() {
            return o;
        }
        let default = match self.mode() {
            Mode::Overload => Some(self.settings.overflow.accept_delay),
            Mode::Stall => self.settings.stall.accept_delay,
            _ => None,
        }
        .filter(|d| !d.is_zero());
        o.accept_delay = match self.slow_acceptor() {
            Some(s) => acceptors::delay_for(i, Some(s), None),
            None => default,
        };
        o
    }

    /// `--slow-acceptor` if it applies to this run (an overflow mode with that acceptor).
    pub fn slow_acceptor(&self) -> Option<SlowAcceptor> {
        self.settings
            .slow_acceptor
            .filter(|s| self.mode().is_overflow() && s.index < self.planned.acceptors)
    }

    /// Connects in a burst: `--burst-size`, else 4·backlog+16.
    pub fn burst_size(&self) -> u32 {
        self.settings
            .overflow
            .burst_size
            .unwrap_or_else(|| self.planned.backlog.saturating_mul(4).saturating_add(16))
    }

    /// The CPU of each acceptor, comma-separated in acceptor order.
    pub fn acceptor_cpus(&self) -> String {
        (0..self.acceptors() as usize)
            .map(|i| acceptors::cpu_for(i, &self.settings.server_cpus).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The network namespace and sysctls a run actually ran with, read on its thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunEnv {
    /// "private" (made for this run) or "host".
    pub netns: &'static str,
    /// net.core.somaxconn.
    pub somaxconn: Option<u64>,
    /// net.ipv4.tcp_syncookies.
    pub syncookies: Option<u64>,
    /// net.ipv4.tcp_abort_on_overflow.
    pub abort_on_overflow: Option<u64>,
}

impl RunEnv {
    /// Reads them on the calling thread (its namespace), `private` if it made one.
    pub fn read(private: bool) -> RunEnv {
        let get = |name: &str| crate::kernel::sysctl::read_u64(name).ok();
        RunEnv {
            netns: if private { "private" } else { "host" },
            somaxconn: get("net.core.somaxconn"),
            syncookies: get("net.ipv4.tcp_syncookies"),
            abort_on_overflow: get("net.ipv4.tcp_abort_on_overflow"),
        }
    }
}

/// What only some modes measure.
#[derive(Debug)]
pub enum ModeFigures {
    /// closed / rate.
    Driven,
    /// drain: rounds of fill-then-drain.
    Drain {
        /// Rounds drained.
        rounds: u32,
    },
    /// burst / overload: queue depth and kernel counters.
    Overflow(overflow::Figures),
    /// stall: queue depth and kernel counters, and what the run needs for its
    /// prediction.
    Stall(overflow::Figures, StallFacts),
}

/// What a stall run's analysis needs beyond its records.
#[derive(Debug, Clone)]
pub struct StallFacts {
    /// The kernel's SYN retransmit schedule in the run's namespace (None: unreadable).
    pub schedule: Option<crate::stall::schedule::SynSchedule>,
    /// The kernel's timer wheel (when retransmits really leave); None: unknown.
    pub wheel: Option<crate::stall::schedule::TimerWheel>,
    /// Connects in flight at most (loadgen's cap).
    pub concurrency: u32,
    /// loadgen's connect timeout, ms.
    pub connect_timeout_ms: u64,
    /// The stall model's μ (the acceptor's rate after the resume) and where it came from.
    pub mu: ModelMu,
}

/// The stall model's μ: the rate at which the acceptor takes connections once resumed.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelMu {
    /// A built-in engine at full speed: it empties its queue within the millisecond.
    FullSpeed,
    /// A built-in engine slowed by `--accept-delay`: μ = 1/delay.
    Delay(std::time::Duration),
    /// An external server's own drain rate, the median of its `runs` ok drain runs at
    /// this backlog made earlier in the sweep.
    Drain { per_s: f64, runs: usize },
    /// An external server's rate given with `--stall-mu NAME=RATE`.
    Given(f64),
    /// No μ: the model is not run, for this reason.
    Absent(&'static str),
}

impl ModelMu {
    /// μ for the model: `Ok(None)` full speed, `Err(why)` no model.
    pub fn per_s(&self) -> Result<Option<f64>, &'static str> {
        match self {
            ModelMu::FullSpeed => Ok(None),
            ModelMu::Delay(d) => Ok(Some(1.0 / d.as_secs_f64().max(1e-9))),
            ModelMu::Drain { per_s, .. } => Ok(Some(*per_s)),
            ModelMu::Given(r) => Ok(Some(*r)),
            ModelMu::Absent(why) => Err(why),
        }
    }

    /// Where μ came from, for stall.csv's `mu_source`.
    pub fn source(&self) -> String {
        match self {
            ModelMu::FullSpeed => "full speed".into(),
            ModelMu::Delay(d) => format!("--accept-delay {}", humantime::format_duration(*d)),
            ModelMu::Drain { runs, .. } => format!(
                "drain: the server's own drain rate, median of {runs} drain run{} at this backlog",
                if *runs == 1 { "" } else { "s" }
            ),
            ModelMu::Given(_) => "--stall-mu".into(),
            ModelMu::Absent(why) => format!("absent: {why}"),
        }
    }
}

/// What one run measured, before it is turned into a summary row.
pub struct Measured {
    /// The acceptor's records (every accept, warm-up included; peers kept for the join).
    pub rec: Recorder,
    /// Accepts in the measured window (warm-up excluded).
    pub window_accepts: u64,
    /// Server accepts/s over the measured window, which ends at the last close (see
    /// `SummaryRow::accepts_per_s`).
    pub accepts_per_s: f64,
    /// That window, s (drain: summed over rounds).
    pub accept_window_s: f64,
    /// Peers held per second: the same connections over the window that ends at the
    /// last peer held (see `SummaryRow::peers_held_per_s`).
    pub peers_held_per_s: f64,
    /// That window, s (drain: summed over rounds).
    pub peer_window_s: f64,
    /// Acceptor thread CPU over the measured window, s (None: not readable, an
    /// attached server without its PID).
    pub cpu_s: Option<f64>,
    /// Accept-queue limit the kernel applied.
    pub backlog_effective: u32,
    /// loadgen's report and records.
    pub client: ClientResult,
    /// Why the measurement failed part-way, if it did (the row becomes `failed`).
    pub failure: Option<String>,
    /// Ctrl-C cut the run short (the row becomes `incomplete`).
    pub interrupted: bool,
    /// Wall time of the measured window, s.
    pub window_s: f64,
    /// CLOCK_MONOTONIC ns when the acceptor was released (after any pause).
    pub released_ns: u64,
    /// Namespace and sysctls of the run.
    pub env: RunEnv,
    /// io_uring set-up flags the engine's ring had (ring engines only).
    pub ring_setup: Option<String>,
    /// Mode-specific figures.
    pub figures: ModeFigures,
    /// Per-acceptor counts and CPU (one entry for a single acceptor).
    pub per_acceptor: Vec<PerAcceptor>,
    /// Which acceptor each of `rec.peers` came from (empty: all from acceptor 0).
    pub owner: Vec<u16>,
    /// CPU of each acceptor, comma-separated in acceptor order.
    pub acceptor_cpus: String,
    /// `--slow-acceptor` as applied to this run (`I:DELAY`), or empty.
    pub slow_acceptor: String,
    /// The acceptors' use of the kernel over their timed runs (release → done, warm-up
    /// included), summed over acceptors and drain rounds; None if no run was timed.
    pub usage: Option<crate::kernel::perf::UsageDelta>,
    /// Connections the acceptors accepted over those timed runs (what `usage` is per).
    pub usage_accepts: u64,
    /// `--trace kernel`: the kernel's account of the run.
    pub kernel: super::ktrace::KernelTrace,
}
