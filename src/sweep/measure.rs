//! One measured run, start to end, in one shape for every mode:
//!
//! set up (a thread of its own; a fresh private network namespace for overflow runs
//! as root) → listener → release the acceptor → drive load (a loadgen child) → stop →
//! figures ([`Measured`]).
//!
//! The run's thread is made for the run and ends with it, so whatever it set up —
//! the namespace and its sysctls, the loadgen child (which dies with the thread that
//! started it), the queue sampler — ends with the run; every other run sees the
//! host's namespace. That thread coordinates and sits on the client CPUs; only the
//! acceptor is pinned to the server CPU.

use std::sync::atomic::{AtomicI32, AtomicUsize};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::client::{self, ClientResult};
use super::hosts::Place;
use super::run::{Measured, ModeFigures, RunEnv, RunSpec, StallFacts};
use super::team::{self, RunTeam};

use crate::acceptors::{ListenerSet, PerAcceptor};
use crate::config::{Mode, StallLoad};
use crate::engine::{Stall, StopFlag};
use crate::listener::ListenerSpec;
use crate::overflow::{self, Counters};
use crate::record::Recorder;

/// Runs one (engine, backlog, mode) on a thread of its own and returns its figures.
pub fn measure(spec: &RunSpec) -> anyhow::Result<Measured> {
    let mut m = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("acceptbench-run".into())
            .spawn_scoped(s, || measure_here(spec))
            .context("cannot start the run's thread")?
            .join()
            .map_err(|_| anyhow::anyhow!("the run's thread panicked"))?
    })?;
    m.acceptor_cpus = spec.acceptor_cpus();
    m.slow_acceptor = spec
        .slow_acceptor()
        .map_or_else(String::new, |s| s.to_string());
    Ok(m)
}

fn measure_here(spec: &RunSpec) -> anyhow::Result<Measured> {
    let cfg = spec.settings;
    common::affinity::pin_current_thread_to(&cfg.client_cpus)?;
    let private = spec.mode().is_overflow() && cfg.overflow.private_netns;
    if private {
        // Only this thread (and what it starts) enters it; it dies with the thread.
        crate::kernel::netns::enter_private(&cfg.overflow.netns)?;
    }
    // --client-hosts: this run's namespaces; this thread (and the acceptors it starts)
    // enters the server's, the loadgen children the clients'.
    let topology = cfg
        .client_hosts
        .map(super::hosts::Topology::create)
        .transpose()?;
    if let Some(t) = &topology {
        t.enter_server()?;
    }
    let mut env = RunEnv::read(private);
    if topology.is_some() {
        env.netns = "veth";
    }
    if cfg.ssh.is_some() {
        env.netns = "ssh";
    }
    let listen_addr = match (&topology, &cfg.ssh) {
        (Some(t), _) => t.listen_addr(),
        (None, Some(s)) => std::net::SocketAddr::new(s.server_addr, 0),
        (None, None) => crate::config::sweep_listen_addr(),
    };
    let set = ListenerSet::bind(
        &ListenerSpec {
            addr: listen_addr,
            backlog: spec.planned.backlog,
            reuse_port: false,
            dual_stack: false,
        },
        spec.planned.acceptors,
        spec.planned.sharing,
    )?;
    let listener = set.first();
    let mut lg = loadgen_config(spec, listener.local_addr, listener.backlog_effective)?;
    if topology.is_some() || cfg.ssh.is_some() {
        lg.sources = None; // each client host has an address of its own
        lg.cpus.clear(); // and CPUs of its own
    }
    let topology = match (&topology, &cfg.ssh) {
        (Some(t), _) => Place::Namespaces(t),
        (None, Some(s)) => Place::Ssh(s),
        (None, None) => Place::Loopback,
    };
    // --trace kernel: recorded from before the clients start until the run's figures
    // are in (super::ktrace).
    let tracing = super::ktrace::start(
        spec.planned.trace,
        listener.local_addr.port(),
        &spec.settings.trace_reader_cpus(),
    );
    let measured = measure_mode(spec, &set, &lg, env, topology);
    let mut m = measured?;
    m.kernel = tracing.finish(&m.rec.peers);
    Ok(m)
}

/// The run of `spec`'s mode on `set`, loadgen configured by `lg`, at `topology`.
fn measure_mode(
    spec: &RunSpec,
    set: &ListenerSet,
    lg: &loadgen::Config,
    env: RunEnv,
    topology: Place,
) -> anyhow::Result<Measured> {
    let cfg = spec.settings;
    let listener = set.first();
    match spec.mode() {
        Mode::Closed | Mode::Rate => {
            let d = drive(spec, set, lg, Duration::ZERO, topology, None)?;
            Ok(d.into_measured(listener.backlog_effective, env, ModeFigures::Driven, true))
        }
        Mode::Drain if spec.acceptors() > 1 => {
            anyhow::bail!("mode drain runs one acceptor (its rounds count one acceptor's accepts)")
        }
        Mode::Drain => super::drain::drain(spec, listener, lg, env),
        Mode::Burst | Mode::Overload => {
            let burst = spec.mode() == Mode::Burst;
            let watch = overflow::Watch::start(set.all(), burst)
                .context("cannot start sampling the accept queue")?;
            let pause = if burst {
                cfg.overflow.pause
            } else {
                Duration::ZERO
            };
            let d = drive(spec, set, lg, pause, topology, None);
            let figures =
                watch.finish(d.as_ref().ok().and_then(|d| d.counters_at_release.as_ref()));
            Ok(d?.into_measured(
                listener.backlog_effective,
                env,
                ModeFigures::Overflow(figures),
                false,
            ))
        }
        Mode::Stall => {
            let cell = spec
                .planned
                .stall
                .context("a stall run was planned without its stall and load")?;
            // Read in the run's namespace: the schedule its clients retransmit on.
            let schedule = crate::stall::schedule::SynSchedule::of_running_kernel().ok();
            let watch = overflow::Watch::start(set.all(), false)
                .context("cannot start sampling the accept queue")?;
            let stall = Stall::new(cell.duration);
            let d = drive(spec, set, lg, Duration::ZERO, topology, Some(&stall));
            let figures = watch.finish(None);
            let facts = StallFacts {
                schedule,
                wheel: crate::stall::schedule::TimerWheel::of_running_kernel(),
                concurrency: lg.concurrency as u32,
                connect_timeout_ms: lg.connect_timeout.as_millis() as u64,
                mu: spec
                    .acceptor_options(0)
                    .accept_delay
                    .map_or(super::run::ModelMu::FullSpeed, super::run::ModelMu::Delay),
            };
            Ok(d?.into_measured(
                listener.backlog_effective,
                env,
                ModeFigures::Stall(figures, facts),
                false,
            ))
        }
    }
}

/// The failure of a run whose clients outlived its deadline, naming each one still
/// running (`client host user@10.0.0.3`), whichever way it hung.
fn deadline_failure(hung: &[String]) -> String {
    match hung {
        [] => "the clients did not end by the run's deadline".into(),
        names => format!(
            "{}: did not end by the run's deadline (loadgen hung, or its host or ssh session did)",
            names.join(", ")
        ),
    }
}

/// What a stall run's arrivals last beyond --stall-at + --stall + --stall-after.
const STALL_SLACK: Duration = Duration::from_millis(100);

/// The loadgen configuration of a run against `target`, whose queue limit is
/// `backlog_effective`.
pub(super) fn loadgen_config(
    spec: &RunSpec,
    target: std::net::SocketAddr,
    backlog_effective: u32,
) -> anyhow::Result<loadgen::Config> {
    let cfg = spec.settings;
    let mut c = client::base_config(target, cfg.client_threads, &cfg.client_cpus)?;
    match spec.mode() {
        Mode::Closed | Mode::Rate => {
            c.duration = Some(cfg.duration);
            c.warmup = cfg.warmup;
            if spec.mode() == Mode::Closed {
                c.concurrency = (cfg.client_concurrency * cfg.client_threads) as usize;
            } else {
                c.mode = loadgen::Mode::Rate {
                    rate_per_s: cfg.rate as f64,
                };
                c.concurrency = loadgen::config::DEFAULT_RATE_CONCURRENCY;
            }
        }
        Mode::Drain => {
            let fill = u64::from(backlog_effective) + 1;
            c.mode = loadgen::Mode::Burst { rounds: 1_000_000 };
            c.connections = Some(fill);
            c.concurrency = fill as usize;
            c.duration = None;
            c.output.sync_stdio = true;
            // Each round's connections are reset by the client once established: they
            // stay in the accept queue, and the acceptor's close() no longer does the
            // client's FIN handling on loopback — as the C reference's pre-filled drain.
            c.close_early = true;
            // Everything fits in the queue, so each connect completes in microseconds.
            c.connect_timeout = Duration::from_secs(2);
        }
        Mode::Burst => {
            let n = spec.burst_size();
            c.mode = loadgen::Mode::Burst { rounds: 1 };
            c.connections = Some(u64::from(n));
            c.concurrency = n as usize;
            c.duration = None;
            c.connect_timeout = cfg.overflow.connect_timeout;
        }
        Mode::Overload => {
            c.mode = loadgen::Mode::Rate {
                rate_per_s: cfg.rate as f64,
            };
            c.concurrency = loadgen::config::DEFAULT_RATE_CONCURRENCY;
            c.duration = Some(cfg.duration);
            c.connect_timeout = cfg.overflow.connect_timeout;
        }
        Mode::Stall => {
            let cell = spec
                .planned
                .stall
                .context("a stall run was planned without its stall and load")?;
            let s = &cfg.stall;
            // The pause starts a little after --stall-at (loadgen's own start, then the
            // first connection the acceptor finishes from then on): 100 ms more keeps
            // arrivals going at least --stall-after past the resume.
            c.duration = Some(s.at + cell.duration + s.after + STALL_SLACK);
            c.connect_timeout = s.connect_timeout;
            match cell.load {
                StallLoad::Rate(n) => {
                    c.mode = loadgen::Mode::Rate {
                        rate_per_s: n as f64,
                    };
                    c.concurrency = loadgen::config::DEFAULT_RATE_CONCURRENCY;
                }
                StallLoad::Closed(k) => {
                    c.mode = loadgen::Mode::Closed;
                    c.concurrency = k as usize;
                }
            }
        }
    }
    Ok(c)
}

/// A driven run's raw results (an external server's too, see `sweep::external`).
pub(super) struct Driven {
    pub(super) rec: Recorder,
    pub(super) owner: Vec<u16>,
    pub(super) per_acceptor: Vec<PerAcceptor>,
    pub(super) ring_setup: Option<String>,
    /// Acceptor CPU over its whole run, s.
    pub(super) cpu_s: f64,
    /// Whether `cpu_s` was read (not for an attached server without its PID).
    pub(super) cpu_known: bool,
    pub(super) released_ns: u64,
    /// (CLOCK_MONOTONIC ns, acceptor thread CPU s) sampled while the run went on.
    pub(super) cpu_samples: Vec<(u64, f64)>,
    /// The acceptor's thread CPU at release, s.
    pub(super) cpu_at_release_s: f64,
    pub(super) counters_at_release: Option<Counters>,
    pub(super) client: ClientResult,
    pub(super) failure: Option<String>,
    pub(super) interrupted: bool,
    pub(super) window_s: f64,
    pub(super) usage: Option<crate::kernel::perf::UsageDelta>,
    pub(super) usage_accepts: u64,
}

impl Driven {
    /// Figures over the measured window: from the start of loadgen's measured window
    /// (after its warm-up) for closed/rate, from release for overflow runs.
    pub(super) fn into_measured(
        self,
        backlog_effective: u32,
        env: RunEnv,
        figures: ModeFigures,
        client_window: bool,
    ) -> Measured {
        let start_ns = if client_window {
            self.client
                .records
                .iter()
                .filter(|r| !r.warmup)
                .map(|r| r.intended_ns)
                .min()
                .unwrap_or(self.released_ns)
                .max(self.released_ns)
        } else {
            self.released_ns
        };
        let in_window: Vec<u64> = self
            .rec
            .peers
            .iter()
            .map(|p| p.decoded_ns)
            .filter(|&t| t >= start_ns)
            .collect();
        let window_accepts = in_window.len() as u64;
        let last_held = in_window.iter().copied().max().unwrap_or(start_ns);
        // A connection is done when it is closed: the window ends at the later of the
        // last peer held and the last close.
        let last = last_held.max(self.rec.last_closed_ns);
        let span_s = last.saturating_sub(start_ns) as f64 * 1e-9;
        let peer_span_s = last_held.saturating_sub(start_ns) as f64 * 1e-9;
        let per_s = |s: f64| {
            if s > 0.0 {
                window_accepts as f64 / s
            } else {
                0.0
            }
        };
        // CPU before the window: the last sample at or before its start.
        let cpu_before = self
            .cpu_samples
            .iter()
            .take_while(|(t, _)| *t <= start_ns)
            .last()
            .map_or(self.cpu_at_release_s, |&(_, c)| c)
            - self.cpu_at_release_s;
        Measured {
            window_accepts,
            accepts_per_s: per_s(span_s),
            accept_window_s: span_s,
            peers_held_per_s: per_s(peer_span_s),
            peer_window_s: peer_span_s,
            cpu_s: self
                .cpu_known
                .then(|| (self.cpu_s - cpu_before.max(0.0)).max(0.0)),
            backlog_effective,
            rec: self.rec,
            client: self.client,
            failure: self.failure,
            interrupted: self.interrupted,
            window_s: self.window_s,
            released_ns: self.released_ns,
            env,
            ring_setup: self.ring_setup,
            figures,
            per_acceptor: self.per_acceptor,
            usage: self.usage,
            usage_accepts: self.usage_accepts,
            owner: self.owner,
            acceptor_cpus: String::new(),
            slow_acceptor: String::new(),
            kernel: Default::default(),
        }
    }
}

/// closed / rate / burst / overload: the acceptors on their own pinned threads
/// ([`team`]), loadgen at the same time; the acceptors are released `pause` after the
/// burst has arrived.
fn drive(
    spec: &RunSpec,
    set: &ListenerSet,
    lg: &loadgen::Config,
    pause: Duration,
    topology: Place,
    stall: Option<&Stall>,
) -> anyhow::Result<Driven> {
    let cfg = spec.settings;
    let run_stop = StopFlag::new();
    // loadgen's own length: --duration, or a stall run's arrivals.
    let client_len = lg.duration.unwrap_or(cfg.duration) + cfg.warmup + lg.connect_timeout;
    // A safety net only: the run normally ends when loadgen does.
    let deadline = Instant::now()
        + client_len
        + pause
        + cfg.overflow.connect_timeout
        + Duration::from_secs(30);
    let cpu_clocks: Vec<AtomicI32> = (0..spec.acceptors()).map(|_| AtomicI32::new(-1)).collect();
    let ready = AtomicUsize::new(0);
    let members = RunTeam {
        run: spec,
        set,
        pause,
        run_stop: &run_stop,
        deadline,
        cpu_clocks: &cpu_clocks,
        ready: &ready,
        stall,
    };
    std::thread::scope(|s| {
        let handles = team::spawn(s, &members)?;
        // The client starts once every acceptor is about to accept; an acceptor that
        // failed to start ends its thread, and the loop below reports it.
        let all_ready = team::wait_until_ready(&ready, &handles);
        let started = Instant::now();
        let mut cpu_samples = Vec::new();
        let outcome = (|| -> anyhow::Result<(ClientResult, Option<String>, bool)> {
            let mut child = super::hosts::Clients::spawn(spec.exe, spec.tmp, lg, topology)?;
            if let Some(s) = stall {
                // Due once the clients have run --stall-at; the acceptors take it after
                // the first connection they finish from then on.
                s.arm_at(common::clock::mono_ns() + cfg.stall.at.as_nanos() as u64);
            }
            let (mut failure, mut interrupted) = (None, false);
            if !all_ready && !handles.iter().any(|h| h.is_finished()) {
                failure = Some("an acceptor was not ready to accept within 10 s".to_string());
            }
            while !child.has_exited() {
                if spec.stop.is_raised() && !interrupted {
                    child.interrupt();
                    interrupted = true;
                }
                if handles.iter().any(|h| h.is_finished()) && failure.is_none() {
                    // An acceptor failed (or hit the safety deadline): stop the client too.
                    child.interrupt();
                    failure = Some("an acceptor stopped before loadgen ended".to_string());
                }
                if let Some(c) = team::cpu_now_s(&cpu_clocks) {
                    cpu_samples.push((common::clock::mono_ns(), c));
                }
                if Instant::now() >= deadline {
                    // A client that ignores its stop (a remote host whose session stays
                    // up) must not hold the sweep: `finish` below stops or kills it.
                    let hung = child.still_running();
                    failure.get_or_insert_with(|| deadline_failure(&hung));
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            // loadgen ends on its own after its duration; the limit only guards a stuck child.
            let result = child.finish(client_len + Duration::from_secs(30))?;
            // Every connection the client completed sits in an accept queue or was
            // accepted; let the acceptors empty the queues before stopping them.
            let drained = client::wait_until(Duration::from_secs(3), || set.total_depth() == 0);
            if !drained {
                failure.get_or_insert_with(|| "the accept queue did not drain within 3 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
            Ok((result, failure, interrupted))
        })();
        let window_s = started.elapsed().as_secs_f64();
        run_stop.raise();
        let a = team::join(handles)?;
        let (client, failure, interrupted) = outcome?;
        Ok(Driven {
            window_s: client
                .report
                .duration_s
                .max(0.0)
                .min(window_s)
                .max(f64::MIN_POSITIVE),
            usage: a.usage,
            usage_accepts: a.usage_accepts,
            rec: a.rec,
            owner: a.owner,
            per_acceptor: a.per,
            ring_setup: a.ring_setup,
            cpu_s: a.cpu_s,
            cpu_known: true,
            released_ns: a.released_ns,
            cpu_samples,
            cpu_at_release_s: a.cpu_at_release_s,
            counters_at_release: a.counters,
            client,
            failure,
            interrupted,
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hung_client_is_named_in_the_failure() {
        let f = super::deadline_failure(&["client host bench@10.77.0.3".to_string()]);
        assert_eq!(f, "client host bench@10.77.0.3: did not end by the run's deadline (loadgen hung, or its host or ssh session did)");
        assert!(super::deadline_failure(&[]).contains("the clients"));
    }

    use super::*;
    use crate::listener::Listener;

    fn record(t_ns: u64, warmup: bool) -> loadgen::ConnRecord {
        loadgen::ConnRecord {
            local: ([127, 0, 0, 2], 1000).into(),
            intended_ns: t_ns,
            connect_start_ns: t_ns,
            done_ns: t_ns + 10,
            outcome: loadgen::Outcome::Established,
            warmup,
            round: 0,
            serve: Default::default(),
        }
    }

    #[test]
    fn warm_up_accepts_and_cpu_are_left_out_of_the_window() {
        let ms = 1_000_000u64;
        // Released at 1 ms; warm-up until 100 ms; accepts every ms from 2 to 299 ms.
        let mut rec = Recorder::new(true);
        for t in 2..300u64 {
            rec.accepted(([127, 0, 0, 2], 1000).into(), t * ms, t * ms);
        }
        let mut records = vec![record(2 * ms, true), record(99 * ms, true)];
        records.extend((100..299).map(|t| record(t * ms, false)));
        let d = Driven {
            rec,
            owner: Vec::new(),
            per_acceptor: Vec::new(),
            ring_setup: None,
            // 0.3 s of CPU over the run, 0.1 s of it before 100 ms.
            cpu_s: 0.3,
            cpu_known: true,
            released_ns: ms,
            cpu_samples: vec![(50 * ms, 5.05), (99 * ms, 5.1), (150 * ms, 5.15)],
            cpu_at_release_s: 5.0,
            counters_at_release: None,
            usage: None,
            usage_accepts: 0,
            client: ClientResult {
                report: loadgen::Report::default(),
                records,
                hosts: Vec::new(),
            },
            failure: None,
            interrupted: false,
            window_s: 0.3,
        };
        let listener = Listener::bind(&ListenerSpec {
            addr: ([127, 0, 0, 1], 0).into(),
            backlog: 8,
            reuse_port: false,
            dual_stack: false,
        })
        .unwrap();
        let m = d.into_measured(
            listener.backlog_effective,
            RunEnv::default(),
            ModeFigures::Driven,
            true,
        );
        assert_eq!(m.window_accepts, 200, "accepts from 100 ms to 299 ms");
        assert!((m.cpu_s.unwrap() - 0.2).abs() < 1e-9, "{:?}", m.cpu_s);
        // 200 accepts over 199 ms.
        assert!(
            (m.accepts_per_s - 200.0 / 0.199).abs() < 1e-6,
            "{}",
            m.accepts_per_s
        );
        assert_eq!(
            m.rec.accepted, 298,
            "the warm-up accepts stay in the accounting"
        );
    }
}
