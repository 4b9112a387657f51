//! Validated configurations, built once from the command line ([`crate::cli`]).
//! Everything below this layer takes these types and never sees clap.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::acceptors::{Sharing, SlowAcceptor};
use crate::cli;
use crate::engine::{AcceptFlags, EngineKind, EngineOptions, PeerOp};
pub use crate::kinds::{CompareFormat, Mode, StallLoad};

mod cpus;
pub mod external;
mod scope;
use crate::listener::ListenerSpec;
use cpus::{check_cpu, choose_cpus, choose_server_cpus};

/// A command line that does not make sense, with what to write instead.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A list flag was empty.
    #[error("--{flag} is empty: give at least one value, e.g. --{flag} {example}")]
    EmptyList {
        /// The flag.
        flag: &'static str,
        /// A valid value.
        example: &'static str,
    },
    /// A flag asks for what this kernel lacks (the line is right, the kernel too old).
    #[error("--{flag} {item}: {why}")]
    KernelLacks {
        /// The flag.
        flag: &'static str,
        /// The value that needs a newer kernel.
        item: String,
        /// The version it needs, this kernel's, and what to give instead.
        why: String,
    },
    /// An item of a list flag did not parse.
    #[error("--{flag}: {item:?} is not valid: {why}")]
    BadItem {
        /// The flag.
        flag: &'static str,
        /// The item.
        item: String,
        /// Why, and what is valid.
        why: String,
    },
    /// A list flag names a value twice.
    #[error("--{flag}: {item} is given twice: give each value once")]
    Duplicate {
        /// The flag.
        flag: &'static str,
        /// The repeated value.
        item: String,
    },
    /// Namespace settings asked for where no private namespace can be made.
    #[error("--abort-on-overflow, --syncookies and --somaxconn are set in a private network namespace, which cannot be made here ({0}): run as root with CAP_SYS_ADMIN, or drop them")]
    NeedsRoot(String),
    /// A CPU this process may not run on (absent, or outside its affinity mask).
    #[error("--{flag} {cpu}: this process may run on CPUs {} only (its affinity, as set by taskset, a cgroup or sched_setaffinity): pick one of those", common::affinity::format_cpus(allowed))]
    NoSuchCpu {
        /// The flag.
        flag: &'static str,
        /// The CPU asked for.
        cpu: usize,
        /// The CPUs this process may run on (`sched_getaffinity`).
        allowed: Vec<usize>,
    },
    /// A flag that acts in none of the modes or engines the command line chose.
    #[error("--{flag} has no effect here: it {acts}, and {chosen}: {fix}")]
    FlagWithoutEffect {
        /// The flag.
        flag: &'static str,
        /// Where it acts ("applies to mode stall only").
        acts: String,
        /// What was chosen instead ("--modes is drain").
        chosen: String,
        /// The flag to use instead, or how to make it act.
        fix: String,
    },
    /// A stall setting outside what a run can measure.
    #[error("--{flag} {value}: {why}")]
    StallSetting {
        /// The flag.
        flag: &'static str,
        /// Its value as given.
        value: String,
        /// What is wrong and what to give instead.
        why: String,
    },
    /// `--client-hosts` that cannot be used, and why.
    #[error("--client-hosts {0}")]
    ClientHosts(String),
    /// An ssh flag without ssh client hosts.
    #[error("--{0} applies to --client-hosts ssh://…: give the client hosts, or drop --{0}")]
    SshFlagWithoutSshHosts(&'static str),
    /// --slow-acceptor names an acceptor no run has.
    #[error("--slow-acceptor {index}:…: acceptors are numbered from 0 and the largest run has {acceptors}: pick an index below {acceptors}")]
    SlowAcceptorOutOfRange {
        /// The index given.
        index: u32,
        /// The most acceptors any run has.
        acceptors: u32,
    },
}

/// What acceptbench is asked to do.
// Made once per process and matched once: boxing the large sweep config would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Command {
    /// `probe`.
    Probe {
        /// JSON output.
        json: bool,
    },
    /// `listen`.
    Listen(ListenConfig),
    /// `sweep` (also the default with no command).
    Sweep(SweepConfig),
    /// `compare`.
    Compare(CompareConfig),
    /// `plot`.
    Plot(PlotConfig),
    /// `plot timeline FILE [--out X]`.
    PlotTimeline {
        /// The timeline CSV.
        file: PathBuf,
        /// The chart (default: FILE with .svg).
        out: Option<PathBuf>,
    },
    /// `merge`.
    Merge(MergeConfig),
    /// `join`.
    Join(JoinConfig),
    /// `loadgen …`: the arguments for loadgen, program name first.
    Loadgen(Vec<std::ffi::OsString>),
    /// `host-info`.
    HostInfo {
        /// Answer stdin lines with the wall clock.
        clock: bool,
    },
}

/// `listen`, validated.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    /// The engine.
    pub engine: EngineKind,
    /// Its options.
    pub options: EngineOptions,
    /// The listening socket to make.
    pub listener: ListenerSpec,
    /// Stop after this many accepts.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Print each peer.
    pub print_peers: bool,
    /// JSON summary.
    pub json: bool,
    /// Pin the acceptors round-robin over these CPUs (empty: not pinned).
    pub cpus: Vec<usize>,
    /// Acceptor threads, each its own engine instance.
    pub acceptors: u32,
    /// How they share the port.
    pub sharing: Sharing,
    /// The one acceptor made slow on purpose, if any.
    pub slow_acceptor: Option<SlowAcceptor>,
    /// Per-connection records file (`--records`) and the run id for its header.
    pub records: Option<(PathBuf, String)>,
    /// `--trace kernel`: record the kernel's account around the run.
    pub trace_kernel: bool,
    /// `--trace-required`: fail when it cannot be recorded.
    pub trace_required: bool,
    /// `--trace-out FILE`: the per-connection timeline CSV.
    pub trace_out: Option<PathBuf>,
}

/// `sweep`, validated.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Engines in run order (std first when present: ratios need it).
    pub engines: Vec<EngineKind>,
    /// External servers measured as engines (`--server`), after the built-in ones.
    pub servers: Vec<external::ExternalConfig>,
    /// Backlogs passed to listen(2).
    pub backlogs: Vec<u32>,
    /// Modes.
    pub modes: Vec<Mode>,
    /// Measured time per run.
    pub duration: Duration,
    /// Warm-up before measuring (closed/rate).
    pub warmup: Duration,
    /// Repetitions.
    pub repeat: u32,
    /// Rate for mode `rate`, conn/s.
    pub rate: u64,
    /// Parent of the run directory.
    pub out: PathBuf,
    /// Engine options (`inflight` is the first of `inflights`).
    pub options: EngineOptions,
    /// Single-shot accepts in flight for engine `uring`, one variant per value (a plan
    /// dimension within each round).
    pub inflights: Vec<u32>,
    /// How engine `uring` arms its accepts, one variant per value inside each depth.
    pub accept_flags: Vec<AcceptFlags>,
    /// How `uring-linked` reads the peer (one variant per value), resolved on this
    /// kernel: getsockname or getsockopt, never auto, each once.
    pub peer_ops: Vec<PeerOp>,
    /// loadgen threads.
    pub client_threads: u32,
    /// Connects in flight per loadgen thread (closed mode).
    pub client_concurrency: u32,
    /// Acceptor CPU (the first of `server_cpus`).
    pub server_cpu: usize,
    /// Acceptor CPUs: acceptor i of a run is pinned to `server_cpus[i % len]`.
    pub server_cpus: Vec<usize>,
    /// Acceptor threads per run (a plan dimension).
    pub acceptors: Vec<u32>,
    /// Port sharing of the acceptors (a plan dimension).
    pub sharings: Vec<Sharing>,
    /// Burst/overload: this acceptor works `delay` per connection, the others run free.
    pub slow_acceptor: Option<SlowAcceptor>,
    /// loadgen CPUs.
    pub client_cpus: Vec<usize>,
    /// Draw plots at the end.
    pub plots: bool,
    /// The command line as typed, for the run's README and meta.json.
    pub command: String,
    /// Overflow-study settings (modes burst and overload).
    pub overflow: OverflowConfig,
    /// Only the progress bar on stderr, no line per run.
    pub quiet: bool,
    /// One JSON object per finished row on stdout.
    pub json: bool,
    /// `--client-hosts`: client namespaces per run, or ssh hosts (closed/rate only).
    pub client_hosts: Option<ClientHostsConfig>,
    /// Mode stall's settings.
    pub stall: StallConfig,
    /// Count the acceptors' system calls and io_uring enters (perf tracepoints).
    pub count_syscalls: bool,
    /// `--trace`: whether each run is traced (`--trace kernel`: the kernel's account of
    /// every run's connections), one entry per setting each round runs (`--trace
    /// off,kernel`: both, interleaved); `[false]` without the flag.
    pub traces: Vec<bool>,
}

/// `--client-hosts`, resolved.
#[derive(Debug, Clone)]
pub enum ClientHostsConfig {
    /// K client network namespaces per run (root).
    Namespaces(u32),
    /// Machines reached over ssh.
    Ssh(SshHostsConfig),
}

/// Client hosts over ssh.
#[derive(Debug, Clone)]
pub struct SshHostsConfig {
    /// The hosts, in order.
    pub hosts: Vec<crate::sshhost::SshHost>,
    /// The address of this machine they connect to.
    pub server_addr: std::net::IpAddr,
    /// This binary to copy over first (`--client-binary`).
    pub client_binary: Option<PathBuf>,
    /// ssh's config file and options.
    pub ssh: crate::sshhost::SshSettings,
}

/// Settings of mode stall.
#[derive(Debug, Clone, PartialEq)]
pub struct StallConfig {
    /// How long the acceptor stops (a plan dimension).
    pub stalls: Vec<Duration>,
    /// The clients (a plan dimension).
    pub loads: Vec<StallLoad>,
    /// Clients arrive this long before the stall.
    pub at: Duration,
    /// And this long after the resume.
    pub after: Duration,
    /// loadgen's connect timeout.
    pub connect_timeout: Duration,
    /// Work per connection (the acceptor's capacity μ = 1/delay); None: full speed.
    pub accept_delay: Option<Duration>,
}

impl StallConfig {
    /// The longest stall a run may have: past it every connection of the stall times out.
    pub const MAX_STALL: Duration = Duration::from_secs(60);
    /// The most connections one run may make (loadgen keeps a record of each).
    pub const MAX_CONNECTIONS: f64 = 2_000_000.0;

    fn from_args(a: &cli::SweepArgs) -> Result<StallConfig, ConfigError> {
        let stalls = a
            .stall
            .clone()
            .unwrap_or_else(|| [100, 500, 2000].map(Duration::from_millis).to_vec());
        let shown: Vec<String> = stalls
            .iter()
            .map(|&d| humantime::format_duration(d).to_string())
            .collect();
        unique("stall", shown)?;
        let c = StallConfig {
            loads: unique(
                "stall-load",
                a.stall_load.clone().unwrap_or(vec![StallLoad::Rate(1000)]),
            )?,
            at: a.stall_at.unwrap_or(Duration::from_secs(1)),
            after: a.stall_after.unwrap_or(Duration::from_secs(5)),
            connect_timeout: a.connect_timeout.unwrap_or(Duration::from_secs(8)),
            accept_delay: a.accept_delay.filter(|d| !d.is_zero()),
            stalls,
        };
        let bad = |flag, value: String, why: String| ConfigError::StallSetting { flag, value, why };
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        if let Some(&t) = c.stalls.iter().find(|&&t| t > Self::MAX_STALL) {
            return Err(bad("stall", fmt(t), format!("a stall longer than {} outlasts every client's SYN retransmits (the kernel gives up after 11 s since Linux 6.5, 127 s before, loadgen after --connect-timeout): give at most {}", fmt(Self::MAX_STALL), fmt(Self::MAX_STALL))));
        }
        if c.after < Duration::from_secs(1) {
            return Err(bad("stall-after", fmt(c.after), "recovery is normal held for 1 s, which must fit after the resume: give at least 1s".into()));
        }
        let longest = c.stalls.iter().max().copied().unwrap_or_default();
        let span = (c.at + longest + c.after).as_secs_f64();
        for l in &c.loads {
            if let StallLoad::Rate(n) = l {
                if *n as f64 * span > Self::MAX_CONNECTIONS {
                    return Err(bad("stall-load", l.to_string(), format!("{n} conn/s over {span:.1} s (--stall-at + the longest --stall + --stall-after) is {:.0} connections, above the {} one run may make: lower the rate or shorten the run", *n as f64 * span, Self::MAX_CONNECTIONS)));
                }
            }
        }
        Ok(c)
    }
}

/// Settings of the overflow modes.
#[derive(Debug, Clone)]
pub struct OverflowConfig {
    /// Connects per burst; None = 4·backlog+16 for each backlog.
    pub burst_size: Option<u32>,
    /// How long the acceptor stays paused after loadgen starts its burst.
    pub pause: Duration,
    /// Client connect timeout in overflow modes (long enough to see SYN retransmits).
    pub connect_timeout: Duration,
    /// Work per connection in overload mode.
    pub accept_delay: Duration,
    /// Settings for the private network namespace.
    pub netns: crate::kernel::netns::NetnsSettings,
    /// Run overflow modes in a private network namespace (root); false = host loopback.
    pub private_netns: bool,
}

impl Command {
    /// Validates parsed arguments. `argv` is the full command line, recorded in results;
    /// `given` the flags written on it ([`cli::parse`]), each of which must act somewhere
    /// in what the command line chose.
    pub fn from_cli(
        cli: cli::Cli,
        argv: &[String],
        given: &[String],
    ) -> Result<Command, ConfigError> {
        // As a shell would take it back: a word with spaces or quotes is quoted, so the
        // command a run records (meta.json, its README) can be pasted and run again.
        let command = argv
            .iter()
            .map(|w| {
                let plain = !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@%+".contains(c));
                if plain {
                    w.clone()
                } else {
                    crate::sshhost::shell_quote(w)
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        Ok(match cli.command {
            None => Command::Sweep(SweepConfig::from_args(default_sweep_args(), command)?),
            Some(cli::Command::Probe(a)) => Command::Probe { json: a.json },
            Some(cli::Command::Listen(a)) => {
                scope::check_listen(given, &a)?;
                Command::Listen(ListenConfig::from_args(a)?)
            }
            Some(cli::Command::Sweep(a)) => {
                scope::check_sweep(given, &a)?;
                Command::Sweep(SweepConfig::from_args(a, command)?)
            }
            Some(cli::Command::Compare(a)) => Command::Compare(CompareConfig::from_args(a)?),
            Some(cli::Command::Plot(cli::PlotArgs {
                chart: Some(cli::PlotChart::Timeline { file, out }),
                ..
            })) => Command::PlotTimeline { file, out },
            Some(cli::Command::Plot(a)) => Command::Plot(PlotConfig {
                runs: a.runs,
                out: a.out,
                png: !a.svg_only,
            }),
            Some(cli::Command::Merge(a)) => Command::Merge(MergeConfig {
                inputs: a.hlogs,
                out: a.out,
            }),
            Some(cli::Command::Join(a)) => Command::Join(JoinConfig {
                server: a.server,
                clients: a.client,
                out: a.out,
                engine: a.engine,
                backlog: a.backlog,
                mode: a.mode,
                clock_tolerance: a.clock_tolerance,
                command,
            }),
            Some(cli::Command::HostInfo(a)) => Command::HostInfo { clock: a.clock },
            Some(cli::Command::Loadgen { args }) => {
                let mut v = vec![std::ffi::OsString::from("acceptbench loadgen")];
                v.extend(args);
                Command::Loadgen(v)
            }
        })
    }
}

fn default_sweep_args() -> cli::SweepArgs {
    use clap::Parser;
    // The defaults live in one place: the clap attributes of SweepArgs.
    match cli::Cli::try_parse_from(["acceptbench", "sweep"]) {
        Ok(cli::Cli {
            command: Some(cli::Command::Sweep(a)),
        }) => a,
        other => unreachable!("`acceptbench sweep` must parse to a sweep: {other:?}"),
    }
}

/// What external servers cannot do: overload (its `--accept-delay` slows our acceptors,
/// not someone else's server), other client hosts.
fn external_modes(
    servers: &[external::ExternalConfig],
    modes: &[Mode],
    client_hosts: bool,
) -> Result<(), ConfigError> {
    let Some(first) = servers.first() else {
        return Ok(());
    };
    if modes.contains(&Mode::Overload) {
        return Err(ConfigError::BadItem {
            flag: "modes",
            item: "overload".into(),
            why: format!(
                "overload slows the acceptor with --accept-delay, which cannot slow someone else's server ({}); drop overload from --modes, or measure overload without --server",
                first.name
            ),
        });
    }
    let pauses: Vec<&str> = modes
        .iter()
        .filter(|m| matches!(m, Mode::Burst | Mode::Drain | Mode::Stall))
        .map(|m| m.name())
        .collect();
    if let Some(s) = servers
        .iter()
        .find(|s| s.attached().is_some_and(|a| a.pid.is_none()))
        .filter(|_| !pauses.is_empty())
    {
        return Err(ConfigError::BadItem {
            flag: "attach",
            item: format!("{}={}", s.name, s.command),
            why: format!(
                "mode {} stops the server with SIGSTOP, which needs its PID: give --attach {}={},pid=PID, or drop {} from --modes",
                pauses.join(", "),
                s.name,
                s.command,
                pauses.join(", ")
            ),
        });
    }
    if client_hosts {
        return Err(ConfigError::BadItem {
            flag: "server",
            item: first.name.into(),
            why: "an external server runs in each run's own namespace on this host; --client-hosts is not supported with it: drop one of them".into(),
        });
    }
    Ok(())
}

/// A list flag's values, refused when one is given twice (`--backlogs 16,16` would
/// run every cell twice under one name and mix the repetitions up).
/// `--peer-op` resolved on this kernel (its io_uring probe): auto becomes getsockname
/// or getsockopt, the same op named twice runs once, and getsockname where the kernel
/// lacks it is refused, naming the version it needs.
fn resolve_peer_ops(ops: Vec<PeerOp>) -> Result<Vec<PeerOp>, ConfigError> {
    let probe = crate::kernel::probe::probe_uring_cached();
    let mut out = Vec::new();
    for op in ops {
        if op == PeerOp::Getsockname {
            if let Some(why) = crate::engine::getsockname_unsupported(probe) {
                return Err(ConfigError::KernelLacks {
                    flag: "peer-op",
                    item: op.name().into(),
                    why,
                });
            }
        }
        let op = op.resolve(probe);
        if !out.contains(&op) {
            out.push(op);
        }
    }
    Ok(out)
}

fn unique<T: PartialEq + fmt::Display>(
    flag: &'static str,
    list: Vec<T>,
) -> Result<Vec<T>, ConfigError> {
    for (i, v) in list.iter().enumerate() {
        if list[..i].contains(v) {
            return Err(ConfigError::Duplicate {
                flag,
                item: v.to_string(),
            });
        }
    }
    Ok(list)
}

/// Splits a comma-separated list and parses every item.
fn parse_list<T>(
    flag: &'static str,
    example: &'static str,
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, ConfigError> {
    let items: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(ConfigError::EmptyList { flag, example });
    }
    items
        .into_iter()
        .map(|item| {
            parse(item).map_err(|why| ConfigError::BadItem {
                flag,
                item: item.to_string(),
                why,
            })
        })
        .collect()
}

/// Refuses a slow acceptor index no run has.
fn check_slow(
    slow: Option<SlowAcceptor>,
    acceptors: u32,
) -> Result<Option<SlowAcceptor>, ConfigError> {
    match slow {
        Some(s) if s.index >= acceptors => Err(ConfigError::SlowAcceptorOutOfRange {
            index: s.index,
            acceptors,
        }),
        other => Ok(other),
    }
}

impl ListenConfig {
    fn from_args(a: cli::ListenArgs) -> Result<Self, ConfigError> {
        Ok(ListenConfig {
            engine: a.engine,
            options: EngineOptions {
                inflight: a.inflight as usize,
                accept_flags: a.accept_flags,
                // Resolved for uring-linked only (others refuse any but auto, by scope).
                peer_op: if a.engine == EngineKind::UringLinked {
                    resolve_peer_ops(vec![a.peer_op])?[0]
                } else {
                    a.peer_op
                },
                accept_delay: a.accept_delay.filter(|d| !d.is_zero()),
                ring_setup: a.ring_setup,
                direct: a.direct,
                ..EngineOptions::default()
            },
            listener: ListenerSpec {
                addr: a.addr,
                backlog: a.backlog,
                reuse_port: a.reuse_port,
                dual_stack: a.dual_stack,
            },
            count: a.count,
            duration: a.duration,
            print_peers: a.print_peers,
            json: a.json,
            cpus: match (a.cpu, a.cpus) {
                (Some(c), _) => vec![check_cpu("cpu", c)?],
                (None, Some(list)) => list
                    .into_iter()
                    .map(|c| check_cpu("cpus", c))
                    .collect::<Result<_, _>>()?,
                (None, None) => Vec::new(),
            },
            acceptors: a.acceptors,
            sharing: a.sharing,
            slow_acceptor: check_slow(a.slow_acceptor, a.acceptors)?,
            records: a.records.map(|p| (p, a.run_id.unwrap_or_default())),
            trace_kernel: a.trace.is_some(),
            trace_required: a.trace_required,
            trace_out: a.trace_out,
        })
    }
}

impl SweepConfig {
    /// A note for the user when the acceptor and loadgen must share one CPU (only one
    /// is allowed and no CPUs were given): they compete, and results show it.
    pub fn cpu_note(&self) -> Option<String> {
        (self.client_cpus == [self.server_cpu]).then(|| {
            format!(
                "the acceptor and loadgen both run on CPU {}: they compete for it and the figures show that; allow more CPUs (taskset -c) or give --server-cpu and --client-cpus to separate them",
                self.server_cpu
            )
        })
    }

    fn from_args(a: cli::SweepArgs, command: String) -> Result<Self, ConfigError> {
        let stall = StallConfig::from_args(&a)?;
        let client_hosts = client_hosts(&a)?;
        let servers = external::servers(&a.server, &a.attach, &a.server_request, &a.stall_mu)?;
        let overflow = overflow_config(&a, &a.modes, !servers.is_empty())?;
        let names = a.engines.map(|l| unique("engines", l)).transpose()?;
        let (mut engines, servers) = external::split_engines(names, &servers)?;
        // Run order: std first, so every other engine's ratio to it is known.
        engines.sort();
        let backlogs = unique("backlogs", a.backlogs)?;
        let modes = unique("modes", a.modes.clone())?;
        let (server_cpu, server_cpus, client_cpus) =
            sweep_cpus(a.server_cpu, a.server_cpus, a.client_cpus)?;
        let acceptors = unique("acceptors", a.acceptors)?;
        let inflights = unique("inflight", a.inflight)?;
        // Any but none without uring among the engines is refused by config::scope.
        let accept_flags = unique("accept-flags", a.accept_flags)?;
        let mut peer_ops = unique("peer-op", a.peer_op)?;
        if engines.contains(&EngineKind::UringLinked) {
            peer_ops = resolve_peer_ops(peer_ops)?;
        }
        let sharings = unique("sharing", a.sharing)?;
        let slow_acceptor = check_slow(
            a.slow_acceptor,
            acceptors.iter().copied().max().unwrap_or(1),
        )?;
        if let (Some(_), Some(m)) = (
            &client_hosts,
            modes
                .iter()
                .find(|m| !matches!(m, Mode::Closed | Mode::Rate)),
        ) {
            return Err(ConfigError::BadItem {
                flag: "modes",
                item: m.name().to_string(),
                why: "--client-hosts runs modes closed and rate only".into(),
            });
        }
        external_modes(&servers, &modes, client_hosts.is_some())?;
        Ok(SweepConfig {
            overflow,
            engines,
            servers,
            backlogs,
            modes,
            duration: a.duration,
            warmup: a.warmup,
            repeat: a.repeat,
            rate: a.rate,
            out: a.out,
            options: EngineOptions {
                inflight: inflights[0] as usize,
                ring_setup: a.ring_setup,
                direct: a.direct,
                ..EngineOptions::default()
            },
            inflights,
            accept_flags,
            peer_ops,
            client_threads: a.threads,
            client_concurrency: a.concurrency,
            server_cpu,
            server_cpus,
            acceptors,
            sharings,
            slow_acceptor,
            client_cpus,
            plots: !a.no_plots,
            command,
            quiet: a.quiet,
            json: a.json,
            count_syscalls: a.count_syscalls,
            client_hosts,
            stall,
            traces: traces(a.trace.as_deref()),
        })
    }
}

/// `--trace off,kernel` → [false, true], each setting once in the order given.
fn traces(given: Option<&[String]>) -> Vec<bool> {
    let mut out = Vec::new();
    for kernel in given.unwrap_or_default().iter().map(|t| t == "kernel") {
        if !out.contains(&kernel) {
            out.push(kernel);
        }
    }
    if out.is_empty() {
        out.push(false);
    }
    out
}

/// The acceptor's CPU, the acceptors' CPUs and loadgen's, from the CPU flags and the
/// CPUs this process may run on.
fn sweep_cpus(
    server_cpu: Option<usize>,
    server_cpus: Option<Vec<usize>>,
    client_cpus: Option<Vec<usize>>,
) -> Result<(usize, Vec<usize>, Vec<usize>), ConfigError> {
    let client_cpus = client_cpus
        .map(|list| unique("client-cpus", list))
        .transpose()?;
    let allowed = common::affinity::allowed_cpus();
    let server_cli = server_cpu.or(server_cpus.as_ref().and_then(|l| l.first().copied()));
    let (chosen, client_cpus) = choose_cpus(server_cli, client_cpus, &allowed)?;
    let server_cpus = choose_server_cpus(
        server_cpus,
        chosen,
        server_cpu.is_some(),
        &client_cpus,
        &allowed,
    )?;
    Ok((chosen, server_cpus, client_cpus))
}

/// The overflow modes' settings: the private network namespace (refused with its
/// settings where none can be made; also made for external servers) and the burst
/// and overload knobs.
fn overflow_config(
    a: &cli::SweepArgs,
    modes: &[Mode],
    servers: bool,
) -> Result<OverflowConfig, ConfigError> {
    let netns = crate::kernel::netns::NetnsSettings {
        abort_on_overflow: a.abort_on_overflow,
        syncookies: a.syncookies,
        somaxconn: a.somaxconn,
    };
    // External servers run in a private namespace in every mode, as root.
    let netns_probe = if modes.iter().any(|m| m.is_overflow()) || servers {
        crate::kernel::netns::can_create()
    } else {
        Err("not needed: no overflow mode".into())
    };
    if let (Err(why), true) = (&netns_probe, netns != Default::default()) {
        return Err(ConfigError::NeedsRoot(why.clone()));
    }
    let private_netns = netns_probe.is_ok();
    Ok(OverflowConfig {
        burst_size: a.burst_size,
        pause: a.pause,
        connect_timeout: a.connect_timeout.unwrap_or(Duration::from_secs(4)),
        accept_delay: a.accept_delay.unwrap_or(Duration::from_micros(200)),
        netns,
        private_netns,
    })
}

/// `--client-hosts` and the ssh flags that go with it.
fn client_hosts(a: &cli::SweepArgs) -> Result<Option<ClientHostsConfig>, ConfigError> {
    let bad = |e: String| ConfigError::ClientHosts(e);
    let parsed = match a.client_hosts.as_deref() {
        None => None,
        Some(text) => Some(
            match text.strip_prefix('@') {
                Some(file) => {
                    let body = std::fs::read_to_string(file)
                        .map_err(|e| bad(format!("@{file}: cannot read the hosts file: {e}")))?;
                    crate::sshhost::parse_client_hosts(&body, Some(file))
                }
                None => crate::sshhost::parse_client_hosts(text, None),
            }
            .map_err(bad)?,
        ),
    };
    let ssh_flags = [
        ("server-addr", a.server_addr.is_some()),
        ("client-binary", a.client_binary.is_some()),
        ("ssh-config", a.ssh_config.is_some()),
        ("ssh-option", !a.ssh_option.is_empty()),
    ];
    let ssh = matches!(parsed, Some(crate::sshhost::ClientHosts::Ssh(_)));
    if let (false, Some((flag, _))) = (ssh, ssh_flags.iter().find(|(_, g)| *g)) {
        return Err(ConfigError::SshFlagWithoutSshHosts(flag));
    }
    Ok(match parsed {
        None => None,
        Some(crate::sshhost::ClientHosts::Namespaces(k)) => Some(ClientHostsConfig::Namespaces(k)),
        Some(crate::sshhost::ClientHosts::Ssh(hosts)) => {
            let server_addr = a.server_addr.ok_or_else(|| {
                bad("ssh://…: give --server-addr ADDR, the address of this machine the client hosts connect to".into())
            })?;
            if server_addr.is_loopback() || server_addr.is_unspecified() {
                return Err(bad(format!(
                    "ssh://…: --server-addr {server_addr} is not reachable from another machine: give this machine's address on the network the clients share"
                )));
            }
            if let Some(b) = &a.client_binary {
                if !b.is_file() {
                    return Err(bad(format!(
                        "ssh://…: --client-binary {}: no such file (give the acceptbench binary to copy, e.g. target/release/acceptbench)",
                        b.display()
                    )));
                }
            }
            if let Some(f) = &a.ssh_config {
                if !f.is_file() {
                    return Err(bad(format!(
                        "ssh://…: --ssh-config {}: no such file",
                        f.display()
                    )));
                }
            }
            Some(ClientHostsConfig::Ssh(SshHostsConfig {
                hosts,
                server_addr,
                client_binary: a.client_binary.clone(),
                ssh: crate::sshhost::SshSettings {
                    config: a.ssh_config.clone(),
                    options: a.ssh_option.clone(),
                },
            }))
        }
    })
}

/// The address a sweep listens on: loopback, a free port chosen by the kernel.
pub fn sweep_listen_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// `compare`, validated.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// Run directories; the first is the reference.
    pub runs: Vec<PathBuf>,
    /// summary.csv columns to compare.
    pub metrics: Vec<String>,
    /// Output format.
    pub format: CompareFormat,
}

impl CompareConfig {
    fn from_args(a: cli::CompareArgs) -> Result<Self, ConfigError> {
        let metrics = parse_list("metric", "accepts_per_s", &a.metric, |s| Ok(s.to_string()))?;
        let format = a.format;
        Ok(CompareConfig {
            runs: a.runs,
            metrics,
            format,
        })
    }
}

/// `plot`, validated.
#[derive(Debug, Clone)]
pub struct PlotConfig {
    /// Run directories.
    pub runs: Vec<PathBuf>,
    /// Output directory (default: <first run>/plots).
    pub out: Option<PathBuf>,
    /// Draw PNG files beside the SVG ones.
    pub png: bool,
}

/// `merge`, validated.
#[derive(Debug, Clone)]
pub struct MergeConfig {
    /// Interval logs.
    pub inputs: Vec<PathBuf>,
    /// Output .hgrm path.
    pub out: PathBuf,
}

/// `join`, validated.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The acceptor's records file.
    pub server: PathBuf,
    /// loadgen records files.
    pub clients: Vec<PathBuf>,
    /// Where the run directory is made.
    pub out: PathBuf,
    /// Engine label for the summary row.
    pub engine: String,
    /// Backlog label for the summary row.
    pub backlog: u32,
    /// Mode label for the summary row.
    pub mode: String,
    /// Largest wall-clock gap between a client's and the server's windows.
    pub clock_tolerance: Duration,
    /// The command line as typed.
    pub command: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A validated sweep config from command-line words (`["sweep", …]`).
    pub(crate) fn sweep_config(args: &[&str]) -> SweepConfig {
        let mut argv = vec!["acceptbench"];
        argv.extend_from_slice(args);
        let (cli, given) = cli::parse(&argv).expect("clap accepts");
        match Command::from_cli(cli, &[], &given).expect("valid") {
            Command::Sweep(c) => c,
            other => panic!("not a sweep: {other:?}"),
        }
    }
}
