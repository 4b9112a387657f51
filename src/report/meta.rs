//! `meta.json`: everything needed to interpret and compare a run — command,
//! revision, kernel, machine, settings. Written when the run starts (marked
//! incomplete) and again when it ends.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::kernel::{self, probe::UringProbe, sysctl};

/// Contents of meta.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Format version of the results directory.
    pub format_version: u32,
    /// The command line as typed.
    pub command: String,
    /// acceptbench's version.
    pub acceptbench_version: String,
    /// `git rev-parse HEAD` of the source tree the binary was built from (+ `-dirty`).
    pub git_rev: String,
    /// Versions of the crates that shape the numbers, from Cargo.lock.
    pub crate_versions: BTreeMap<String, String>,
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -a`-like string.
    pub uname: String,
    /// Host name.
    pub host: String,
    /// CPU model.
    pub cpu_model: String,
    /// CPUs available.
    pub cpus: usize,
    /// `none`, `tcg`, `hypervisor (…)`.
    pub virtualised: String,
    /// RLIMIT_NOFILE soft limit during the run.
    pub rlimit_nofile: u64,
    /// Recorded sysctls, name → value.
    pub sysctls: BTreeMap<String, String>,
    /// io_uring probe.
    pub io_uring: UringProbe,
    /// Acceptor CPU.
    pub server_cpu: usize,
    /// loadgen CPUs.
    pub client_cpus: Vec<usize>,
    /// UTC start, RFC 3339.
    pub started_utc: String,
    /// UTC end, RFC 3339 (empty while running).
    pub finished_utc: String,
    /// True until the sweep finished every planned run.
    pub incomplete: bool,
    /// What the run's set-up means for its numbers (namespaces, clamps, too few rounds).
    pub notes: Vec<String>,
    /// Engine options as asked for: `inflight=8 ring_setup=<engine default> direct=false`
    /// (what each ring really got is the summary.csv column ring_setup).
    #[serde(default)]
    pub engine_options: String,
    /// How loadgen connected, per mode (each different way once): method, ring set-up
    /// and where sockets were made and closed, e.g.
    /// `closed by uring (ring default, socket ops ring)`.
    #[serde(default)]
    pub client_connect: Vec<String>,
    /// The machine's costs (null system call, io_uring NOP enter, context switch) on the
    /// acceptor's CPU at the sweep's start and end, and what explains them (CPU,
    /// microcode, mitigations, HZ, steal). Absent in runs made before it existed.
    #[serde(default)]
    pub machine: Option<crate::kernel::costs::Profile>,
}

/// Format version written by this build.
///
/// 1: the first layout. 2: adds `cells.csv` and the summary.csv columns `position`,
/// `syn_retry_stalls`, `somaxconn`, `tcp_syncookies`, `tcp_abort_on_overflow`; `netns`
/// becomes text; status `failed`. 3: a window ends when its last connection is done —
/// the later of the last peer held and the last close completed — so `accepts_per_s`
/// (and `acceptor_cpu_*`) count every close; the time to the last peer held, which
/// version 2 called `accepts_per_s`, is the new `peers_held_per_s` with `peer_window_s`
/// and `accept_window_s`; cells.csv gains `peers_held_per_s` with its interval.
/// Readers take every version up to this one (columns a run lacks are absent, never
/// zero) and refuse newer ones.
pub const FORMAT_VERSION: u32 = 3;

impl Meta {
    /// Collects the facts of this machine for a run started with `command`.
    pub fn collect(command: &str, io_uring: UringProbe, cpus: (usize, Vec<usize>)) -> Self {
        let u = kernel::uname();
        Meta {
            format_version: FORMAT_VERSION,
            command: command.to_string(),
            acceptbench_version: env!("CARGO_PKG_VERSION").to_string(),
            git_rev: git_rev(),
            crate_versions: crate_versions(),
            uname: format!(
                "Linux {} {} {} {}",
                u.nodename, u.release, u.version, u.machine
            ),
            kernel_release: u.release,
            host: u.nodename,
            cpu_model: kernel::cpu_model().unwrap_or_default(),
            cpus: common::affinity::available_cpus(),
            virtualised: kernel::virtualisation(),
            rlimit_nofile: kernel::rlimit_nofile().0,
            sysctls: sysctl::snapshot(),
            io_uring,
            server_cpu: cpus.0,
            client_cpus: cpus.1,
            started_utc: now_utc(),
            finished_utc: String::new(),
            incomplete: true,
            notes: Vec::new(),
            engine_options: String::new(),
            client_connect: Vec::new(),
            machine: None,
        }
    }

    /// Writes meta.json (pretty-printed), atomically: a crash mid-write keeps the old file.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(io::Error::other)?;
        super::write_atomic(path, (text + "\n").as_bytes())
    }

    /// Reads a meta.json; errors name the file and the line.
    pub fn read(path: &Path) -> io::Result<Meta> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses meta.json text; errors name `name` and the line. A format_version this
    /// build does not read is an error naming it.
    pub fn parse(text: &str, name: &str) -> io::Result<Meta> {
        let meta: Meta = serde_json::from_str(text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name}:{}: {e}", e.line()),
            )
        })?;
        if meta.format_version == 0 || meta.format_version > FORMAT_VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{name}: results format_version {} is not one this acceptbench reads (1 to {FORMAT_VERSION}); use the acceptbench version that wrote it (meta.json acceptbench_version {}, git {})",
                    meta.format_version,
                    meta.acceptbench_version,
                    meta.git_rev
                ),
            ));
        }
        Ok(meta)
    }
}

/// UTC now, RFC 3339 to the second.
pub fn now_utc() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn git_rev() -> String {
    // Set when the binary is built away from its checkout (e.g. for a QEMU guest).
    if let Some(rev) = option_env!("ACCEPTBENCH_GIT_REV") {
        return rev.to_string();
    }
    let dir = env!("CARGO_MANIFEST_DIR");
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(rev) if !rev.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        _ => "unknown".to_string(),
    }
}

/// Versions of the crates that shape the numbers, read from the Cargo.lock built with.
fn crate_versions() -> BTreeMap<String, String> {
    const LOCK: &str = include_str!("../../Cargo.lock");
    const WANTED: &[&str] = &[
        "io-uring",
        "tokio",
        "tokio-uring",
        "socket2",
        "hdrhistogram",
        "libc",
    ];
    let mut out = BTreeMap::new();
    let mut name: Option<&str> = None;
    for line in LOCK.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name) {
            if WANTED.contains(&n) {
                // Several versions of one crate (socket2) are all kept.
                out.entry(n.to_string())
                    .and_modify(|e: &mut String| {
                        e.push(',');
                        e.push_str(v.trim_matches('"'));
                    })
                    .or_insert_with(|| v.trim_matches('"').to_string());
            }
            name = None;
        }
    }
    out
}
