//! `--trace kernel` on one command (`acceptbench listen`, `loadgen`): a recording of
//! the command's port around its whole run ([`Session`]), and the kernel's account
//! of it reduced to what the command reports beside its own counts ([`KernelView`],
//! plain data in its JSON and text).
//!
//! Tracepoints are host-wide: a recording sees the sockets of every process and every
//! network namespace on this host, never another host's. So a command sees both ends
//! of a connection when client and server run on this host (loopback, or namespaces
//! of it), and only its own end otherwise: the figures that need the other end are
//! then absent, with the reason, never zero.

use serde::{Deserialize, Serialize};

use crate::hist::Percentiles;

use super::account::{account, Accepted, KernelAccount};
use super::decode::Tp;
use super::trace::{Recorder, TraceError, TraceSpec};

/// A recording under way for one command, or why there is none.
pub enum Session {
    /// Not asked for.
    Off,
    /// Asked for, not possible here: why.
    Unavailable(String),
    /// Recording the port.
    On(Recorder, u16),
}

/// Why `--trace kernel` was asked for and could not be had, as the command's error
/// when the user required it (`--trace-required`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--trace kernel --trace-required: cannot record the kernel's account here: {0}; run as root on a kernel with tracefs and perf events, or drop --trace-required to go on without it")]
pub struct Required(pub String);

impl Session {
    /// Starts recording `port` when `on`. Where that is not possible the session says
    /// why ([`Session::Unavailable`]), or, when `required`, the command fails.
    pub fn start(on: bool, required: bool, port: u16) -> Result<Session, Required> {
        if !on {
            return Ok(Session::Off);
        }
        Session::from_start(Recorder::start(&TraceSpec::port(port)), required, port)
    }

    /// What a recorder's start gives: the session, its reason for being off, or the
    /// command's error.
    fn from_start(
        started: Result<Recorder, TraceError>,
        required: bool,
        port: u16,
    ) -> Result<Session, Required> {
        match started {
            Ok(r) => Ok(Session::On(r, port)),
            Err(e) if required => Err(Required(e.to_string())),
            Err(e) => Ok(Session::Unavailable(e.to_string())),
        }
    }

    /// The line a command prints on stderr when tracing was asked for and is not
    /// possible (None otherwise).
    pub fn warning(&self) -> Option<String> {
        match self {
            Session::Unavailable(why) => Some(format!(
                "--trace kernel: not recorded, going on without it: {why}"
            )),
            _ => None,
        }
    }

    /// Stops recording; the account (with `accepts`, when the command kept them, for
    /// the queue waits). None when not asked for.
    pub fn finish(self, accepts: Option<&[Accepted]>) -> Option<Traced> {
        match self {
            Session::Off => None,
            Session::Unavailable(why) => Some(Traced::Unavailable(why)),
            Session::On(rec, port) => {
                let trace = rec.finish();
                Some(Traced::Recorded(Box::new(account(&trace, port, accepts))))
            }
        }
    }
}

/// A finished session.
#[derive(Debug, Clone, PartialEq)]
pub enum Traced {
    /// Not possible here: why.
    Unavailable(String),
    /// The account.
    Recorded(Box<KernelAccount>),
}

impl Traced {
    /// The account, when recorded.
    pub fn account(&self) -> Option<&KernelAccount> {
        match self {
            Traced::Recorded(k) => Some(k),
            Traced::Unavailable(_) => None,
        }
    }

    /// `--trace-out FILE` of `program` (listen, loadgen): writes the per-connection
    /// timeline of the account to `path`; when none was recorded, writes nothing and
    /// says so on stderr.
    pub fn write_trace_out(&self, path: &std::path::Path, program: &str) -> std::io::Result<()> {
        let Some(k) = self.account() else {
            eprintln!(
                "{program}: --trace-out {}: not written, the kernel's account was not recorded",
                path.display()
            );
            return Ok(());
        };
        let file = std::fs::File::create(path)?;
        super::timeline::write_timeline_csv(k, std::io::BufWriter::new(file))
    }
}

/// The kernel's account of a command's run, as the command reports it. Counts are
/// connections to or from the port; a figure that this host cannot see is None and
/// [`KernelView::notes`] says why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelView {
    /// `ok`, `incomplete` (records lost: counts may be short) or `unavailable` (then
    /// nothing below was measured, and every figure is absent: never 0).
    pub status: String,
    /// Why it was not recorded (status `unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Client sockets on this host that sent a SYN to the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_syn_sent: Option<u64>,
    /// Of those, established on the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_established: Option<u64>,
    /// Client sockets that never became established (refused, timed out, gave up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_never_established: Option<u64>,
    /// Server children on this host established: connections that entered the accept
    /// queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_established: Option<u64>,
    /// Of the client sockets established, how many had a server child established
    /// (None: no server child seen, the server is not on this host).
    pub client_established_with_child: Option<u64>,
    /// Established on the client, no server child ever established: connections the
    /// server never had (None: one end is not on this host).
    pub client_only: Option<u64>,
    /// Server children matched to an accept of the command (None: accepts not kept).
    pub accepted: Option<u64>,
    /// Server children established but never accepted (None: accepts not kept).
    pub queued_not_accepted: Option<u64>,
    /// SYN retransmits, all client sockets (None: tracepoint absent).
    pub syn_retransmits: Option<u64>,
    /// `[i]`: client sockets that needed exactly `i` SYN retransmits (None: tracepoint
    /// absent).
    pub retransmits_per_connection: Option<Vec<u64>>,
    /// SYN sent → server child established (ns), per connection with both ends here.
    pub handshake_ns: Option<Percentiles>,
    /// Server child established → accept returned (ns), per accepted connection.
    pub queue_wait_ns: Option<Percentiles>,
    /// Records the kernel lost or that did not decode (non-zero: counts may be short).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_records: Option<u64>,
    /// Records of host-wide events (resets, overflow drops) lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_host_wide: Option<u64>,
    /// What is missing and why, one sentence each.
    pub notes: Vec<String>,
}

impl KernelView {
    /// Not recorded: why.
    pub fn unavailable(why: &str) -> KernelView {
        KernelView {
            status: "unavailable".into(),
            unavailable: Some(why.into()),
            ..KernelView::default()
        }
    }

    /// The view of a finished session; `no_accepts`: why the command gave no accepts
    /// (then the queue waits are missing and a note says so), if it gave none.
    pub fn of(traced: &Traced, no_accepts: Option<&str>) -> KernelView {
        match traced {
            Traced::Unavailable(why) => KernelView::unavailable(why),
            Traced::Recorded(k) => KernelView::of_account(k, no_accepts),
        }
    }

    /// The view of an account; `no_accepts`: why accepts were not given, if not.
    pub fn of_account(k: &KernelAccount, no_accepts: Option<&str>) -> KernelView {
        let clients_seen = k.syn_sent > 0;
        let server_seen = k.queued > 0;
        let mut notes = Vec::new();
        if !clients_seen {
            notes.push("no client socket to the port on this host: client-only connections are counted only when the clients run on this host".to_string());
        }
        if !server_seen && clients_seen {
            notes.push("no server child established on this host: the server is elsewhere (tracepoints see only this host), so which clients the server had is not known here".to_string());
        }
        let with_child = k
            .connections
            .iter()
            .filter(|c| c.client_established_ns.is_some() && c.child_established_ns.is_some())
            .count() as u64;
        let rtx = k.recorded(Tp::RetransmitSkb);
        if let (Some(why), None) = (no_accepts, k.accepted) {
            notes.push(format!("queue wait not measured: {why}"));
        }
        if let Some(short) = k.shortfall() {
            notes.push(format!("{short}: the counts may be short"));
        }
        if k.cut_short {
            notes.push("the trace reached its time limit before the run ended".into());
        }
        for a in &k.absent {
            notes.push(format!("{} not recorded: {}", a.event, a.why));
        }
        KernelView {
            status: if k.complete() { "ok" } else { "incomplete" }.into(),
            unavailable: None,
            client_syn_sent: Some(k.syn_sent),
            client_established: Some(k.client_established),
            client_never_established: Some(k.never_established),
            server_established: Some(k.queued),
            client_established_with_child: server_seen.then_some(with_child),
            client_only: (clients_seen && server_seen).then_some(k.client_only),
            accepted: k.accepted,
            queued_not_accepted: k.queued_not_accepted,
            syn_retransmits: rtx.then_some(k.syn_retransmits),
            retransmits_per_connection: rtx.then(|| k.retransmits_per_connection.clone()),
            handshake_ns: k.handshake,
            queue_wait_ns: k.queue_wait,
            lost_records: Some(k.lost_records),
            lost_host_wide: Some(k.lost_host_wide),
            notes,
        }
    }

    /// The view as text lines for a command's summary, each indented by two spaces.
    pub fn human(&self) -> String {
        let mut s = String::from("kernel's account (--trace kernel):\n");
        if let Some(why) = &self.unavailable {
            s.push_str(&format!("  not recorded: {why}\n"));
            return s;
        }
        let opt = |v: Option<u64>| v.map_or("unknown".to_string(), |v| v.to_string());
        s.push_str(&format!(
            "  client sockets here: {} SYN sent, {} established, {} never established\n",
            opt(self.client_syn_sent),
            opt(self.client_established),
            opt(self.client_never_established)
        ));
        s.push_str(&format!(
            "  server children established (entered the accept queue): {}\n",
            opt(self.server_established)
        ));
        if let Some(a) = self.accepted {
            s.push_str(&format!(
                "  of them accepted: {a}; queued, never accepted: {}\n",
                opt(self.queued_not_accepted)
            ));
        }
        s.push_str(&format!(
            "  client established with a server child: {}; client-only: {}\n",
            opt(self.client_established_with_child),
            opt(self.client_only)
        ));
        if let Some(per) = &self.retransmits_per_connection {
            s.push_str(&format!(
                "  SYN retransmits: {} (connections by retransmits: {})\n",
                opt(self.syn_retransmits),
                per_connection(per)
            ));
        }
        let pct = |p: &Option<Percentiles>| {
            p.map_or("not measured".to_string(), |p| {
                format!("p50 {} µs, p99 {} µs", p.p50 / 1000, p.p99 / 1000)
            })
        };
        s.push_str(&format!(
            "  handshake (SYN → child established): {}\n",
            pct(&self.handshake_ns)
        ));
        s.push_str(&format!(
            "  queue wait (child established → accepted): {}\n",
            pct(&self.queue_wait_ns)
        ));
        s.push_str(&format!(
            "  lost records: {} ({})\n",
            opt(self.lost_records),
            self.status
        ));
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        s
    }
}

/// `0:3 2:17`: how many connections needed each number of SYN retransmits ("none"
/// when no client socket was seen).
fn per_connection(counts: &[u64]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(k, n)| format!("{k}:{n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktrace::account::KernelConn;
    use crate::ktrace::trace::Absent;
    use crate::ktrace::tracefs::TracefsError;

    #[test]
    fn tracing_impossible_says_why_or_fails_when_required() {
        let refused = || {
            Err(TraceError::Tracefs(TracefsError::Mount(
                "mount tracefs at /sys/kernel/tracing: Operation not permitted".into(),
            )))
        };
        let s = Session::from_start(refused(), false, 8080).unwrap();
        let w = s.warning().unwrap();
        assert!(
            w.contains("going on without it") && w.contains("Operation not permitted"),
            "{w}"
        );
        let Some(Traced::Unavailable(why)) = s.finish(None) else {
            panic!("an unavailable session finishes unavailable");
        };
        let v = KernelView::of(&Traced::Unavailable(why), None);
        assert_eq!(v.status, "unavailable");
        // Nothing was measured, so no count is written: absent, never 0.
        let json = serde_json::to_value(&v).unwrap();
        for field in ["client_syn_sent", "server_established", "lost_records"] {
            assert!(json.get(field).is_none(), "{field} written: {json}");
        }
        assert!(
            v.human().contains("not recorded: tracefs is not mounted"),
            "{}",
            v.human()
        );
        let Err(e) = Session::from_start(refused(), true, 8080) else {
            panic!("required and refused must fail");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("--trace-required") && msg.contains("Operation not permitted"),
            "{msg}"
        );
        assert!(Session::start(false, true, 8080)
            .unwrap()
            .finish(None)
            .is_none());
    }

    fn conn(client_est: bool, child_est: bool, rtx: usize) -> KernelConn {
        KernelConn {
            syn_sent_ns: Some(1),
            syn_retransmits_ns: vec![2; rtx],
            client_established_ns: client_est.then_some(3),
            child_established_ns: child_est.then_some(4),
            ..KernelConn::default()
        }
    }

    #[test]
    fn figures_of_an_end_not_on_this_host_are_unknown_not_zero() {
        let both = KernelAccount {
            connections: vec![conn(true, true, 0), conn(true, false, 2)],
            syn_sent: 2,
            client_established: 2,
            queued: 1,
            client_only: 1,
            retransmits_per_connection: vec![1, 0, 1],
            syn_retransmits: 2,
            ..KernelAccount::default()
        };
        let v = KernelView::of_account(&both, Some("give --records FILE"));
        assert_eq!(
            (
                v.client_only,
                v.client_established_with_child,
                v.syn_retransmits
            ),
            (Some(1), Some(1), Some(2))
        );
        assert!(v.notes.iter().any(|n| n.contains("give --records FILE")));
        assert!(v.human().contains("connections by retransmits: 0:1 2:1"));
        // The server elsewhere: every client established, no child seen.
        let client_side = KernelAccount {
            connections: vec![conn(true, false, 0)],
            syn_sent: 1,
            client_established: 1,
            client_only: 1,
            absent: vec![Absent {
                event: "tcp:tcp_retransmit_skb".into(),
                why: "absent".into(),
            }],
            ..KernelAccount::default()
        };
        let v = KernelView::of_account(&client_side, None);
        assert_eq!(
            (v.client_only, v.client_established_with_child),
            (None, None)
        );
        assert_eq!(v.retransmits_per_connection, None);
        assert!(v
            .notes
            .iter()
            .any(|n| n.contains("the server is elsewhere")));
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<KernelView>(&json).unwrap(), v);
    }
}
