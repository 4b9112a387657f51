//! Ring ablation: what each io_uring step buys on a pre-filled accept queue.
//!
//! `cargo bench --bench ring` fills the accept queue (backlog 4096) with K = 4000
//! connections the client has already reset (SO_LINGER 0, as the C reference
//! `ring_peer` does), then one variant drains it, every peer read; repeated in
//! interleaved rounds (variant order rotated each round). Per variant, both end points
//! of the drain, timed from the release of the engine (just before `run`, fair to
//! multishot accepts that work before their first completion is seen) with
//! [`acceptbench::timing::timed_run`]: to the last close completed (a connection is
//! done when it is closed — the drain rate) and to the last peer held (how soon every
//! client is known; with DEFER_TASKRUN uring-linked's linked closes complete mostly
//! after it, as ring_peer's `rate` against `rate_closed`). CPU µs per connection over
//! the window that ends at the last close (as ring_peer's `cpu_us_per`), and over the
//! whole `run`, which adds the stop's cancel and reap. Medians.
//!
//! Variants: std; multishot with the default ring and with DEFER_TASKRUN; uring-linked
//! with the default ring, with DEFER_TASKRUN, and with DEFER_TASKRUN + direct
//! descriptors (single-shot accepts, no more armed than free table entries). Not criterion: the untimed fill takes ten times the measured drain, and
//! criterion's iteration model would repeat it hundreds of times. `ROUNDS=n` (default 5).
//! The acceptor is pinned to CPU 0. Variants the kernel lacks are skipped with the
//! reason.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use acceptbench::engine::{self, EngineKind, EngineOptions, Limits, RingSetup, StopFlag};
use acceptbench::listener::{Listener, ListenerSpec};
use acceptbench::record::Recorder;
use acceptbench::timing::timed_run;

const K: u64 = 4000;

struct Variant {
    name: &'static str,
    kind: EngineKind,
    opts: EngineOptions,
}

fn variants() -> Vec<Variant> {
    let o = |ring_setup, direct| EngineOptions {
        ring_setup,
        direct,
        ..EngineOptions::default()
    };
    vec![
        Variant {
            name: "std",
            kind: EngineKind::Std,
            opts: o(None, false),
        },
        Variant {
            name: "multishot default",
            kind: EngineKind::Multishot,
            opts: o(Some(RingSetup::Default), false),
        },
        Variant {
            name: "multishot defer",
            kind: EngineKind::Multishot,
            opts: o(Some(RingSetup::Defer), false),
        },
        Variant {
            name: "uring-linked default",
            kind: EngineKind::UringLinked,
            opts: o(Some(RingSetup::Default), false),
        },
        Variant {
            name: "uring-linked defer",
            kind: EngineKind::UringLinked,
            opts: o(Some(RingSetup::Defer), false),
        },
        Variant {
            name: "uring-linked defer direct",
            kind: EngineKind::UringLinked,
            opts: o(Some(RingSetup::Defer), true),
        },
    ]
}

/// Queues K connections the client has reset (not timed).
fn fill(addr: SocketAddr) {
    for _ in 0..K {
        let s = TcpStream::connect(addr).expect("connect on loopback");
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    }
}

/// One drain's figures.
struct Drain {
    /// Connections per second, release → last close.
    closed_per_s: f64,
    /// Connections per second, release → last peer held.
    held_per_s: f64,
    /// CPU µs per connection over release → last close.
    window_cpu_us: f64,
    /// CPU µs per connection over the whole run (the stop's cancel and reap included).
    run_cpu_us: f64,
}

fn drain(acceptor: &mut dyn engine::Acceptor, l: &Listener) -> Drain {
    let mut rec = Recorder::new(true);
    let limits = Limits {
        count: Some(K),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        stop: StopFlag::new(),
    };
    let cpu0 = common::affinity::thread_cpu_total_s();
    let t = timed_run(acceptor, l, &limits, &mut rec);
    let run_cpu = common::affinity::thread_cpu_total_s() - cpu0;
    t.result.as_ref().expect("engine run");
    assert_eq!(t.accepted, K, "every queued connection accepted");
    assert_eq!(t.closed, K, "every accepted connection closed");
    let per_s = |ns: u64| K as f64 / (ns as f64 * 1e-9);
    Drain {
        closed_per_s: per_s(t.span_ns()),
        held_per_s: per_s(t.peer_span_ns()),
        window_cpu_us: t.cpu_s * 1e6 / K as f64,
        run_cpu_us: run_cpu * 1e6 / K as f64,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it too: do one quick round.
    let testing = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = if testing {
        1
    } else {
        std::env::var("ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(5)
    };
    let _ = common::affinity::pin_current_thread(0);
    let l = Listener::bind(&ListenerSpec {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        backlog: 4096,
        reuse_port: false,
        dual_stack: false,
    })
    .expect("a loopback listener");
    let mut runs = Vec::new();
    for v in variants() {
        match engine::build(v.kind, &v.opts) {
            Ok(a) => runs.push((v, a, Vec::new())),
            Err(e) => eprintln!("ring bench: {} skipped: {e}", v.name),
        }
    }
    for round in 0..rounds {
        let n = runs.len();
        for k in 0..n {
            let (_, acceptor, drains) = &mut runs[(round + k) % n];
            fill(l.local_addr);
            drains.push(drain(acceptor.as_mut(), &l));
        }
    }
    let std_rates = runs.iter().find(|r| r.0.kind == EngineKind::Std).map(|r| {
        r.2.iter()
            .map(|d| (d.closed_per_s, d.held_per_s))
            .collect::<Vec<_>>()
    });
    println!("ring drain: {K} reset connections pre-queued, backlog 4096, {rounds} interleaved rounds, medians (× std: median of the same-round ratios)");
    println!("| variant | ring setup applied | conn/s to last close | × std | conn/s to last peer held | × std | CPU µs/conn to last close | CPU µs/conn whole run |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (v, a, drains) in &mut runs {
        let col = |f: &dyn Fn(&Drain) -> f64| median(&mut drains.iter().map(f).collect::<Vec<_>>());
        let ratio = |pick: &dyn Fn(&Drain) -> f64, std_pick: &dyn Fn(&(f64, f64)) -> f64| {
            std_rates.as_ref().map_or("-".to_string(), |s| {
                let mut r: Vec<f64> = drains
                    .iter()
                    .zip(s)
                    .map(|(d, s)| pick(d) / std_pick(s))
                    .collect();
                format!("{:.2}", median(&mut r))
            })
        };
        println!(
            "| {} | {} | {:.0} | {} | {:.0} | {} | {:.2} | {:.2} |",
            v.name,
            a.ring_setup_applied().unwrap_or_else(|| "-".into()),
            col(&|d| d.closed_per_s),
            ratio(&|d| d.closed_per_s, &|s| s.0),
            col(&|d| d.held_per_s),
            ratio(&|d| d.held_per_s, &|s| s.1),
            col(&|d| d.window_cpu_us),
            col(&|d| d.run_cpu_us),
        );
    }
}
