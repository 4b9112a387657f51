//! Summaries of one acceptor run (`listen`) and of the kernel (`probe`), as plain
//! data with text and JSON renderings. Measurement code never formats; this does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use common::hist::Percentiles;
use serde::{Deserialize, Serialize};

use crate::engine::EngineSupport;
use crate::kernel::probe::UringProbe;
use crate::record::Recorder;

/// What `listen` prints when it ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenSummary {
    /// Engine name.
    pub engine: String,
    /// Bound address.
    pub addr: String,
    /// Backlog passed to listen(2).
    pub backlog_requested: u32,
    /// Accept-queue limit the kernel applied.
    pub backlog_effective: u32,
    /// Connections accepted.
    pub accepted: u64,
    /// Accept errors, kind → count.
    pub errors: BTreeMap<String, u64>,
    /// Accept errnos outside the known kinds (the `other` count), by name (`EPERM`).
    pub other_errnos: BTreeMap<String, u64>,
    /// Sleeps after an accept failed for lack of fds or memory (EMFILE, ENFILE,
    /// ENOMEM, ENOBUFS) or with an unknown errno; `errors` says which.
    pub backoffs: u64,
    /// Accepts that failed with EMFILE (the process's fd limit, RLIMIT_NOFILE).
    pub emfile: u64,
    /// Multishot accept re-arms (completions without IORING_CQE_F_MORE); 0 for other engines.
    pub rearms: u64,
    /// Connections the kernel dequeued and destroyed (ENFILE on a direct accept; see
    /// `Recorder::lost`): established on the client, never accepted.
    #[serde(default)]
    pub lost: u64,
    /// Engine uring: accept completions that carried IORING_CQE_F_SOCK_NONEMPTY.
    #[serde(default)]
    pub sock_nonempty: u64,
    /// Engine uring with DONTWAIT accepts: those that found the queue empty (EAGAIN).
    #[serde(default)]
    pub accept_eagain: u64,
    /// io_uring engine counters (CQ overflows, dropped CQEs, cancels); zero for others.
    pub engine_counters: crate::engine::EngineCounters,
    /// Wall time of the run, s.
    pub duration_s: f64,
    /// Accepts per second over the window from the acceptor's release (listening
    /// started) to its last connection done — the later of the last peer held and the
    /// last close completed; idle time before the first client counts.
    pub accepts_per_s: f64,
    /// That window, s.
    pub accept_window_s: f64,
    /// Peers held per second over release → the last peer held (how soon every client
    /// was known; with DEFER_TASKRUN uring-linked closes after that).
    pub peers_held_per_s: f64,
    /// That window, s.
    pub peer_window_s: f64,
    /// Accepts per second while busy: from the first accept completion the engine saw to
    /// its last connection done, (accepted − 1) / span. Leaves out the wait for the first
    /// client, but starts late for a multishot accept that took a queued batch at once.
    pub busy_accepts_per_s: f64,
    /// Connections whose close completed (every accepted one, once the run has ended).
    pub closed: u64,
    /// Acceptor thread user CPU over the whole run, s.
    pub cpu_user_s: f64,
    /// Acceptor thread system CPU over the whole run, s.
    pub cpu_sys_s: f64,
    /// Acceptor thread CPU over the accept window (release → its work marked done), s.
    pub cpu_window_s: f64,
    /// Acceptor window CPU µs per accepted connection.
    pub cpu_us_per_accept: f64,
    /// Server-internal peer-extraction latency (accept completion → peer decoded), ns.
    pub peer_extract_ns: Percentiles,
    /// Several acceptors (`--acceptors N` or `--sharing reuseport`): how they shared the work.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub acceptors: Option<AcceptorSummary>,
    /// `--trace kernel`: the kernel's account of the port's connections over the run.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub kernel: Option<common::ktrace::view::KernelView>,
}

/// How several acceptors of `listen` shared the work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptorSummary {
    /// shared or reuseport.
    pub sharing: String,
    /// Listening sockets (1 shared, N reuseport).
    pub listeners: u32,
    /// Connections accepted by each acceptor, in acceptor order.
    pub accepted: Vec<u64>,
    /// Fewest / most accepted by one acceptor (None when nothing was accepted).
    pub fairness: Option<f64>,
    /// Futile wake-ups (std only; see summary.csv `futile_wakeups`).
    pub futile_wakeups: Option<u64>,
}

/// The windows of a `listen` run (see [`crate::timing`]): summed or spanned over
/// its acceptors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ListenWindow {
    /// Earliest release → latest last connection done, s.
    pub accept_window_s: f64,
    /// Earliest release → latest last peer held, s.
    pub peer_window_s: f64,
    /// First accept completion seen → latest last connection done, s.
    pub busy_window_s: f64,
    /// Σ acceptor thread CPU over their windows, s.
    pub cpu_s: f64,
}

impl ListenWindow {
    /// The window of acceptors timed as `timed`, whose merged records are `rec`.
    pub fn of(timed: &[crate::timing::Timed], rec: &Recorder) -> Self {
        // An acceptor that never ran has no release.
        let released = timed
            .iter()
            .map(|t| t.released_ns)
            .filter(|&r| r > 0)
            .min()
            .unwrap_or(0);
        let end = timed.iter().map(|t| t.end_ns()).max().unwrap_or(0);
        let held = timed.iter().map(|t| t.last_held_ns).max().unwrap_or(0);
        let s = |from: u64, to: u64| to.saturating_sub(from) as f64 * 1e-9;
        Self {
            accept_window_s: s(released, end),
            peer_window_s: s(released, held),
            busy_window_s: if rec.first_accept_ns > 0 {
                s(rec.first_accept_ns, end)
            } else {
                0.0
            },
            cpu_s: timed.iter().map(|t| t.cpu_s).sum(),
        }
    }
}

impl ListenSummary {
    /// Builds the summary of a finished run: `cpu` (user, sys) over the whole run.
    pub fn new(
        engine: &str,
        addr: String,
        backlog: (u32, u32),
        rec: &Recorder,
        duration_s: f64,
        cpu: (f64, f64),
        window: ListenWindow,
    ) -> Self {
        let per_s = |n: f64, s: f64| if s > 0.0 { n / s } else { 0.0 };
        let n = rec.accepted as f64;
        Self {
            engine: engine.to_string(),
            addr,
            backlog_requested: backlog.0,
            backlog_effective: backlog.1,
            accepted: rec.accepted,
            errors: rec
                .errors
                .iter()
                .map(|(k, v)| (k.name().to_string(), *v))
                .collect(),
            other_errnos: rec
                .other_errnos
                .iter()
                .map(|(&errno, &n)| (crate::engine::errno_name(errno), n))
                .collect(),
            backoffs: rec.backoffs,
            emfile: rec
                .errors
                .get(&crate::record::AcceptError::Emfile)
                .copied()
                .unwrap_or(0),
            rearms: rec.rearms,
            lost: rec.lost,
            sock_nonempty: rec.sock_nonempty,
            accept_eagain: rec.accept_eagain,
            engine_counters: crate::engine::EngineCounters::default(),
            duration_s,
            accepts_per_s: per_s(n, window.accept_window_s),
            accept_window_s: window.accept_window_s,
            peers_held_per_s: per_s(n, window.peer_window_s),
            peer_window_s: window.peer_window_s,
            busy_accepts_per_s: if rec.accepted >= 2 {
                per_s(n - 1.0, window.busy_window_s)
            } else {
                0.0
            },
            closed: rec.closed,
            cpu_user_s: cpu.0,
            cpu_sys_s: cpu.1,
            cpu_window_s: window.cpu_s,
            cpu_us_per_accept: if rec.accepted > 0 {
                window.cpu_s * 1e6 / n
            } else {
                0.0
            },
            peer_extract_ns: Percentiles::of(&rec.peer_extract_ns),
            acceptors: None,
            kernel: None,
        }
    }

    /// Human-readable text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let errors = if self.errors.is_empty() {
            "none".to_string()
        } else {
            self.errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let p = &self.peer_extract_ns;
        let _ = writeln!(
            s,
            "engine {} on {} backlog {} (effective {})",
            self.engine, self.addr, self.backlog_requested, self.backlog_effective
        );
        let _ = writeln!(
            s,
            "accepted {} (closed {}) in {:.3} s, errors: {errors}",
            self.accepted, self.closed, self.duration_s
        );
        let _ = writeln!(
            s,
            "{:.0} accepts/s (release → last close, {:.3} s), {:.0} peers held/s (release → last peer, {:.3} s), {:.0} accepts/s while busy (first accept seen → last close)",
            self.accepts_per_s,
            self.accept_window_s,
            self.peers_held_per_s,
            self.peer_window_s,
            self.busy_accepts_per_s
        );
        if !self.other_errnos.is_empty() {
            let errnos: Vec<String> = self
                .other_errnos
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(s, "other errnos: {}", errnos.join(" "));
        }
        if let Some(a) = &self.acceptors {
            let counts: Vec<String> = a.accepted.iter().map(u64::to_string).collect();
            let _ = writeln!(
                s,
                "acceptors {} ({}, {} listener{}): accepted {}, fairness (min/max) {}, futile wake-ups {}",
                a.accepted.len(),
                a.sharing,
                a.listeners,
                if a.listeners == 1 { "" } else { "s" },
                counts.join(" "),
                a.fairness.map_or("-".to_string(), |f| format!("{f:.2}")),
                a.futile_wakeups
                    .map_or("not visible to this engine".to_string(), |f| f.to_string()),
            );
        }
        let c = &self.engine_counters;
        let _ = writeln!(
            s,
            "back-offs {} (EMFILE {}), multishot re-arms {}, CQ overflows {}, CQEs dropped {}, cancels {}",
            self.backoffs, self.emfile, self.rearms, c.cq_overflows, c.cqes_dropped, c.cancels
        );
        self.engine_lines(&mut s);
        let _ = writeln!(
            s,
            "cpu user {:.3} s sys {:.3} s over the run; {:.3} s over the accept window, {:.2} µs per accept",
            self.cpu_user_s, self.cpu_sys_s, self.cpu_window_s, self.cpu_us_per_accept
        );
        let _ = writeln!(
            s,
            "peer extraction (accept done → peer decoded): p50 {} ns p99 {} ns max {} ns",
            p.p50, p.p99, p.max
        );
        self.kernel_lines(&mut s);
        s
    }

    /// `--trace kernel`: the kernel's account, and listen's count beside it.
    fn kernel_lines(&self, s: &mut String) {
        let Some(k) = &self.kernel else {
            return;
        };
        s.push_str(&k.human());
        if k.unavailable.is_none() {
            let _ = writeln!(
                s,
                "  beside listen: the kernel queued {} connections, listen accepted {}",
                k.server_established, self.accepted
            );
        }
    }
}

impl ListenSummary {
    /// Lines only some engines have: connections the kernel destroyed (any, by name)
    /// and what `uring`'s accept completions said.
    fn engine_lines(&self, s: &mut String) {
        if self.lost > 0 {
            let _ = writeln!(s, "{}", lost_text(self.lost));
        }
        if self.engine == "uring" {
            let text = accept_flags_text(self.accepted, self.sock_nonempty, self.accept_eagain);
            let _ = writeln!(s, "{text}");
        }
    }
}

/// The line that names connections the kernel destroyed ([`crate::record::Recorder::lost`]).
pub fn lost_text(lost: u64) -> String {
    format!(
        "LOST {lost} connections: the kernel took them off the accept queue for a direct accept, found the direct descriptor table full (ENFILE) and closed them; their clients saw them established"
    )
}

/// What engine uring's accept completions said: how many carried SOCK_NONEMPTY (more
/// were queued) and how many DONTWAIT accepts found the queue empty, each per accept.
fn accept_flags_text(accepted: u64, nonempty: u64, eagain: u64) -> String {
    let per = |n: u64| {
        if accepted > 0 {
            n as f64 / accepted as f64
        } else {
            0.0
        }
    };
    format!(
        "accept completions: {nonempty} said more were queued (SOCK_NONEMPTY, {:.2} per accept), {eagain} DONTWAIT accepts found the queue empty (EAGAIN, {:.2} per accept)",
        per(nonempty),
        per(eagain)
    )
}

/// What `probe` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -v`.
    pub kernel_version: String,
    /// Machine architecture.
    pub machine: String,
    /// Recorded sysctls, name → value.
    pub sysctls: BTreeMap<String, String>,
    /// RLIMIT_NOFILE soft limit.
    pub rlimit_nofile: u64,
    /// CPUs available to this process.
    pub cpus: usize,
    /// How the machine is virtualised.
    pub virtualised: String,
    /// The io_uring probe.
    pub io_uring: UringProbe,
    /// One entry per engine.
    pub engines: Vec<EngineSupport>,
}

impl ProbeReport {
    /// Human-readable text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "kernel {} ({})", self.kernel_release, self.machine);
        let _ = writeln!(
            s,
            "cpus {}  virtualised {}  RLIMIT_NOFILE {}",
            self.cpus, self.virtualised, self.rlimit_nofile
        );
        for (k, v) in &self.sysctls {
            let _ = writeln!(s, "  {k} = {v}");
        }
        let u = &self.io_uring;
        let _ = writeln!(
            s,
            "io_uring: setup {} accept {} multishot-accept {} connect {} close {} defer-taskrun {}{}",
            u.setup_ok,
            u.accept,
            u.accept_multishot,
            u.connect,
            u.close,
            u.defer_taskrun,
            u.setup_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
        for (name, found, version) in u.features() {
            let _ = writeln!(
                s,
                "  {name:<40} {} (Linux {version})",
                if found { "yes" } else { "no" }
            );
        }
        for e in &self.engines {
            if e.supported {
                let _ = writeln!(s, "  {:<12} supported", e.name);
            } else {
                let _ = writeln!(s, "  {:<12} unsupported: {}", e.name, e.reason);
            }
        }
        s
    }
}
