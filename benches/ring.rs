//! Ring ablation: what each io_uring step buys on a pre-filled accept queue.
//!
//! `cargo bench --bench ring` fills the accept queue (backlog 4096) with K = 4000
//! connections the client has already reset (SO_LINGER 0, as the C reference
//! `ring_peer` does), then one variant drains it, every peer read; repeated in
//! interleaved rounds (variant order rotated each round). Per variant: the drain rate
//! timed from the release of the engine (just before `run`) to the moment the last
//! peer is held (fair to multishot accepts that work before their first completion is
//! seen, and to uring-linked, which holds a peer one CQE after its accept), and the
//! acceptor thread's wall and CPU µs per connection over the whole `run`, which
//! includes the stop's cancel and reap: with DEFER_TASKRUN the linked closes run only
//! when the thread next waits, so much of the closing happens after the last peer is
//! held (the C reference's in-window CPU leaves that work out). Medians.
//!
//! Variants: std; multishot with the default ring and with DEFER_TASKRUN; uring-linked
//! with the default ring, with DEFER_TASKRUN, and with DEFER_TASKRUN + direct
//! descriptors. Not criterion: the untimed fill takes ten times the measured drain, and
//! criterion's iteration model would repeat it hundreds of times. `ROUNDS=n` (default 5).
//! The acceptor is pinned to CPU 0. Variants the kernel lacks are skipped with the
//! reason.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use acceptbench::engine::{self, EngineKind, EngineOptions, Limits, RingSetup, StopFlag};
use acceptbench::listener::{Listener, ListenerSpec};
use acceptbench::record::Recorder;
use common::clock::mono_ns;

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

/// One drain: (connections per second from release to the last peer held, wall µs per
/// connection of the whole run, CPU µs per connection of the whole run).
fn drain(acceptor: &mut dyn engine::Acceptor, l: &Listener) -> (f64, f64, f64) {
    let mut rec = Recorder::new(true);
    let limits = Limits {
        count: Some(K),
        deadline: Some(Instant::now() + Duration::from_secs(10)),
        stop: StopFlag::new(),
    };
    let cpu0 = common::affinity::thread_cpu_total_s();
    let released = mono_ns();
    acceptor.run(l, &limits, &mut rec).expect("engine run");
    let cpu = common::affinity::thread_cpu_total_s() - cpu0;
    let run_wall_ns = mono_ns() - released;
    assert_eq!(rec.accepted, K, "every queued connection accepted");
    // The drain ends when the last peer is held (uring-linked holds it a getsockopt CQE
    // after the accept CQE), as in the C reference.
    let held = rec
        .peers
        .iter()
        .map(|p| p.decoded_ns)
        .max()
        .unwrap_or(released);
    let span_s = held.saturating_sub(released) as f64 * 1e-9;
    let per = |x: f64| x / K as f64;
    (
        K as f64 / span_s,
        per(run_wall_ns as f64 * 1e-3),
        per(cpu * 1e6),
    )
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
            Ok(a) => runs.push((v, a, Vec::new(), Vec::new(), Vec::new())),
            Err(e) => eprintln!("ring bench: {} skipped: {e}", v.name),
        }
    }
    for round in 0..rounds {
        let n = runs.len();
        for k in 0..n {
            let (_, acceptor, rates, walls, cpus) = &mut runs[(round + k) % n];
            fill(l.local_addr);
            let (rate, wall_us, cpu_us) = drain(acceptor.as_mut(), &l);
            rates.push(rate);
            walls.push(wall_us);
            cpus.push(cpu_us);
        }
    }
    println!("ring drain: {K} reset connections pre-queued, backlog 4096, {rounds} interleaved rounds, medians");
    println!("| variant | ring setup applied | drain conn/s (release → last peer held) | whole run µs/conn (wall) | whole run CPU µs/conn |");
    println!("|---|---|---:|---:|---:|");
    for (v, a, rates, walls, cpus) in &mut runs {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} |",
            v.name,
            a.ring_setup_applied().unwrap_or_else(|| "-".into()),
            median(rates),
            median(walls),
            median(cpus)
        );
    }
}
