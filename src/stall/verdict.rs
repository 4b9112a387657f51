//! Measured against predicted: where a stall run and its prediction differ by more
//! than 20%, which of the model's assumptions failed. A difference is a finding to
//! state, never a measurement to hide or adjust.

use super::observe::Figures;
use super::Recovery;

/// How far apart a measured and a predicted figure may be and still agree: 20%, or a
/// small absolute slack (a handful of connections, a few bins of time).
const REL: f64 = 0.2;

/// Whether measured `m` and predicted `p` agree within 20% or `slack`.
fn close(m: f64, p: f64, slack: f64) -> bool {
    (m - p).abs() <= slack || (p > 0.0 && (m / p - 1.0).abs() <= REL)
}

/// Recovery as ms (None: not within the window).
pub fn recovery_ms(r: Recovery) -> Option<f64> {
    match r {
        Recovery::At(ns) => Some(ns as f64 / 1e6),
        Recovery::NotWithin(_) => None,
    }
}

/// "agrees", or "differs: <figures apart>; <assumptions that failed>". `armed_assumed`
/// is what the engine could take while stopped; `p.armed_taken` what the model took of
/// the arrivals.
pub fn verdict(m: &Figures, p: &Figures, armed_assumed: u32) -> String {
    let mut apart = Vec::new();
    let count = |name: &str, a: u64, b: u64, apart: &mut Vec<String>| {
        if !close(a as f64, b as f64, 10.0) {
            apart.push(format!("{name} {a} measured vs {b} predicted"));
        }
    };
    if let (Some(a), Some(b)) = (m.dropped, p.dropped) {
        count("SYNs dropped", a, b, &mut apart);
    }
    count(
        "first retry wave",
        m.waves.first().copied().unwrap_or(0),
        p.waves.first().copied().unwrap_or(0),
        &mut apart,
    );
    count("timed out", m.timed_out, p.timed_out, &mut apart);
    count("client-only", m.client_only, p.client_only, &mut apart);
    match (recovery_ms(m.recovery), recovery_ms(p.recovery)) {
        (Some(a), Some(b)) if !close(a, b, 100.0) => apart.push(format!(
            "recovery {a:.0} ms measured vs {b:.0} ms predicted"
        )),
        (None, Some(b)) => apart.push(format!(
            "not recovered measured vs recovery {b:.0} ms predicted"
        )),
        (Some(a), None) => apart.push(format!(
            "recovery {a:.0} ms measured vs not recovered predicted"
        )),
        _ => {}
    }
    if apart.is_empty() {
        return "agrees".into();
    }
    format!(
        "differs: {}; {}",
        apart.join(", "),
        causes(m, p, armed_assumed)
    )
}

/// Which assumptions the measurement contradicts.
fn causes(m: &Figures, p: &Figures, armed_assumed: u32) -> String {
    let mut why = Vec::new();
    if let (Some(t), Some(pt)) = (m.armed_taken, p.armed_taken) {
        // Measured from estimated SYN times: a few connections of slack.
        let slack = (m.arrivals_in_stall as f64 * 0.02).max(5.0);
        if !close(t as f64, pt as f64, slack) {
            why.push(format!(
                "armed operations took {t} connections out of the queue during the stall, the model {pt} (it assumed the engine takes up to {armed_assumed})"
            ));
        }
    }
    if !close(m.client_only as f64, p.client_only as f64, 10.0) {
        why.push(if m.client_only < p.client_only {
            format!(
                "{} connections completed the handshake on the client only (their final ACK met a full queue), the model {}: the acceptor, on its own CPU, took connections out of the queue while a batch of retransmits was being answered (the model lets it act only between batches)",
                m.client_only, p.client_only
            )
        } else {
            format!(
                "{} connections completed the handshake on the client only (their final ACK met a full queue), more than the {} that batches of retransmits beyond the free slots explain",
                m.client_only, p.client_only
            )
        });
    }
    if m.most_held_in_bin > 2 * p.most_held_in_bin.max(m.most_held_in_bin_before) + 5 {
        why.push(format!(
            "the acceptor took connections in batches (up to {} held within 10 ms after the resume, the model's one-at-a-time acceptor {}): while it works through a batch nobody accepts, and the queue refills and overflows (an engine whose accepts run only when the application enters the ring, as with DEFER_TASKRUN, does this under load)",
            m.most_held_in_bin, p.most_held_in_bin
        ));
    }
    if let (Some(d), Some(0)) = (m.dropped_in_stall, p.dropped_in_stall) {
        if d > 0 && p.armed_taken.unwrap_or(0) > 0 {
            why.push(format!(
                "{d} SYNs were dropped while armed operations were taking connections: they run as task work of the stopped thread, which must be woken for each (the model takes them at once)"
            ));
        }
    }
    match (m.empty_after_resume_ms, p.empty_after_resume_ms) {
        (Some(a), Some(b)) if a > b * (1.0 + REL) + 5.0 => why.push(format!(
            "the acceptor took {a:.0} ms to empty the queue after the resume, the model {b:.0} ms (it serves faster in the model)"
        )),
        (None, Some(b)) => why.push(format!(
            "the queue never ran empty after the resume, in the model after {b:.0} ms"
        )),
        _ => {}
    }
    if why.is_empty() {
        "cause not identified (the armed count, client-only connections and the acceptor's drain agree with the model)".into()
    } else {
        why.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Figures {
        Figures {
            arrivals: 3000,
            arrivals_in_stall: 500,
            dropped: Some(491),
            dropped_in_stall: Some(491),
            waves: vec![491, 0, 0],
            held: 3000,
            timed_out: 0,
            client_only: 0,
            armed_taken: Some(0),
            recovery: Recovery::At(0),
            queue_at_resume: 9,
            empty_after_resume_ms: Some(1.0),
            lag_p50_ns: 0,
            lag_p99_ns: 0,
            lag_p999_ns: 0,
            excess_conn_s: 0.0,
            most_held_in_bin: 10,
            most_held_in_bin_before: 10,
        }
    }

    #[test]
    fn within_20_percent_agrees_and_a_difference_names_its_cause() {
        let p = figures();
        let mut m = figures();
        m.dropped = Some(560);
        m.waves[0] = 540;
        assert_eq!(verdict(&m, &p, 0), "agrees");
        m.dropped = Some(250);
        m.waves[0] = 240;
        m.armed_taken = Some(241);
        let v = verdict(&m, &p, 0);
        assert!(
            v.starts_with(
                "differs: SYNs dropped 250 measured vs 491 predicted, first retry wave 240"
            ),
            "{v}"
        );
        assert!(
            v.contains("the model 0 (it assumed the engine takes up to 0)"),
            "{v}"
        );
        assert!(v.contains("armed operations took 241 connections"), "{v}");
        m.armed_taken = Some(0);
        m.recovery = Recovery::NotWithin(5_000_000_000);
        m.empty_after_resume_ms = None;
        let v = verdict(&m, &p, 0);
        assert!(
            v.contains("not recovered measured vs recovery 0 ms predicted"),
            "{v}"
        );
        assert!(v.contains("never ran empty"), "{v}");
        m.empty_after_resume_ms = Some(1.0);
        let v = verdict(&m, &p, 0);
        assert!(v.ends_with("cause not identified (the armed count, client-only connections and the acceptor's drain agree with the model)"), "{v}");
    }
}
