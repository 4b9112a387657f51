//! `sweep --trace kernel`: the kernel's account of each run's connections, recorded
//! around the run (kernel::perf::trace) and summed up (kernel::account), its figures
//! in the row's `kernel_*` columns. Where tracing is not possible here the run goes on
//! without it, and its row says why in the notes.

use crate::kernel::account::{account, Accepted, KernelAccount};
use crate::kernel::perf::decode::Tp;
use crate::kernel::perf::trace::{Recorder, TraceSpec};
use crate::record::PeerRecord;
use crate::report::row::SummaryRow;

/// The kernel's account of one run, or why there is none.
#[derive(Debug, Default)]
pub enum KernelTrace {
    /// Not asked for.
    #[default]
    Off,
    /// Asked for, not possible here: why.
    Unavailable(String),
    /// Recorded.
    Recorded(Box<KernelAccount>),
}

/// A recording under way for one run (or the reason there is none).
pub enum Tracing {
    /// Not asked for.
    Off,
    /// Could not start: why.
    Unavailable(String),
    /// Recording the port.
    On(Recorder, u16),
}

/// Starts recording the run's `port` when `on`, its reader on `reader_cpus` (the
/// client's: off the acceptor's CPU).
pub fn start(on: bool, port: u16, reader_cpus: &[usize]) -> Tracing {
    if !on {
        return Tracing::Off;
    }
    match Recorder::start(&TraceSpec::port(port).reader_on(reader_cpus)) {
        Ok(r) => Tracing::On(r, port),
        Err(e) => Tracing::Unavailable(e.to_string()),
    }
}

impl Tracing {
    /// Stops recording; the account, with the acceptor's accepts (`peers`) for the
    /// queue waits.
    pub fn finish(self, peers: &[PeerRecord]) -> KernelTrace {
        match self {
            Tracing::Off => KernelTrace::Off,
            Tracing::Unavailable(why) => KernelTrace::Unavailable(why),
            Tracing::On(rec, port) => {
                let trace = rec.finish();
                let accepts: Vec<Accepted> = peers
                    .iter()
                    .map(|p| Accepted {
                        peer: p.peer,
                        at_ns: p.accepted_ns,
                    })
                    .collect();
                // No accepts kept (an engine that keeps no peers): no queue waits.
                let accepts = (!accepts.is_empty()).then_some(&accepts[..]);
                KernelTrace::Recorded(Box::new(account(&trace, port, accepts)))
            }
        }
    }
}

/// `0:3;2:17`: how many connections needed each number of SYN retransmits.
fn per_connection(counts: &[u64]) -> String {
    counts
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(k, n)| format!("{k}:{n}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// `1:17@1.00s;2:17@2.02s`: each SYN retransmit, by how many connections and its
/// median delay after the SYN.
fn waves(k: &KernelAccount) -> String {
    k.waves
        .iter()
        .map(|w| {
            format!(
                "{}:{}@{:.2}s",
                w.nth,
                w.connections,
                w.after_syn_p50_ns as f64 * 1e-9
            )
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Fills the row's `kernel_*` columns (left empty when not recorded), but for the
/// latency split's (`super::ksplit::fill`).
pub fn fill(row: &mut SummaryRow, k: &KernelTrace) {
    let k = match k {
        KernelTrace::Off => return,
        KernelTrace::Unavailable(_) => {
            row.kernel_trace = "unavailable".into();
            return;
        }
        KernelTrace::Recorded(k) => k,
    };
    row.kernel_trace = if k.complete() { "ok" } else { "incomplete" }.into();
    row.kernel_syn_sent = Some(k.syn_sent);
    row.kernel_client_established = Some(k.client_established);
    row.kernel_queued = Some(k.queued);
    row.kernel_client_only = Some(k.client_only);
    row.kernel_never_established = Some(k.never_established);
    row.kernel_not_accepted = k.queued_not_accepted;
    // A kernel without the retransmit tracepoint: those columns absent, not zero.
    if k.recorded(Tp::RetransmitSkb) {
        row.kernel_syn_retransmits = Some(k.syn_retransmits);
        row.kernel_retransmits_per_connection = Some(per_connection(&k.retransmits_per_connection));
        row.kernel_syn_retransmit_waves = Some(waves(k));
    }
    row.kernel_lost_records = Some(k.lost_records);
}

/// What the row's notes must say about the kernel's account, if anything.
pub fn note(k: &KernelTrace) -> Option<String> {
    match k {
        KernelTrace::Off => None,
        KernelTrace::Unavailable(why) => Some(format!("--trace kernel: not recorded: {why}")),
        KernelTrace::Recorded(k) => {
            let mut parts = Vec::new();
            if let Some(short) = k.shortfall() {
                parts.push(format!("{short}: the kernel_* counts may be short"));
            }
            if k.lost_host_wide > 0 {
                parts.push(format!(
                    "{} records of host-wide events (resets, overflow drops) lost: those counts may be short",
                    k.lost_host_wide
                ));
            }
            if k.cut_short {
                parts.push("the kernel trace reached its time limit before the run ended".into());
            }
            for a in &k.absent {
                parts.push(format!("{} not recorded: {}", a.event, a.why));
            }
            (!parts.is_empty()).then(|| format!("--trace kernel: {}", parts.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::account::Wave;
    use crate::kernel::perf::trace::Absent;

    #[test]
    fn an_account_fills_its_columns_and_notes_say_what_is_missing() {
        let k = KernelAccount {
            syn_sent: 20,
            client_established: 20,
            queued: 6,
            client_only: 14,
            queued_not_accepted: Some(0),
            syn_retransmits: 34,
            retransmits_per_connection: vec![3, 0, 17],
            waves: vec![Wave {
                nth: 1,
                connections: 17,
                after_syn_p50_ns: 1_020_000_000,
                after_syn_max_ns: 1_030_000_000,
            }],
            lost_records: 2,
            undelivered: 1,
            absent: vec![Absent {
                event: "skb:kfree_skb".into(),
                why: "no TCP_LISTEN_OVERFLOW".into(),
            }],
            ..KernelAccount::default()
        };
        let kt = KernelTrace::Recorded(Box::new(k));
        let mut row = SummaryRow::default();
        fill(&mut row, &kt);
        assert_eq!(row.kernel_trace, "incomplete");
        assert_eq!(row.kernel_client_only, Some(14));
        assert_eq!(
            row.kernel_retransmits_per_connection.as_deref(),
            Some("0:3;2:17")
        );
        assert_eq!(
            row.kernel_syn_retransmit_waves.as_deref(),
            Some("1:17@1.02s")
        );
        assert_eq!(row.kernel_handshake_p50_ns, None);
        assert_eq!(row.kernel_syn_retransmits, Some(34));
        let n = note(&kt).unwrap();
        assert!(
            n.contains("2 trace records lost or undecoded (1 of them counted by the kernel but never delivered")
                && n.contains("skb:kfree_skb"),
            "{n}"
        );

        // Without the retransmit tracepoint its columns are absent, never zero.
        let lacking = KernelAccount {
            absent: vec![Absent {
                event: "tcp:tcp_retransmit_skb".into(),
                why: "this kernel has no tracepoint tcp:tcp_retransmit_skb".into(),
            }],
            ..KernelAccount::default()
        };
        let kt = KernelTrace::Recorded(Box::new(lacking));
        let mut row = SummaryRow::default();
        fill(&mut row, &kt);
        assert_eq!(row.kernel_trace, "ok");
        assert_eq!(row.kernel_client_only, Some(0));
        assert_eq!(row.kernel_syn_retransmits, None);
        assert_eq!(row.kernel_syn_retransmit_waves, None);
        assert!(note(&kt)
            .unwrap()
            .contains("no tracepoint tcp:tcp_retransmit_skb"));

        let mut row = SummaryRow::default();
        fill(&mut row, &KernelTrace::Off);
        assert_eq!(
            (row.kernel_trace.as_str(), row.kernel_client_only),
            ("", None)
        );
        assert_eq!(note(&KernelTrace::Off), None);
        let un = KernelTrace::Unavailable("not root".into());
        fill(&mut row, &un);
        assert_eq!(row.kernel_trace, "unavailable");
        assert!(note(&un).unwrap().contains("not root"));
    }
}
