//! Validated configurations, built once from the command line ([`crate::cli`]).
//! Everything below this layer takes these types and never sees clap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli;
use crate::engine::{EngineKind, EngineOptions};
use crate::listener::ListenerSpec;

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
    /// Namespace settings asked for without root.
    #[error("--abort-on-overflow, --syncookies and --somaxconn are set in a private network namespace, which needs root: run as root or drop them")]
    NeedsRoot,
    /// A CPU that this machine does not have.
    #[error("--{flag} {cpu}: this machine has CPUs 0..{ncpu}")]
    NoSuchCpu {
        /// The flag.
        flag: &'static str,
        /// The CPU asked for.
        cpu: usize,
        /// CPUs available.
        ncpu: usize,
    },
}

/// What acceptbench is asked to do.
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
    /// `merge`.
    Merge(MergeConfig),
    /// `loadgen …`: the arguments for loadgen, program name first.
    Loadgen(Vec<std::ffi::OsString>),
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
    /// Pin the acceptor here.
    pub cpu: Option<usize>,
}

/// A sweep mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// loadgen closed loop at maximum rate.
    Closed,
    /// loadgen open loop at a fixed rate.
    Rate,
    /// Acceptor paused while loadgen fills the queue, then it drains back to back.
    Drain,
    /// A burst of connects against a paused acceptor, then the acceptor drains (overflow study).
    Burst,
    /// Open-loop rate above a deliberately slowed acceptor's capacity (overflow study).
    Overload,
}

impl Mode {
    /// The name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Closed => "closed",
            Mode::Rate => "rate",
            Mode::Drain => "drain",
            Mode::Burst => "burst",
            Mode::Overload => "overload",
        }
    }

    /// Overflow modes sample the accept queue and the TcpExt counters, in a private
    /// network namespace when running as root.
    pub fn is_overflow(self) -> bool {
        matches!(self, Mode::Burst | Mode::Overload)
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "closed" => Ok(Mode::Closed),
            "rate" => Ok(Mode::Rate),
            "drain" => Ok(Mode::Drain),
            "burst" => Ok(Mode::Burst),
            "overload" => Ok(Mode::Overload),
            _ => Err("use closed, rate, drain, burst or overload".into()),
        }
    }
}

/// `sweep`, validated.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Engines in run order (std first when present: ratios need it).
    pub engines: Vec<EngineKind>,
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
    /// Engine options.
    pub options: EngineOptions,
    /// loadgen threads.
    pub client_threads: u32,
    /// Connects in flight per loadgen thread (closed mode).
    pub client_concurrency: u32,
    /// Acceptor CPU.
    pub server_cpu: usize,
    /// loadgen CPUs.
    pub client_cpus: Vec<usize>,
    /// Draw plots at the end.
    pub plots: bool,
    /// The command line as typed, for the run's README and meta.json.
    pub command: String,
    /// Overflow-study settings (modes burst and overload).
    pub overflow: OverflowConfig,
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

impl OverflowConfig {
    /// Connects in a burst against `backlog`.
    pub fn burst_for(&self, backlog: u32) -> u32 {
        self.burst_size
            .unwrap_or_else(|| backlog.saturating_mul(4).saturating_add(16))
    }
}

impl Command {
    /// Validates parsed arguments. `argv` is the full command line, recorded in results.
    pub fn from_cli(cli: cli::Cli, argv: &[String]) -> Result<Command, ConfigError> {
        let command = argv.join(" ");
        Ok(match cli.command {
            None => Command::Sweep(SweepConfig::from_args(default_sweep_args(), command)?),
            Some(cli::Command::Probe(a)) => Command::Probe { json: a.json },
            Some(cli::Command::Listen(a)) => Command::Listen(ListenConfig::from_args(a)?),
            Some(cli::Command::Sweep(a)) => Command::Sweep(SweepConfig::from_args(a, command)?),
            Some(cli::Command::Compare(a)) => Command::Compare(CompareConfig::from_args(a)?),
            Some(cli::Command::Plot(a)) => Command::Plot(PlotConfig {
                runs: a.runs,
                out: a.out,
                png: !a.svg_only,
            }),
            Some(cli::Command::Merge(a)) => Command::Merge(MergeConfig {
                inputs: a.hlogs,
                out: a.out,
            }),
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

fn check_cpu(flag: &'static str, cpu: usize) -> Result<usize, ConfigError> {
    let ncpu = loadgen::affinity::available_cpus();
    if cpu >= ncpu {
        return Err(ConfigError::NoSuchCpu { flag, cpu, ncpu });
    }
    Ok(cpu)
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

impl ListenConfig {
    fn from_args(a: cli::ListenArgs) -> Result<Self, ConfigError> {
        Ok(ListenConfig {
            engine: a.engine,
            options: EngineOptions {
                inflight: a.inflight as usize,
                accept_delay: a.accept_delay.filter(|d| !d.is_zero()),
                ring_setup: a.ring_setup,
                direct: a.direct,
                ..EngineOptions::default()
            },
            listener: ListenerSpec {
                addr: a.addr,
                backlog: a.backlog,
                reuse_port: a.reuse_port,
            },
            count: a.count,
            duration: a.duration,
            print_peers: a.print_peers,
            json: a.json,
            cpu: a.cpu.map(|c| check_cpu("cpu", c)).transpose()?,
        })
    }
}

impl SweepConfig {
    fn from_args(a: cli::SweepArgs, command: String) -> Result<Self, ConfigError> {
        let mut engines = match &a.engines {
            None => EngineKind::ALL.to_vec(),
            Some(text) => parse_list("engines", "std,uring", text, |s| {
                s.parse::<EngineKind>().map_err(|e| e.to_string())
            })?,
        };
        engines.sort();
        engines.dedup();
        let backlogs = parse_list("backlogs", "16,128,1024", &a.backlogs, |s| {
            match s.parse::<u32>() {
                Ok(0) => Err("a backlog must be at least 1".into()),
                Ok(b) => Ok(b),
                Err(_) => Err("a backlog is a whole number, e.g. 128".into()),
            }
        })?;
        let mut modes = parse_list("modes", "closed,drain", &a.modes, Mode::from_str)?;
        modes.dedup();
        let server_cpu = check_cpu("server-cpu", a.server_cpu)?;
        let ncpu = loadgen::affinity::available_cpus();
        let client_cpus = match &a.client_cpus {
            Some(text) => parse_list("client-cpus", "1", text, |s| {
                s.parse::<usize>()
                    .map_err(|_| "a CPU is a whole number".to_string())
            })?
            .into_iter()
            .map(|c| check_cpu("client-cpus", c))
            .collect::<Result<Vec<_>, _>>()?,
            None => {
                let others: Vec<usize> = (0..ncpu).filter(|&c| c != server_cpu).collect();
                if others.is_empty() {
                    vec![server_cpu]
                } else {
                    others
                }
            }
        };
        let netns = crate::kernel::netns::NetnsSettings {
            abort_on_overflow: a.abort_on_overflow,
            syncookies: a.syncookies,
            somaxconn: a.somaxconn,
        };
        let private_netns = crate::kernel::netns::can_create();
        if !private_netns && netns != Default::default() {
            return Err(ConfigError::NeedsRoot);
        }
        let overflow = OverflowConfig {
            burst_size: a.burst_size,
            pause: a.pause,
            connect_timeout: a.connect_timeout,
            accept_delay: a.accept_delay,
            netns,
            private_netns,
        };
        Ok(SweepConfig {
            overflow,
            engines,
            backlogs,
            modes,
            duration: a.duration,
            warmup: a.warmup,
            repeat: a.repeat,
            rate: a.rate,
            out: a.out,
            options: EngineOptions {
                inflight: a.inflight as usize,
                ..EngineOptions::default()
            },
            client_threads: a.threads,
            client_concurrency: a.concurrency,
            server_cpu,
            client_cpus,
            plots: !a.no_plots,
            command,
        })
    }
}

/// The address a sweep listens on: loopback, a free port chosen by the kernel.
pub fn sweep_listen_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// How `compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareFormat {
    /// Aligned text for a terminal.
    Text,
    /// A Markdown table (for a run's README).
    Markdown,
    /// CSV for scripts.
    Csv,
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
        let format = match a.format.as_str() {
            "text" => CompareFormat::Text,
            "markdown" | "md" => CompareFormat::Markdown,
            "csv" => CompareFormat::Csv,
            other => {
                return Err(ConfigError::BadItem {
                    flag: "format",
                    item: other.to_string(),
                    why: "use text, markdown or csv".into(),
                })
            }
        };
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
