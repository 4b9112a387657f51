//! One run of an external server (`--server NAME=COMMAND`) as an engine: on a thread of
//! its own, in a fresh private network namespace when root (else the host's, said in
//! the row), the server is started for the run (`external`), ready when sock_diag sees
//! its listener, driven by loadgen waiting for its action on every connection, and
//! stopped whatever the way out (the server value's Drop).
//!
//! It has no records of its own: every connection loadgen saw *served* (the server's
//! first byte or close) counts as accepted at that moment with the client's own
//! address as its peer, so the sweep's join, rows, ratios and charts work unchanged —
//! `accepted` is *served*, `unmatched_client` is established-but-never-served
//! (client-only, or reset), and the `served` histogram is connect() → served. CPU is
//! the server's process group's (every thread of every process) over the window.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::client::ClientResult;
use super::hosts::Place;
use super::measure::Driven;
use super::run::{Measured, ModeFigures, ModelMu, RunEnv, RunSpec};
use crate::config::external::{Attach, ExternalConfig, Origin};
use crate::config::Mode;
use crate::external::{ExternalServer, ServerSpec, DEFAULT_READY_TIMEOUT, DEFAULT_STOP_GRACE};
use crate::kernel::sockdiag::ListenerDiag;
use crate::record::Recorder;

/// A stopped server is continued at the latest this long after a burst began.
const BURST_ARRIVAL_LIMIT: Duration = Duration::from_secs(10);
/// The server's CPU is sampled this often while the run goes on (a /proc scan each).
const CPU_EVERY: Duration = Duration::from_millis(100);

/// Whether `mode` is measured for external servers, and if not why.
pub fn unsupported_mode(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::Closed | Mode::Rate | Mode::Burst | Mode::Stall | Mode::Drain => None,
        Mode::Overload => Some("mode overload slows the acceptor with --accept-delay, which cannot slow someone else's server"),
    }
}

/// Measures one run of `server` on a thread of its own; also returns the row's note
/// on the server (its listener, how it stopped, where its logs are).
/// `mu` is the stall model's μ for a stall run.
pub fn measure(
    spec: &RunSpec,
    server: &ExternalConfig,
    mu: ModelMu,
) -> anyhow::Result<(Measured, String)> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("acceptbench-ext".into())
            .spawn_scoped(s, || measure_here(spec, server, mu))
            .context("cannot start the run's thread")?
            .join()
            .map_err(|_| anyhow::anyhow!("the run's thread panicked"))?
    })
}

fn measure_here(
    spec: &RunSpec,
    server: &ExternalConfig,
    mu: ModelMu,
) -> anyhow::Result<(Measured, String)> {
    let cfg = spec.settings;
    common::affinity::pin_current_thread_to(&cfg.client_cpus)?;
    let attached = server.attached().copied();
    // A private namespace when it can be made (root) for a server started here: the
    // port is free, counters exact. An attached server runs in the host's.
    let private =
        attached.is_none() && crate::kernel::netns::enter_private(&cfg.overflow.netns).is_ok();
    let env = RunEnv::read(private);
    let Started {
        mut srv,
        mut diag,
        listening,
        target,
    } = match attached {
        Some(a) => attach_to(server.name, a)?,
        None => start(spec, server)?,
    };
    let port = target.port();
    // --trace kernel: from before the clients start until the run's figures are in.
    let tracing =
        super::ktrace::start(spec.planned.trace, port, &spec.settings.trace_reader_cpus());
    // The backlog as the kernel applied it, read from the listener, never assumed.
    let backlog_effective = listening.iter().map(|l| l.backlog).max().unwrap_or(0);
    let mut lg = super::measure::loadgen_config(spec, target, backlog_effective)?;
    // Read while it runs (the keeper's namespace link goes when it is reaped).
    let contained = srv.contained();
    let note = |srv: &ExternalServer, stopped: &crate::external::Stopped| match attached {
        Some(a) => attached_note(server.name, srv, &listening, a),
        None => server_note(server, srv, &listening, port, stopped, contained),
    };
    if spec.mode() == Mode::Drain {
        let m = super::extdrain::drain(spec, &srv, &mut diag, port, &lg, backlog_effective, env);
        let stopped = srv.stop();
        let mut m = m?;
        // An attached server runs where it runs: not pinned by us.
        m.acceptor_cpus = pinned_to(attached, cfg.server_cpu);
        m.kernel = tracing.finish(&m.rec.peers);
        return Ok((m, note(&srv, &stopped)));
    }
    let burst = spec.mode() == Mode::Burst;
    let stall = match spec.mode() {
        Mode::Stall => Some(
            spec.planned
                .stall
                .context("a stall run was planned without its stall and load")?
                .duration,
        ),
        _ => None,
    };
    lg.wait_close = true;
    lg.server_request = server.request.clone();
    lg.serve_timeout = Some(serve_wait(&lg, burst, stall, cfg.overflow.pause));
    let watch = if burst || stall.is_some() {
        let sampler = ListenerDiag::open().context("cannot open a sock_diag netlink socket")?;
        Some(crate::overflow::Watch::start_port(sampler, port, burst)?)
    } else {
        None
    };
    let facts = stall.map(|_| stall_facts(&lg, mu));
    let d = drive(spec, &mut srv, &mut diag, port, &lg, burst, stall);
    let stopped = srv.stop();
    let figures =
        watch.map(|w| w.finish(d.as_ref().ok().and_then(|d| d.counters_at_release.as_ref())));
    let figures = match (figures, facts) {
        (Some(f), Some(facts)) => ModeFigures::Stall(f, facts),
        (Some(f), None) => ModeFigures::Overflow(f),
        _ => ModeFigures::Driven,
    };
    let client_window = matches!(figures, ModeFigures::Driven);
    let mut m = d?.into_measured(backlog_effective, env, figures, client_window);
    m.acceptor_cpus = pinned_to(attached, cfg.server_cpu);
    // The served stamps stand for accepts: queue waits are queue plus service.
    m.kernel = tracing.finish(&m.rec.peers);
    Ok((m, note(&srv, &stopped)))
}

/// How long a connection waits for the server to serve it once established: long
/// enough for what a stall queued to be served after the resume; in a burst, for the
/// server to be continued (at most 10 s for the burst to arrive, then `pause` with the
/// queue unchanged) and take its queue and the SYN-ACK retransmits' arrivals after it.
fn serve_wait(
    lg: &loadgen::Config,
    burst: bool,
    stall: Option<Duration>,
    pause: Duration,
) -> Duration {
    let floor = if burst {
        BURST_ARRIVAL_LIMIT + pause + Duration::from_secs(3)
    } else {
        Duration::from_secs(3) + stall.unwrap_or_default()
    };
    lg.connect_timeout.max(floor)
}

/// The CPU the server is pinned to: ours, or none for an attached server (it runs
/// where it runs).
fn pinned_to(attached: Option<Attach>, cpu: usize) -> String {
    if attached.is_some() {
        String::new()
    } else {
        cpu.to_string()
    }
}

/// A server started for a run and listening.
struct Started {
    srv: ExternalServer,
    /// sock_diag in the run's namespace.
    diag: ListenerDiag,
    listening: Vec<crate::kernel::sockdiag::Listening>,
    target: SocketAddr,
}

/// An attached server (`--attach`), listening at `a.addr` in this (the host's)
/// network namespace.
fn attach_to(name: &str, a: Attach) -> anyhow::Result<Started> {
    let mut diag = ListenerDiag::open().context("cannot open a sock_diag netlink socket")?;
    let listening = listeners_at(&mut diag, name, a.addr)?;
    Ok(Started {
        srv: ExternalServer::attach(name, a.pid),
        diag,
        listening,
        target: a.addr,
    })
}

/// The LISTEN sockets at `addr` (or on its port at the wildcard address); an error
/// naming the server when there is none.
fn listeners_at(
    diag: &mut ListenerDiag,
    name: &str,
    addr: SocketAddr,
) -> anyhow::Result<Vec<crate::kernel::sockdiag::Listening>> {
    let on_port = diag
        .listening(addr.port())
        .context("cannot read the listeners with sock_diag")?;
    let at: Vec<_> = on_port
        .into_iter()
        .filter(|l| l.addr.ip() == addr.ip() || l.addr.ip().is_unspecified())
        .collect();
    if at.is_empty() {
        anyhow::bail!(
            "--attach {name}: nothing listens on {addr} (sock_diag sees no LISTEN socket there in this host's network namespace); start the server first, or give the address it listens on"
        );
    }
    Ok(at)
}

/// The row's note on an attached server: its listeners, the namespace, its pauses.
fn attached_note(
    name: &str,
    srv: &ExternalServer,
    listening: &[crate::kernel::sockdiag::Listening],
    a: Attach,
) -> String {
    format!(
        "attached server {name} at {} ({} listening socket{}, backlog {} as sock_diag read it); the host's network namespace: kernel counters (ListenOverflows, …) may include other traffic; {}; left running",
        a.addr,
        listening.len(),
        if listening.len() == 1 { "" } else { "s" },
        listening.iter().map(|l| l.backlog).max().unwrap_or(0),
        srv.attached_pauses().unwrap_or_default(),
    )
}

/// Starts `server` for the run on a free port of 127.0.0.1, logs in `servers/`, and
/// waits until it listens.
fn start(spec: &RunSpec, server: &ExternalConfig) -> anyhow::Result<Started> {
    let cfg = spec.settings;
    let p = &spec.planned;
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let port = free_port(ip)?;
    let logs = match &cfg.servers_dir {
        Some(d) => d.clone(),
        None => spec.tmp.to_path_buf(),
    };
    std::fs::create_dir_all(&logs)
        .with_context(|| format!("cannot make {} for the server's logs", logs.display()))?;
    let stem = format!(
        "{}-b{}-{}-r{}",
        server.name,
        p.backlog,
        p.mode.name(),
        p.round
    );
    let mut diag = ListenerDiag::open().context("cannot open a sock_diag netlink socket")?;
    let Origin::Command(template) = &server.origin else {
        anyhow::bail!("server {} is attached, not started", server.name);
    };
    let mut srv = ExternalServer::start(&ServerSpec {
        name: server.name.to_string(),
        command: template.render(ip, port, p.backlog),
        cpu: Some(cfg.server_cpu),
        log_stem: logs.join(stem),
        ready_timeout: DEFAULT_READY_TIMEOUT,
        stop_grace: DEFAULT_STOP_GRACE,
    })?;
    let listening = srv.wait_ready(&mut diag, port)?;
    Ok(Started {
        srv,
        diag,
        listening,
        target: SocketAddr::new(ip, port),
    })
}

/// What a stall run's analysis needs, read in the run's namespace (the SYN schedule
/// its clients retransmit on).
fn stall_facts(lg: &loadgen::Config, mu: ModelMu) -> super::run::StallFacts {
    super::run::StallFacts {
        schedule: crate::stall::schedule::SynSchedule::of_running_kernel().ok(),
        wheel: crate::stall::schedule::TimerWheel::of_running_kernel(),
        concurrency: lg.concurrency as u32,
        connect_timeout_ms: lg.connect_timeout.as_millis() as u64,
        mu,
    }
}

/// The row's note on the server: its listeners, how it stopped, its logs.
fn server_note(
    server: &ExternalConfig,
    srv: &ExternalServer,
    listening: &[crate::kernel::sockdiag::Listening],
    port: u16,
    stopped: &crate::external::Stopped,
    contained: bool,
) -> String {
    format!(
        "external server {} ({} listening socket{} on port {port}, backlog {} as sock_diag read it; {}); stopped: {}{}; its logs: servers/{}.stdout, .stderr",
        server.name,
        listening.len(),
        if listening.len() == 1 { "" } else { "s" },
        listening.iter().map(|l| l.backlog).max().unwrap_or(0),
        if contained {
            "in a PID namespace of its own: nothing it forks outlives the sweep"
        } else {
            "not contained (no CAP_SYS_ADMIN): a process it forks outlives a SIGKILLed sweep"
        },
        stopped.status,
        if stopped.killed { " (killed: it outlived SIGTERM's grace)" } else { "" },
        srv.logs().0.file_stem().and_then(|s| s.to_str()).unwrap_or("")
    )
}

/// A server that cannot be measured, found before the sweep starts: the command is
/// wrong (it exits, never listens, or listens elsewhere). The user's to fix: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("--server {name}: {why}")]
pub struct PreflightError {
    /// The server.
    pub name: String,
    /// What went wrong, with the server's log.
    pub why: String,
}

/// Starts every server once, as a run would (private namespace when root, backlog
/// `backlog`), checks it listens on its `{port}`, and stops it; returns a note per
/// server for meta.json.
pub fn preflight(
    servers: &[ExternalConfig],
    netns: &crate::kernel::netns::NetnsSettings,
    cpu: usize,
    backlog: u32,
) -> Result<Vec<String>, PreflightError> {
    servers
        .iter()
        .filter(|s| s.attached().is_none())
        .map(|server| {
            std::thread::scope(|s| {
                s.spawn(|| preflight_one(server, netns, cpu, backlog))
                    .join()
                    .unwrap_or_else(|_| {
                        Err(PreflightError {
                            name: server.name.into(),
                            why: "the preflight thread panicked".into(),
                        })
                    })
            })
        })
        .collect()
}

/// Checks an attached server before the sweep: something listens at its address, its
/// listener's backlog is one of `backlogs` (its runs are in that cell), and its PID, if
/// given, holds that listener. Returns the backlog and a note for meta.json.
pub fn preflight_attached(
    server: &ExternalConfig,
    backlogs: &[u32],
) -> Result<(u32, String), PreflightError> {
    let fail = |why: String| PreflightError {
        name: server.name.into(),
        why,
    };
    let Some(a) = server.attached().copied() else {
        return Err(fail("it is started by the sweep, not attached".into()));
    };
    let mut diag = ListenerDiag::open().map_err(|e| fail(format!("sock_diag: {e}")))?;
    let listening =
        listeners_at(&mut diag, server.name, a.addr).map_err(|e| fail(format!("{e:#}")))?;
    let backlog = listening.iter().map(|l| l.backlog).max().unwrap_or(0);
    if !backlogs.contains(&backlog) {
        return Err(fail(format!(
            "it listens on {} with backlog {backlog} (read with sock_diag), and an attached server's backlog is its listener's: put {backlog} in --backlogs (e.g. --backlogs {backlog}) to measure it beside the other engines at that backlog",
            a.addr
        )));
    }
    if let Some(pid) = a.pid {
        let tree = crate::external::proc::tree_members(pid);
        if tree.is_empty() {
            return Err(fail(format!(
                "no process {pid} is running: give the PID of the server listening on {}",
                a.addr
            )));
        }
        let held = crate::external::proc::pids_socket_inodes(&tree);
        if !listening.iter().any(|l| held.contains(&l.inode)) {
            return Err(fail(format!(
                "PID {pid} (and its children) hold no listener on {}: give the PID of the server listening there",
                a.addr
            )));
        }
    }
    let srv = ExternalServer::attach(server.name, a.pid);
    Ok((
        backlog,
        format!(
            "server {}: attached at {} (backlog {backlog}, read with sock_diag; runs only in the --backlogs {backlog} cell) in the host's network namespace, never started or stopped; {}",
            server.name,
            a.addr,
            srv.attached_pauses().unwrap_or_default()
        ),
    ))
}

fn preflight_one(
    server: &ExternalConfig,
    netns: &crate::kernel::netns::NetnsSettings,
    cpu: usize,
    backlog: u32,
) -> Result<String, PreflightError> {
    let fail = |why: String| PreflightError {
        name: server.name.into(),
        why,
    };
    let private = crate::kernel::netns::enter_private(netns).is_ok();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let port = free_port(ip).map_err(|e| fail(format!("{e:#}")))?;
    let dir = tempfile::tempdir().map_err(|e| fail(format!("a directory for its logs: {e}")))?;
    let mut diag = ListenerDiag::open().map_err(|e| fail(format!("sock_diag: {e}")))?;
    let Origin::Command(template) = &server.origin else {
        return Err(fail("attached, not started".into()));
    };
    let t0 = Instant::now();
    let mut srv = ExternalServer::start(&ServerSpec {
        name: server.name.to_string(),
        command: template.render(ip, port, backlog),
        cpu: Some(cpu),
        log_stem: dir.path().join(server.name),
        ready_timeout: DEFAULT_READY_TIMEOUT,
        stop_grace: DEFAULT_STOP_GRACE,
    })
    .map_err(|e| fail(e.to_string()))?;
    let listening = srv.wait_ready(&mut diag, port).map_err(|e| {
        fail(format!(
            "{e}
(the command was: {}; fix it and run again)",
            server.command
        ))
    })?;
    let ready_ms = t0.elapsed().as_millis();
    let stopped = srv.stop();
    Ok(format!(
        "server {}: `{}` listened on port {port} in {ready_ms} ms ({} socket{}, backlog {} for --backlogs {backlog}, read with sock_diag) in {} network namespace; it stopped with {}{}",
        server.name,
        server.command,
        listening.len(),
        if listening.len() == 1 { "" } else { "s" },
        listening.iter().map(|l| l.backlog).max().unwrap_or(0),
        if private { "a private" } else { "the host's" },
        stopped.status,
        if stopped.killed { " after SIGKILL (it outlived SIGTERM's grace)" } else { "" },
    ))
}

/// A port nothing listens on now (bound and released at once: in a private namespace
/// nobody else takes it meanwhile).
fn free_port(ip: IpAddr) -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .context("cannot find a free port for the server")?;
    Ok(l.local_addr()?.port())
}

/// Drives loadgen at the server; burst: the server is stopped (SIGSTOP to its group)
/// until the burst has arrived in its queue, then continued; stall: stopped for
/// `stall` once the clients have run `--stall-at`.
fn drive(
    spec: &RunSpec,
    srv: &mut ExternalServer,
    diag: &mut ListenerDiag,
    port: u16,
    lg: &loadgen::Config,
    burst: bool,
    stall: Option<Duration>,
) -> anyhow::Result<Driven> {
    let cfg = spec.settings;
    let client_len = lg.duration.unwrap_or(cfg.duration)
        + cfg.warmup
        + lg.connect_timeout
        + lg.serve_timeout.unwrap_or_default();
    let deadline = Instant::now() + client_len + Duration::from_secs(30);
    if burst {
        srv.pause().context("cannot stop the server (SIGSTOP)")?;
    }
    let started = Instant::now();
    let cpu_at_release_s = srv.cpu_s();
    let mut released_ns = common::clock::mono_ns();
    let mut cpu_samples = vec![(released_ns, cpu_at_release_s)];
    let mut counters_at_release = None;
    let mut child = super::hosts::Clients::spawn(spec.exe, spec.tmp, lg, Place::Loopback)?;
    if burst {
        wait_for_burst(diag, port, cfg.overflow.pause, deadline);
        counters_at_release = crate::overflow::read_counters();
        released_ns = common::clock::mono_ns();
        srv.resume()
            .context("cannot continue the server (SIGCONT)")?;
    }
    let mut pause = stall.map(|t| StallClock::new(Instant::now() + cfg.stall.at, t));
    let (failure, interrupted) = follow(
        spec,
        srv,
        &mut child,
        pause.as_mut(),
        deadline,
        &mut cpu_samples,
    )?;
    let client = child.finish(client_len + Duration::from_secs(30))?;
    let cpu_end = srv.cpu_s();
    cpu_samples.push((common::clock::mono_ns(), cpu_end));
    let mut rec = served_as_accepted(&client);
    if let Some(p) = pause {
        rec.stall = p.finish(srv)?;
    }
    Ok(Driven {
        window_s: client
            .report
            .duration_s
            .max(0.0)
            .min(started.elapsed().as_secs_f64())
            .max(f64::MIN_POSITIVE),
        rec,
        owner: Vec::new(),
        per_acceptor: Vec::new(),
        ring_setup: None,
        cpu_s: (cpu_end - cpu_at_release_s).max(0.0),
        cpu_known: srv.cpu_known(),
        released_ns,
        cpu_samples,
        cpu_at_release_s,
        counters_at_release,
        client,
        failure,
        interrupted,
        // The server's own threads are not counted (its CPU is, from /proc).
        usage: None,
        usage_accepts: 0,
    })
}

/// Follows loadgen to its end: stops and continues the server for a stall, passes a
/// Ctrl-C on, samples the server's CPU; returns (why it failed, interrupted).
fn follow(
    spec: &RunSpec,
    srv: &ExternalServer,
    child: &mut super::hosts::Clients,
    mut pause: Option<&mut StallClock>,
    deadline: Instant,
    cpu_samples: &mut Vec<(u64, f64)>,
) -> anyhow::Result<(Option<String>, bool)> {
    let (mut failure, mut interrupted) = (None, false);
    let mut next_cpu = Instant::now() + CPU_EVERY;
    while !child.has_exited() {
        if let Some(p) = pause.as_deref_mut() {
            p.step(srv)?;
        }
        if spec.stop.is_raised() && !interrupted {
            child.interrupt();
            interrupted = true;
        }
        if Instant::now() >= next_cpu {
            cpu_samples.push((common::clock::mono_ns(), srv.cpu_s()));
            next_cpu += CPU_EVERY;
        }
        if Instant::now() >= deadline {
            failure = Some("loadgen did not end by the run's deadline".to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok((failure, interrupted))
}

/// Mode stall: the server's group is stopped at `at` for `length`, then continued;
/// when, and the ListenOverflows meanwhile, become the run's stall mark.
struct StallClock {
    at: Instant,
    length: Duration,
    start: Option<(u64, Instant, Option<u64>)>,
    mark: Option<crate::record::StallMark>,
}

impl StallClock {
    fn new(at: Instant, length: Duration) -> StallClock {
        StallClock {
            at,
            length,
            start: None,
            mark: None,
        }
    }

    fn overflows() -> Option<u64> {
        crate::overflow::read_counters().and_then(|c| c.get("ListenOverflows").copied())
    }

    /// Stops or continues the server when due.
    fn step(&mut self, srv: &ExternalServer) -> anyhow::Result<()> {
        match self.start {
            None if Instant::now() >= self.at => {
                let before = Self::overflows();
                srv.pause().context("cannot stop the server (SIGSTOP)")?;
                self.start = Some((common::clock::mono_ns(), Instant::now(), before));
            }
            Some((start_ns, t, before)) if self.mark.is_none() && t.elapsed() >= self.length => {
                srv.resume()
                    .context("cannot continue the server (SIGCONT)")?;
                let end_ns = common::clock::mono_ns();
                self.mark = Some(crate::record::StallMark {
                    start_ns,
                    end_ns,
                    overflows: before
                        .zip(Self::overflows())
                        .map(|(b, a)| a.saturating_sub(b)),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// The mark; a server still stopped (loadgen ended first) is continued now.
    fn finish(mut self, srv: &ExternalServer) -> anyhow::Result<Option<crate::record::StallMark>> {
        if self.start.is_some() && self.mark.is_none() {
            self.length = Duration::ZERO;
            self.step(srv)?;
        }
        Ok(self.mark)
    }
}

/// Every connection the client saw served, as the server's record of accepting it at
/// that moment: peer = the client's address, accepted = decoded = served.
fn served_as_accepted(client: &ClientResult) -> Recorder {
    let mut rec = Recorder::new(true);
    for r in &client.records {
        if let loadgen::Serve::Served(t) = r.serve {
            rec.accepted(r.local, t, t);
            rec.last_closed_ns = rec.last_closed_ns.max(t);
        }
    }
    rec
}

/// Stopped server: waits until its queue has held connections, unchanged, for
/// `settle` (the burst has arrived), or `BURST_ARRIVAL_LIMIT`, or `deadline`.
fn wait_for_burst(diag: &mut ListenerDiag, port: u16, settle: Duration, deadline: Instant) {
    let give_up = (Instant::now() + BURST_ARRIVAL_LIMIT).min(deadline);
    let mut last = (u32::MAX, Instant::now());
    while Instant::now() < give_up {
        let depth: u32 = diag
            .listening(port)
            .map(|l| l.iter().map(|s| s.queued).sum())
            .unwrap_or(0);
        if depth != last.0 {
            last = (depth, Instant::now());
        } else if depth > 0 && last.1.elapsed() >= settle {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
