//! The worker loop: one per thread, the same loop for every mode. It asks the pacer when
//! to start, creates and binds sockets, hands connects to the driver, times and classifies
//! outcomes into its own stats and records, and enforces timeouts. Nothing in here is
//! shared with other threads except a progress counter it publishes now and then and the
//! burst rounds' channel (used once per round, never per connection).
//!
//! The per-connection slot state machine lives in `slot.rs`, the burst-round protocol
//! with the coordinator in `round.rs`; this file holds the loop that drives them.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::affinity;
use crate::clock::mono_ns;
use crate::config::{CloseMode, Config, Mode};
use crate::counters::ThreadStats;
use crate::driver::blocking::BlockingDriver;
use crate::driver::epoll::EpollDriver;
use crate::driver::uring::UringDriver;
use crate::driver::{Completion, Driver, Method};
use crate::error::LoadgenError;
use crate::pacer::{Pace, Pacer};
use crate::record::{ConnRecord, Outcome};
use crate::sock::{self, RawAddr, SocketSetup};
use crate::sources::SourceRange;

mod round;
mod serve;
mod slot;

pub use round::RoundCmd;
pub(crate) use round::{RoundLink, RoundMsg, WorkerMsg};
use slot::Slot;

/// After a local failure (no socket, no port) wait this long before the next start, so a
/// closed loop does not spin on an exhausted resource.
const BACKOFF_NS: u64 = 1_000_000;
/// After the run, wait at most this long for cancelled io_uring operations to complete.
const DRAIN_LIMIT_NS: u64 = 2_000_000_000;
/// Publish progress counters every this many outcomes.
const PUBLISH_EVERY: u32 = 64;

/// Progress counters a worker publishes for the progress line (own cache line each).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Published {
    pub attempted: AtomicU64,
    pub established: AtomicU64,
}

/// Everything a worker needs, prepared by `run`.
pub(crate) struct WorkerSpec<'a> {
    pub index: usize,
    pub config: &'a Config,
    pub method: Method,
    /// Where sockets are made and closed, as resolved (`Syscall` or `Ring`).
    pub socket_ops: crate::config::SocketOps,
    pub slots: usize,
    pub pacer: Pacer,
    pub measure_start_ns: u64,
    pub stop: &'a AtomicBool,
    pub published: &'a Published,
    pub rounds: Option<RoundLink>,
}

/// What a worker hands back.
pub(crate) struct WorkerOutput {
    pub stats: ThreadStats,
    pub records: Vec<ConnRecord>,
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    /// Last measured outcome, CLOCK_MONOTONIC ns (0 if none).
    pub last_done_ns: u64,
    pub interrupted: bool,
}

/// Runs one worker to the end; pins it first if asked.
pub(crate) fn run_worker(spec: WorkerSpec<'_>) -> Result<WorkerOutput, LoadgenError> {
    if !spec.config.cpus.is_empty() {
        let cpu = spec.config.cpus[spec.index % spec.config.cpus.len()];
        affinity::pin_current_thread(cpu).map_err(|source| LoadgenError::Pin {
            thread: spec.index,
            cpu,
            source,
        })?;
    }
    let target = RawAddr::new(&spec.config.target);
    match spec.method {
        Method::Uring => {
            let driver = UringDriver::new(
                target,
                spec.slots,
                spec.config.wait_close,
                ring_choice(spec.config, spec.socket_ops),
            )
            .map_err(|e| LoadgenError::io("io_uring setup in worker", std::io::Error::other(e)))?;
            Worker::new(spec, driver).run()
        }
        Method::Epoll => {
            let driver = EpollDriver::new(target, spec.slots)?;
            Worker::new(spec, driver).run()
        }
        Method::Blocking => Worker::new(spec, BlockingDriver::new(target)).run(),
    }
}

struct Worker<'a, D: Driver> {
    config: &'a Config,
    driver: D,
    pacer: Pacer,
    stop: &'a AtomicBool,
    published: &'a Published,
    rounds: Option<RoundLink>,
    setup: SocketSetup,
    sources: Option<SourceRange>,
    next_source: u64,
    timeout_ns: u64,
    /// How long a connection waits for the server's answer or close (wait-close).
    serve_ns: u64,
    burst: bool,
    /// Burst: close the round's connections before reporting it.
    close_early: bool,
    rate: bool,
    /// Async drivers need the deadline queue; the blocking driver bounds itself.
    track_deadlines: bool,
    /// `--socket-ops ring`: sockets are made, set up and closed in the ring.
    ring_ops: bool,
    /// … and the close is linked behind the connect (nothing needs the socket after it:
    /// no records, no wait-close, not a burst).
    close_linked: bool,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Connect deadlines (deadline, slot, gen), in deadline order (all are now + the
    /// connect timeout).
    deadlines: VecDeque<(u64, u32, u16)>,
    /// Wait-close deadlines, the same way (all are now + the serve timeout).
    read_deadlines: VecDeque<(u64, u32, u16)>,
    completions: Vec<Completion>,
    /// Slots in Connecting or Reading: what a phase waits for.
    awaiting: usize,
    /// Slots in Draining.
    draining: usize,
    stats: ThreadStats,
    records: Vec<ConnRecord>,
    keep_records: bool,
    measure_start_ns: u64,
    measuring: bool,
    cpu0: (f64, f64),
    backoff_until_ns: u64,
    last_done_ns: u64,
    unpublished: u32,
    round: u32,
    round_counts: RoundMsg,
    interrupted: bool,
}

impl<'a, D: Driver> Worker<'a, D> {
    fn new(spec: WorkerSpec<'a>, driver: D) -> Self {
        let config = spec.config;
        let slots = spec.slots.max(1);
        let keep_records = config.keep_records;
        let records = if keep_records {
            Vec::with_capacity(expected_records(config, spec.index))
        } else {
            Vec::new()
        };
        let blocking = spec.method == Method::Blocking;
        let ring_ops =
            spec.method == Method::Uring && spec.socket_ops == crate::config::SocketOps::Ring;
        Worker {
            config,
            setup: SocketSetup {
                family: if config.target.is_ipv6() {
                    libc::AF_INET6
                } else {
                    libc::AF_INET
                },
                nonblocking: driver.nonblocking_sockets(),
                linger0: config.close == CloseMode::Reset,
                blocking_timeout: blocking.then_some(config.connect_timeout),
                read_timeout: config.wait_close.then(|| config.serve_wait()),
            },
            driver,
            pacer: spec.pacer,
            stop: spec.stop,
            published: spec.published,
            rounds: spec.rounds,
            sources: config.sources.clone(),
            next_source: spec.index as u64,
            timeout_ns: config.connect_timeout.as_nanos().min(u64::MAX as u128 / 4) as u64,
            serve_ns: config.serve_wait().as_nanos().min(u64::MAX as u128 / 4) as u64,
            burst: matches!(config.mode, Mode::Burst { .. }),
            close_early: config.close_early,
            rate: matches!(config.mode, Mode::Rate { .. }),
            track_deadlines: !blocking,
            ring_ops,
            close_linked: ring_ops
                && !keep_records
                && !config.wait_close
                && !matches!(config.mode, Mode::Burst { .. }),
            slots: vec![Slot::FREE; slots],
            free: (0..slots as u32).rev().collect(),
            deadlines: VecDeque::with_capacity(slots),
            read_deadlines: VecDeque::with_capacity(if config.wait_close { slots } else { 0 }),
            completions: Vec::with_capacity(slots.min(4096)),
            awaiting: 0,
            draining: 0,
            stats: ThreadStats::new(spec.measure_start_ns, config.keep_intervals),
            records,
            keep_records,
            measure_start_ns: spec.measure_start_ns,
            measuring: false,
            cpu0: (0.0, 0.0),
            backoff_until_ns: 0,
            last_done_ns: 0,
            unpublished: 0,
            round: 0,
            round_counts: RoundMsg::default(),
            interrupted: false,
        }
    }

    fn run(mut self) -> Result<WorkerOutput, LoadgenError> {
        let result = self.run_rounds();
        // Whatever happened, close every socket and let cancelled operations finish.
        self.close_all();
        self.drain();
        result?;
        let (u1, s1) = affinity::thread_cpu_s();
        let (cpu_user_s, cpu_sys_s) = if self.measuring {
            (u1 - self.cpu0.0, s1 - self.cpu0.1)
        } else {
            (0.0, 0.0)
        };
        self.publish();
        let stats = std::mem::replace(&mut self.stats, ThreadStats::new(0, false));
        let records = std::mem::take(&mut self.records);
        Ok(WorkerOutput {
            stats,
            records,
            cpu_user_s,
            cpu_sys_s,
            last_done_ns: self.last_done_ns,
            interrupted: self.interrupted,
        })
    }

    /// Starts connections as the pacer allows until it is done and every outcome is known.
    fn phase(&mut self) -> Result<(), LoadgenError> {
        let mut now = mono_ns();
        loop {
            if !self.measuring && now >= self.measure_start_ns {
                self.cpu0 = affinity::thread_cpu_s();
                self.measuring = true;
            }
            if !self.interrupted && self.stop.load(Ordering::Relaxed) {
                self.interrupt(now);
            }
            if self.track_deadlines {
                self.expire(now);
            }
            let mut wake: Option<u64> = None;
            while !self.free.is_empty() {
                if self.backoff_until_ns > now {
                    wake = Some(self.backoff_until_ns);
                    break;
                }
                match self.pacer.next(now) {
                    Pace::Now { intended_ns } => self.start(intended_ns, now),
                    Pace::At(t) => {
                        wake = Some(t);
                        break;
                    }
                    Pace::Done => break,
                }
            }
            if self.awaiting == 0 && (self.interrupted || self.pacer.exhausted(now)) {
                return Ok(());
            }
            for q in [&self.deadlines, &self.read_deadlines] {
                if let Some(&(d, _, _)) = q.front() {
                    wake = Some(wake.map_or(d, |w| w.min(d)));
                }
            }
            if self.awaiting == 0 && wake.is_none() {
                // Nothing in flight, nothing scheduled: only possible while backing off.
                wake = Some(now + BACKOFF_NS);
            }
            let mut completions = std::mem::take(&mut self.completions);
            let waited = self.driver.wait(wake, &mut completions);
            now = mono_ns();
            for c in completions.drain(..) {
                self.complete(c, now);
            }
            self.completions = completions;
            waited?;
        }
    }

    /// Counts an outcome and, if asked, records the connection.
    #[inline]
    fn note(&mut self, idx: usize, outcome: Outcome, done_ns: u64) {
        let s = self.slots[idx];
        self.stats.count(
            outcome,
            s.warmup,
            done_ns.saturating_sub(s.intended_ns),
            done_ns,
        );
        if !s.warmup {
            self.last_done_ns = self.last_done_ns.max(done_ns);
            let r = &mut self.round_counts;
            r.attempted += 1;
            match outcome {
                Outcome::Established => r.established += 1,
                Outcome::Pending => r.pending += 1,
                _ => r.errors += 1,
            }
        }
        if self.keep_records {
            self.slots[idx].record = self.records.len() as u32;
            let local = if s.fd >= 0 {
                sock::local_addr(s.fd)
            } else {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
            };
            self.records.push(ConnRecord {
                local,
                intended_ns: s.intended_ns,
                connect_start_ns: s.start_ns,
                done_ns,
                outcome,
                warmup: s.warmup,
                round: self.round,
                serve: crate::record::Serve::NotWaited,
            });
        }
        self.unpublished += 1;
        if self.unpublished >= PUBLISH_EVERY {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.unpublished = 0;
        self.published
            .attempted
            .store(self.stats.attempted, Ordering::Relaxed);
        self.published
            .established
            .store(self.stats.established, Ordering::Relaxed);
    }
}

impl<D: Driver> Drop for Worker<'_, D> {
    fn drop(&mut self) {
        // Sockets still open here (an error path) are closed; the driver drops after this.
        for s in &self.slots {
            if s.fd >= 0 {
                sock::close(s.fd);
            }
        }
    }
}

/// The connect ring `config` asks for, with sockets made and closed as `ops` says.
pub(crate) fn ring_choice(
    config: &Config,
    ops: crate::config::SocketOps,
) -> crate::driver::uring::RingChoice {
    crate::driver::uring::RingChoice {
        setup: config.ring_setup,
        socket_ops: ops,
        linger0: config.close == CloseMode::Reset,
    }
}

#[inline]
fn token(idx: usize, gen: u16) -> u64 {
    (gen as u64) << 32 | idx as u64
}

fn is_local_shortage(o: Outcome) -> bool {
    matches!(
        o,
        Outcome::AddrUnavailable
            | Outcome::Other(libc::EMFILE)
            | Outcome::Other(libc::ENFILE)
            | Outcome::Other(libc::ENOBUFS)
            | Outcome::Other(libc::ENOMEM)
    )
}

/// Records to preallocate for one worker: its share of the run, capped at 4 Mi.
fn expected_records(config: &Config, thread: usize) -> usize {
    const CAP: u64 = 4 << 20;
    let secs = (config.duration.unwrap_or_default() + config.warmup).as_secs_f64();
    let n = match config.mode {
        Mode::Burst { rounds } => {
            config.per_thread_connections(thread).unwrap_or(0) * rounds as u64
        }
        _ if config.connections.is_some() => {
            config.per_thread_connections(thread).unwrap_or(0)
                + (config.warmup.as_secs_f64() * 50_000.0) as u64
        }
        Mode::Rate { rate_per_s } => (rate_per_s * secs / config.threads as f64) as u64 + 16,
        Mode::Closed => (secs * 50_000.0) as u64,
    };
    n.min(CAP) as usize
}
