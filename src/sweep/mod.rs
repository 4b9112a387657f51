//! The sweep: engines × backlogs × modes × rounds.
//!
//! The measurement path, top to bottom: [`plan`] orders the runs in rounds → each
//! planned run becomes one [`run::RunSpec`] → [`measure`] takes it (its own thread and,
//! for overflow runs as root, its own network namespace; the engines are timed with
//! [`crate::timing`]; [`drain`] and the acceptor [`team`] are its two ways of running
//! acceptors) → [`rows`] joins client and server records into a row
//! ([`crate::join`]) → the round's ratios to std are set → each finished run goes to
//! the [`sink`]s (terminal, results directory, JSON lines). When the sweep ends the
//! sinks finish: the results directory aggregates its rows into cells with confidence
//! intervals (`cells.csv`), writes meta.json and the run's README, and draws charts.
//! Ctrl-C stops the current run, keeps every finished row and marks the run
//! incomplete.

pub mod client;
pub mod drain;
pub mod extdrain;
pub mod external;
pub mod hosts;
pub mod ksplit;
pub mod ktrace;
pub mod measure;
pub mod plan;
pub mod rows;
pub mod run;
pub mod sink;
pub mod ssh;
pub mod stall;
pub mod team;

use std::process::ExitCode;

use anyhow::Context;

use crate::config::SweepConfig;
use crate::engine::{EngineKind, StopFlag};
use crate::kernel::{self, probe};
use crate::report::meta::Meta;
use crate::report::row::Status;
use rows::FinishedRun;
use run::{ModelMu, RunSettings, RunSpec};
use sink::Sink;

/// Exit status: every planned run was measured (or skipped as unsupported).
pub const EXIT_OK: u8 = 0;
/// Exit status: some runs failed; their rows say why and no aggregate includes them.
pub const EXIT_SOME_FAILED: u8 = 3;
/// Exit status: no run succeeded.
pub const EXIT_ALL_FAILED: u8 = 4;
/// Exit status: interrupted (Ctrl-C); what was measured is kept, marked incomplete.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs a sweep and says how it went in its exit status (see the `EXIT_*` constants):
/// plan → for each run, measure → hand the finished run to the sinks; the sinks then
/// finish (the results directory writes its cells, meta, README and charts).
pub fn run(cfg: &SweepConfig) -> anyhow::Result<ExitCode> {
    kernel::raise_nofile();
    let exe = std::env::current_exe().context("cannot find this executable to start loadgen")?;
    let uring = probe::probe_uring();
    let mut meta = sweep_meta(cfg, &uring);
    let mut settings = RunSettings::of(cfg);
    // Kept until the sweep ends: tracefs, if counting mounted it, goes with it.
    let _tracefs = machine_setup(cfg, &mut meta, &mut settings);
    // What preflight copied to the hosts goes again when this is dropped, however the
    // sweep ends from here on.
    let copies = preflight(cfg, &mut meta, &mut settings)?;
    for n in &meta.notes {
        eprintln!("acceptbench: note: {n}");
    }
    let mut directory = sink::Directory::create(&cfg.out, meta, cfg.plots)?;
    settings.servers_dir = Some(directory.path().join("servers"));
    // Private (mode 0700, unpredictable name) and removed on every way out of here.
    let tmp_dir = tempfile::Builder::new()
        .prefix("acceptbench-")
        .tempdir()
        .context("cannot create a private temporary directory for loadgen's records")?;
    let stop = StopFlag::new();
    crate::signal::stop_on_signal(&stop)?;
    let rounds = plan::rounds(cfg);
    let total = rounds.iter().map(Vec::len).sum();
    let mut terminal = sink::Terminal::new(total, cfg.quiet || cfg.json);
    let mut json = cfg.json.then_some(sink::JsonLines);
    let ctx = RunContext {
        settings: &settings,
        uring: &uring,
        stop: &stop,
        exe: &exe,
        tmp: tmp_dir.path(),
        drain_rates: std::cell::RefCell::new(Vec::new()),
    };
    let result = run_rounds(&ctx, rounds, &mut terminal, &mut directory, json.as_mut());
    drop(tmp_dir);
    drop(copies);
    let incomplete = stop.is_raised() || result.is_err();
    if !incomplete {
        for w in directory.machine_at_end(settings.perf.clone().ok()) {
            eprintln!("acceptbench: note: {w}");
        }
    }
    terminal.done(incomplete)?;
    directory.done(incomplete)?;
    result?;
    conclude(cfg, &directory, incomplete)
}

/// Before the first run: the ssh client hosts (checked, the binary copied if asked)
/// and the external servers (each started once); what they found goes into `meta`.
/// Returns what was copied to the hosts, removed when dropped.
fn preflight(
    cfg: &SweepConfig,
    meta: &mut Meta,
    settings: &mut RunSettings,
) -> anyhow::Result<Option<ssh::Copies>> {
    let mut copies = None;
    if let Some(crate::config::ClientHostsConfig::Ssh(s)) = &cfg.client_hosts {
        let run = ssh_preflight(s, meta)?;
        copies = Some(ssh::Copies {
            ssh: run.settings.clone(),
            facts: run.hosts.clone(),
        });
        settings.ssh = Some(run);
    }
    for server in settings.servers.iter_mut() {
        if server.attached().is_some() {
            let (backlog, note) = external::preflight_attached(server, &cfg.backlogs)?;
            server.listen_backlog = Some(backlog);
            meta.notes.push(note);
        }
    }
    if cfg.servers.iter().any(|s| s.attached().is_none()) {
        let first = cfg.backlogs.first().copied().unwrap_or(128);
        meta.notes.extend(external::preflight(
            &cfg.servers,
            &cfg.overflow.netns,
            cfg.server_cpu,
            first,
        )?);
        meta.notes.push("external servers: each run starts the server in its own process group pinned to the acceptor CPU (in a fresh private network namespace when root), ready when sock_diag sees its listener; served = it closed or answered a connection, as the client saw it (client-only = established, never served, never reset); CPU = its process group's over the window (/proc); logs in servers/".into());
    }
    Ok(copies)
}

/// Every round: its runs in order, then their ratios to std, then each run to every
/// sink; stops between runs when asked.
fn run_rounds(
    ctx: &RunContext,
    rounds: Vec<Vec<plan::Planned>>,
    terminal: &mut sink::Terminal,
    directory: &mut sink::Directory,
    mut json: Option<&mut sink::JsonLines>,
) -> anyhow::Result<()> {
    for round in rounds {
        let mut done: Vec<FinishedRun> = Vec::with_capacity(round.len());
        for p in round {
            if ctx.stop.is_raised() {
                break;
            }
            terminal.starting(&p);
            done.push(ctx.run_one(p));
        }
        set_round_ratios(&mut done);
        for run in &done {
            terminal.finished(run)?;
            directory.finished(run)?;
            if let Some(j) = json.as_mut() {
                j.finished(run)?;
            }
        }
        if ctx.stop.is_raised() {
            break;
        }
    }
    Ok(())
}

/// The perf counting a sweep asked for (`--count-syscalls`: tracefs for the ids, kept
/// open by the caller until the sweep ends, then unmounted if it was mounted here) and
/// the machine's cost profile at the start, both into `meta`/`settings`.
fn machine_setup(
    cfg: &SweepConfig,
    meta: &mut Meta,
    settings: &mut RunSettings,
) -> Option<Result<crate::kernel::tracefs::Tracefs, String>> {
    let tracefs = cfg
        .count_syscalls
        .then(|| crate::kernel::tracefs::Tracefs::open().map_err(|e| e.to_string()));
    settings.perf = match &tracefs {
        None => Err("not asked for: --count-syscalls".into()),
        Some(t) => t
            .as_ref()
            .map_err(Clone::clone)
            .and_then(crate::kernel::perf::Ids::of)
            .and_then(crate::kernel::perf::usable),
    };
    meta.machine = Some(crate::kernel::costs::Profile::at_start(
        cfg.server_cpu,
        settings.perf.clone().ok(),
    ));
    if let (Err(why), true) = (&settings.perf, cfg.count_syscalls) {
        meta.notes.push(format!(
            "system calls and io_uring enters per accept are not counted ({why}); context switches and the user/kernel CPU split come from getrusage"
        ));
    }
    tracefs
}

/// The end of a sweep: the verdict (terminal, and a JSON object with `--json`), what
/// failed, where the results are, and the exit status.
fn conclude(
    cfg: &SweepConfig,
    directory: &sink::Directory,
    incomplete: bool,
) -> anyhow::Result<ExitCode> {
    let rows = &directory.rows;
    let failed = rows
        .iter()
        .filter(|r| r.status == Some(Status::Failed))
        .count();
    let ok = rows.iter().filter(|r| r.is_ok()).count();
    if !directory.verdict.is_empty() {
        eprint!("\n{}", directory.verdict.to_text());
    }
    if cfg.json {
        let line = serde_json::json!({ "verdict": &directory.verdict });
        crate::stdout::println(line)?;
    }
    finish_message(directory.path(), rows, failed, incomplete);
    Ok(ExitCode::from(if incomplete {
        EXIT_INTERRUPTED
    } else if failed > 0 && ok == 0 {
        EXIT_ALL_FAILED
    } else if failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }))
}

/// Checks the ssh client hosts before the first run (see [`ssh::preflight`]) and
/// notes what it found in `meta`.
fn ssh_preflight(
    s: &crate::config::SshHostsConfig,
    meta: &mut Meta,
) -> anyhow::Result<hosts::SshRun> {
    eprintln!(
        "acceptbench: checking {} ssh client host{} (version, clock, a test connection to {})",
        s.hosts.len(),
        if s.hosts.len() == 1 { "" } else { "s" },
        s.server_addr
    );
    let facts = ssh::preflight(
        &s.ssh,
        &s.hosts,
        &ssh::this_host(),
        s.server_addr,
        s.client_binary.as_deref(),
    )?;
    for f in &facts {
        meta.notes.push(format!(
            "client host {} ({}): acceptbench {} at {}{}, wall clock {:+.3} ms from this host's (±{:.3} ms, the fastest of several round trips over ssh), a test connection to {} accepted",
            f.host.label(),
            f.info.host,
            f.info.acceptbench_version,
            f.host.binary(),
            if f.copied.is_some() { " (copied there with scp)" } else { "" },
            f.offset_ns as f64 / 1e6,
            f.offset_within_ns as f64 / 1e6,
            s.server_addr
        ));
    }
    meta.notes.push(format!(
        "ssh client hosts: each runs loadgen with --rate split between the {} hosts (the server sees the rate asked for) and closed loops as configured on every host; its records are joined through the hosts' wall clocks when it is another machine, so peer latencies are only as right as their clock sync (columns client_hosts, per_host, host_start_spread_ms; hosts/*.csv per run)",
        facts.len()
    ));
    Ok(hosts::SshRun {
        settings: s.ssh.clone(),
        hosts: facts,
        server_addr: s.server_addr,
    })
}

/// meta.json of a sweep as it starts: the machine, the command, its set-up notes.
fn sweep_meta(cfg: &SweepConfig, uring: &probe::UringProbe) -> Meta {
    let mut meta = Meta::collect(
        &cfg.command,
        uring.clone(),
        (cfg.server_cpu, cfg.client_cpus.clone()),
    );
    meta.notes.extend(setup_notes(cfg));
    meta.engine_options = format!(
        "inflight={} accept_flags={} ring_setup={} direct={}",
        cfg.inflights
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        cfg.accept_flags
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(","),
        cfg.options
            .ring_setup
            .map_or("<engine default>".to_string(), |r| r.to_string()),
        cfg.options.direct
    );
    meta
}

/// What every run of the sweep is measured with.
struct RunContext<'a> {
    settings: &'a RunSettings,
    uring: &'a probe::UringProbe,
    stop: &'a StopFlag,
    exe: &'a std::path::Path,
    tmp: &'a std::path::Path,
    /// External servers' drain rates measured so far: (server, backlog, accepts/s) of
    /// each ok drain run, for the stall model's μ.
    drain_rates: std::cell::RefCell<Vec<(&'static str, u32, f64)>>,
}

impl RunContext<'_> {
    /// The run value of `p` in this sweep.
    fn spec(&self, p: plan::Planned) -> RunSpec<'_> {
        RunSpec {
            planned: p,
            settings: self.settings,
            stop: self.stop,
            exe: self.exe,
            tmp: self.tmp,
        }
    }

    /// Measures one planned run; an unsupported engine is skipped, an error is a failed row.
    fn run_one(&self, p: plan::Planned) -> FinishedRun {
        if let Some(name) = p.external {
            return self.run_external(p, name);
        }
        let support = crate::engine::engine_support(p.engine, self.uring);
        if !support.supported {
            return FinishedRun::without_figures(&p, Status::Skipped, &support.reason);
        }
        if let Some(f) = p.accept_flags.filter(|f| f.needs_6_10()) {
            if let Some(why) = crate::engine::accept_flags_unsupported(self.uring) {
                return FinishedRun::without_figures(
                    &p,
                    Status::Skipped,
                    &format!("accept flags {f}: {why}"),
                );
            }
        }
        if p.mode == crate::config::Mode::Drain && p.acceptors > 1 {
            return FinishedRun::without_figures(
                &p,
                Status::Skipped,
                "mode drain runs one acceptor (its fill/drain rounds count one acceptor's accepts); several acceptors run in closed, rate, burst and overload",
            );
        }
        if p.mode == crate::config::Mode::Stall
            && (p.acceptors > 1 || p.sharing != crate::acceptors::Sharing::Shared)
        {
            return FinishedRun::without_figures(
                &p,
                Status::Skipped,
                "mode stall runs one acceptor on one listener (its model has one queue and one acceptor, and several would each take their own pause)",
            );
        }
        let spec = self.spec(p);
        match measure::measure(&spec) {
            Ok(m) => {
                let table =
                    crate::engine::direct_table_note(&spec.engine_options(), m.backlog_effective);
                let mut done = rows::finished(&p, m);
                if let Some(note) = table {
                    done.row.add_note(&note);
                }
                done
            }
            Err(e) if self.stop.is_raised() => {
                FinishedRun::without_figures(&p, Status::Incomplete, &format!("interrupted: {e:#}"))
            }
            Err(e) => FinishedRun::without_figures(&p, Status::Failed, &format!("{e:#}")),
        }
    }
}

impl RunContext<'_> {
    /// Measures one run of external server `name`; what it cannot run is skipped,
    /// saying why, and a server that fails is a failed row naming it.
    fn run_external(&self, p: plan::Planned, name: &str) -> FinishedRun {
        let why = external::unsupported_mode(p.mode).or(
            (p.acceptors > 1 || p.sharing != crate::acceptors::Sharing::Shared)
                .then_some("an external server is measured as it runs itself: --acceptors and --sharing apply to the built-in engines"),
        );
        if let Some(why) = why {
            return FinishedRun::without_figures(&p, Status::Skipped, why);
        }
        let Some(server) = self.settings.servers.iter().find(|s| s.name == name) else {
            return FinishedRun::without_figures(&p, Status::Failed, "no such server");
        };
        if let Some(b) = server.listen_backlog.filter(|&b| b != p.backlog) {
            return FinishedRun::without_figures(
                &p,
                Status::Skipped,
                &format!("attached server {name} listens with backlog {b} (read with sock_diag): it is measured in the --backlogs {b} cell only"),
            );
        }
        let spec = self.spec(p);
        let mu = self.model_mu(server, p.backlog);
        match external::measure(&spec, server, mu) {
            Ok((m, note)) => {
                let mut done = rows::finished(&p, m);
                rows::as_external(&mut done, p.mode);
                done.row.add_note(&note);
                // In a `--trace off,kernel` sweep the untraced drain rates set μ.
                let untraced = !p.trace || !p.trace_paired;
                if p.mode == crate::config::Mode::Drain
                    && done.row.status == Some(Status::Ok)
                    && untraced
                {
                    self.drain_rates.borrow_mut().push((
                        server.name,
                        p.backlog,
                        done.row.accepts_per_s,
                    ));
                }
                done
            }
            Err(e) if self.stop.is_raised() => {
                FinishedRun::without_figures(&p, Status::Incomplete, &format!("interrupted: {e:#}"))
            }
            Err(e) => FinishedRun::without_figures(&p, Status::Failed, &format!("{e:#}")),
        }
    }
}

impl RunContext<'_> {
    /// The stall model's μ for `server` at `backlog`: the median of its drain rates at
    /// that backlog so far in the sweep (drain runs come before stall runs in each
    /// round), else its `--stall-mu`, else none.
    fn model_mu(&self, server: &crate::config::external::ExternalConfig, backlog: u32) -> ModelMu {
        let rates: Vec<f64> = self
            .drain_rates
            .borrow()
            .iter()
            .filter(|(n, b, r)| *n == server.name && *b == backlog && *r > 0.0)
            .map(|(_, _, r)| *r)
            .collect();
        if let Some(m) = crate::stats::MedianCi::of(&rates) {
            return ModelMu::Drain {
                per_s: m.median,
                runs: m.n,
            };
        }
        match server.stall_mu {
            Some(r) => ModelMu::Given(r),
            None => ModelMu::Absent(
                "no drain run of this server at this backlog and no --stall-mu (add drain to --modes, or give --stall-mu NAME=RATE)",
            ),
        }
    }
}

/// Sets every row's ratios against the std row of the same round, and each traced
/// row's (`<engine>+kt`) against its untraced twin.
fn set_round_ratios(round: &mut [FinishedRun]) {
    let rows: Vec<crate::report::row::SummaryRow> = round.iter().map(|r| r.row.clone()).collect();
    for r in round.iter_mut() {
        let Some(engine) = r.row.engine.strip_suffix(plan::TRACED_SUFFIX) else {
            continue;
        };
        if let Some(twin) = rows.iter().find(|u| {
            u.engine == engine
                && (
                    u.backlog,
                    &u.mode,
                    u.acceptors,
                    &u.sharing,
                    u.inflight,
                    &u.accept_flags,
                    &u.peer_op,
                ) == (
                    r.row.backlog,
                    &r.row.mode,
                    r.row.acceptors,
                    &r.row.sharing,
                    r.row.inflight,
                    &r.row.accept_flags,
                    &r.row.peer_op,
                )
                && u.stall_ms == r.row.stall_ms
                && u.stall_load == r.row.stall_load
        }) {
            r.row.set_trace_ratios(twin);
        }
    }
    set_std_ratios(round);
}

/// Sets every row's ratios against the std row of the same round.
fn set_std_ratios(round: &mut [FinishedRun]) {
    let Some(std) = round
        .iter()
        .find(|r| r.row.engine == EngineKind::Std.name())
        .map(|r| r.row.clone())
    else {
        return;
    };
    for r in round.iter_mut() {
        r.row.set_ratios(&std);
    }
}

/// What meta.json and the terminal should know about this sweep's set-up.
fn setup_notes(cfg: &SweepConfig) -> Vec<String> {
    let mut notes = Vec::new();
    if let Ok(m) = kernel::sysctl::read_u64("net.core.somaxconn") {
        for &b in &cfg.backlogs {
            if u64::from(b) > m {
                notes.push(format!(
                    "backlog {b} is above net.core.somaxconn={m}: the kernel applies {m} (column backlog_effective)"
                ));
            }
        }
    }
    if cfg.modes.iter().any(|m| m.is_overflow()) {
        notes.push(if cfg.overflow.private_netns {
            format!(
                "burst/overload/stall runs ran in a fresh private network namespace each, made for the run and gone with it (exact TcpExt counters), tcp_abort_on_overflow={}, syncookies={}, somaxconn={}; every other run used the host's (columns netns, somaxconn, tcp_syncookies, tcp_abort_on_overflow)",
                u8::from(cfg.overflow.netns.abort_on_overflow),
                cfg.overflow.netns.syncookies.map_or("default".into(), |v| v.to_string()),
                cfg.overflow.netns.somaxconn.map_or("default".into(), |v| v.to_string()),
            )
        } else {
            format!(
                "burst/overload/stall runs ran on the host's loopback ({}): TcpExt counters may include other traffic",
                crate::kernel::netns::can_create().err().unwrap_or_default()
            )
        });
    }
    notes.extend(acceptor_notes(cfg));
    if cfg.repeat < 6 {
        notes.push(format!(
            "--repeat {}: fewer than 6 rounds cannot give 95% intervals for medians; cells.csv says \"n too small\"",
            cfg.repeat
        ));
    }
    notes
}

/// What the report must say about several acceptors: shared CPUs, how a shared
/// listener wakes its acceptors, and what a slow acceptor does.
fn acceptor_notes(cfg: &SweepConfig) -> Vec<String> {
    let mut notes = Vec::new();
    let most = cfg.acceptors.iter().copied().max().unwrap_or(1) as usize;
    if most > 1 && most > cfg.server_cpus.len() {
        notes.push(format!(
            "{most} acceptors on {} CPU{} ({}): acceptors share CPUs round-robin (column acceptor_cpus), so these runs show correctness, fairness and overflow behaviour, not scaling with cores",
            cfg.server_cpus.len(),
            if cfg.server_cpus.len() == 1 { "" } else { "s" },
            common::affinity::format_cpus(&cfg.server_cpus)
        ));
    }
    if most > 1 && cfg.sharings.contains(&crate::acceptors::Sharing::Shared) {
        notes.push("sharing=shared wakes acceptors as each engine waits: std blocks in accept(2), an exclusive wait (one sleeper woken per connection); io_uring engines arm their accept poll with EPOLLEXCLUSIVE (the kernel's accept opcode is poll_exclusive), so the ring at the head of the wait queue tends to take every connection; tokio (mio) registers the listener with epoll without EPOLLEXCLUSIVE, so every runtime wakes and all but one retry EAGAIN inside tokio (invisible here)".into());
    }
    if let Some(s) = cfg.slow_acceptor {
        notes.push(format!(
            "--slow-acceptor {s}: in burst/overload runs with more than {} acceptor{} that acceptor busy-waits {} per connection and the others run free (no --accept-delay); column slow_acceptor",
            s.index,
            if s.index == 1 { "" } else { "s" },
            humantime::format_duration(s.delay)
        ));
    }
    notes
}

fn finish_message(
    path: &std::path::Path,
    rows: &[crate::report::row::SummaryRow],
    failed: usize,
    incomplete: bool,
) {
    let unmatched: u64 = rows
        .iter()
        .filter(|r| !matches!(r.mode.as_str(), "burst" | "overload" | "stall"))
        .map(|r| r.unmatched)
        .sum();
    if unmatched > 0 {
        eprintln!("acceptbench: WARNING: {unmatched} connections did not match between client and server; see the notes in summary.csv");
    }
    if failed > 0 {
        eprintln!(
            "acceptbench: {failed} runs FAILED (status failed in summary.csv; left out of cells.csv and every ratio)"
        );
    }
    if incomplete {
        eprintln!(
            "acceptbench: interrupted; {} finished runs kept in {} (marked incomplete)",
            rows.len(),
            path.display()
        );
    } else {
        eprintln!("acceptbench: results in {}", path.display());
    }
}
