//! The run's result as data (`Report`, serialised to JSON) and its human summary. Built
//! from merged per-thread stats after the run; measurement code never formats anything.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Failed attempts by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// ECONNREFUSED: nothing listening, or the listener refused.
    pub refused: u64,
    /// ECONNRESET during the handshake.
    pub reset: u64,
    /// No outcome within --connect-timeout, or ETIMEDOUT from the kernel.
    pub timeout: u64,
    /// EADDRNOTAVAIL/EADDRINUSE: local ports or addresses exhausted.
    pub addr_unavailable: u64,
    /// Any other errno (see `other_errnos`).
    pub other: u64,
    /// errno → count for `other`.
    pub other_errnos: BTreeMap<i32, u64>,
}

impl ErrorCounts {
    /// Sum of all kinds.
    pub fn total(&self) -> u64 {
        self.refused + self.reset + self.timeout + self.addr_unavailable + self.other
    }

    pub(crate) fn merge(&mut self, o: &ErrorCounts) {
        self.refused += o.refused;
        self.reset += o.reset;
        self.timeout += o.timeout;
        self.addr_unavailable += o.addr_unavailable;
        self.other += o.other;
        for (e, n) in &o.other_errnos {
            *self.other_errnos.entry(*e).or_insert(0) += n;
        }
    }
}

/// What the server did with the established connections, as the client saw it
/// (`--wait-close`, `--server-request`); measured connections only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeCounts {
    /// The server answered (first byte) or closed: it accepted the connection.
    pub served: u64,
    /// Established, and neither answer nor close nor reset by the deadline
    /// (--serve-timeout): a plain load generator counts these as successes.
    pub client_only: u64,
    /// Reset (or another socket error) before any answer or close.
    pub reset: u64,
    /// Still waiting when the run was stopped.
    pub unresolved: u64,
}

impl ServeCounts {
    /// Sum of all kinds (= established connections that were waited for).
    pub fn total(&self) -> u64 {
        self.served + self.client_only + self.reset + self.unresolved
    }

    pub(crate) fn merge(&mut self, o: &ServeCounts) {
        self.served += o.served;
        self.client_only += o.client_only;
        self.reset += o.reset;
        self.unresolved += o.unresolved;
    }
}

/// Latency percentiles, in the unit of the field holding them (ns for `*_ns`).
pub use common::hist::Percentiles;

/// One burst round's outcome (all threads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// Round number, 0-based.
    pub round: u32,
    /// Connects issued this round.
    pub attempted: u64,
    /// Connected this round (and held open until the round ended).
    pub established: u64,
    /// Still unresolved when the round's wait (--connect-timeout) ended.
    pub pending: u64,
    /// Failed this round (all kinds).
    pub errors: u64,
    /// First connect issued → last outcome known, seconds.
    pub duration_s: f64,
}

/// What a run measured; `--json` prints exactly this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Pacing: "closed", "rate" or "burst".
    pub mode: String,
    /// Address connected to.
    pub target: String,
    /// Connect method used: "uring", "epoll" or "blocking".
    pub method: String,
    /// Why the method differs from the one asked for (io_uring unavailable), if it does.
    pub method_note: Option<String>,
    /// io_uring: the connect ring's set-up as applied ("default", "coop", "defer", with
    /// the reason when a refused one fell back); absent for epoll and blocking.
    #[serde(default)]
    pub ring_setup: Option<String>,
    /// "syscall" (socket/setsockopt/close system calls) or "ring" (`--socket-ops ring`).
    #[serde(default)]
    pub socket_ops: String,
    /// Worker threads.
    pub threads: usize,
    /// Connections in flight across threads (closed: connectors; rate: cap; burst: burst size).
    pub concurrency: usize,
    /// Requested rate in rate mode, connections/s.
    pub rate_per_s: Option<f64>,
    /// Measured connection attempts (= established + errors + pending).
    pub attempted: u64,
    /// Attempts that connected.
    pub established: u64,
    /// Attempts unresolved when the wait ended (burst, or cut short by a stop).
    pub pending: u64,
    /// Failed attempts by kind.
    pub errors: ErrorCounts,
    /// Attempts during --warmup (real connections, excluded from every other count).
    pub warmup_attempted: u64,
    /// --wait-close waits that hit the deadline (--serve-timeout) before the server closed.
    pub wait_close_timeouts: u64,
    /// --wait-close: what the server did with the established connections.
    #[serde(default)]
    pub serve: Option<ServeCounts>,
    /// --wait-close: served latency, connect() called → the server's first byte or close, ns.
    #[serde(default)]
    pub served_ns: Option<Percentiles>,
    /// Measured window, seconds (burst: sum of the rounds' durations).
    pub duration_s: f64,
    /// Established connections per second of `duration_s`.
    pub conns_per_s: f64,
    /// Connect latency of established connections, ns (rate mode: from the intended start).
    pub connect_ns: Percentiles,
    /// Rate mode: how late connects started against the schedule, ns.
    pub schedule_lag_ns: Option<Percentiles>,
    /// User CPU of the worker threads over the measured window, seconds.
    pub cpu_user_s: f64,
    /// System CPU (incl. softirq charged to them) of the worker threads over the window, seconds.
    pub cpu_sys_s: f64,
    /// Established connections per worker CPU-second (user + sys).
    pub conns_per_cpu_s: f64,
    /// Burst rounds, in order.
    pub rounds: Vec<RoundSummary>,
    /// Interrupted by the stop flag (Ctrl-C) before the planned end.
    pub interrupted: bool,
    /// `--trace kernel`: the kernel's account of the target port's connections over
    /// the run (what this host can see of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<common::ktrace::view::KernelView>,
}

impl Report {
    /// True when attempted = established + pending + every error kind.
    pub fn counts_add_up(&self) -> bool {
        self.attempted == self.established + self.pending + self.errors.total()
    }

    /// Multi-line human summary.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let us = |ns: u64| ns as f64 / 1000.0;
        let _ = writeln!(
            s,
            "{} mode -> {} ({} thread(s), concurrency {}, method {}{}{})",
            self.mode,
            self.target,
            self.threads,
            self.concurrency,
            self.method,
            self.ring_setup
                .as_deref()
                .map(|r| format!(", ring {r}, socket ops {}", self.socket_ops))
                .unwrap_or_default(),
            self.method_note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "  attempted {}  established {}  pending {}  errors {}  in {:.3} s  = {:.0} conn/s",
            self.attempted,
            self.established,
            self.pending,
            self.errors.total(),
            self.duration_s,
            self.conns_per_s
        );
        s += &latency_line("connect", &self.connect_ns);
        if let (Some(v), Some(l)) = (&self.serve, &self.served_ns) {
            let _ = writeln!(
                s,
                "  server: served {}  client-only {}  reset {}  unresolved {}",
                v.served, v.client_only, v.reset, v.unresolved
            );
            s += &latency_line("served", l);
        }
        if let Some(l) = &self.schedule_lag_ns {
            let _ = writeln!(
                s,
                "  schedule lag (us): p50 {:.1}  p99 {:.1}  max {:.1}",
                us(l.p50),
                us(l.p99),
                us(l.max)
            );
        }
        if self.errors.total() > 0 {
            s += &errors_line(&self.errors);
        }
        let _ = writeln!(
            s,
            "  cpu: user {:.3} s  sys {:.3} s  = {:.0} conn per cpu-second{}",
            self.cpu_user_s,
            self.cpu_sys_s,
            self.conns_per_cpu_s,
            if self.warmup_attempted > 0 {
                format!(
                    "  (warm-up: {} attempts not counted)",
                    self.warmup_attempted
                )
            } else {
                String::new()
            }
        );
        for r in &self.rounds {
            let _ = writeln!(
                s,
                "  round {}: attempted {} established {} pending {} errors {} in {:.3} s",
                r.round, r.attempted, r.established, r.pending, r.errors, r.duration_s
            );
        }
        if self.interrupted {
            let _ = writeln!(s, "  interrupted: results cover the part that ran");
        }
        self.kernel_lines(&mut s);
        s
    }

    /// `--trace kernel`: the kernel's view, and loadgen's count beside it.
    fn kernel_lines(&self, s: &mut String) {
        let Some(k) = &self.kernel else {
            return;
        };
        s.push_str(&k.human());
        if k.unavailable.is_none() {
            let _ = writeln!(
                s,
                "  beside loadgen: loadgen established {}, the kernel saw {} client sockets established (every client of the port on this host)",
                self.established, k.client_established
            );
        }
    }
}

/// `  connect latency (us): p50 …  max …` for a latency's percentiles.
fn latency_line(name: &str, p: &Percentiles) -> String {
    let us = |ns: u64| ns as f64 / 1000.0;
    format!(
        "  {name} latency (us): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}\n",
        us(p.p50),
        us(p.p90),
        us(p.p99),
        us(p.p999),
        us(p.max)
    )
}

/// `  errors: refused …` with the unknown errnos by name.
fn errors_line(e: &ErrorCounts) -> String {
    let others: Vec<String> = e
        .other_errnos
        .iter()
        .map(|(k, v)| format!("{}:{v}", std::io::Error::from_raw_os_error(*k)))
        .collect();
    format!(
        "  errors: refused {}  reset {}  timeout {}  addr_unavailable {}  other {}{}\n",
        e.refused,
        e.reset,
        e.timeout,
        e.addr_unavailable,
        e.other,
        if others.is_empty() {
            String::new()
        } else {
            format!(" ({})", others.join(", "))
        }
    )
}
