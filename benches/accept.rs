//! Which accept is fastest, and what does it cost.
//!
//! Every batch is timed the way the sweep times a run
//! ([`acceptbench::timing::timed_run`]): from the instant the acceptor is
//! released (just before its first accept call or submit) to its last connection
//! done, the later of its last peer held and its last close completed — never from
//! the first accept the application sees, which would leave out the batch a
//! multishot accept takes before its first completion arrives, and never to the last
//! peer held, which would leave out closes uring-linked completes after it.
//!
//! `accept/<backlog>/<engine>`: K connections made concurrently by loadgen's library
//! (closed loop, on its own thread pinned to another CPU); the acceptor is released
//! when the first connection is in the queue. On a 2-core machine this is
//! client-bound (see docs/measurements.md): engines come out close together.
//!
//! `accept_drain/<engine>`: the acceptor alone — K connections are queued first
//! (backlog 4096), then the engine is released and drains them back to back. This
//! is the server-bound rate that separates engines.
//!
//! Engines the kernel lacks are skipped with a printed reason.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use acceptbench::engine::{self, Acceptor, EngineKind, EngineOptions, Limits, StopFlag};
use acceptbench::kernel::probe;
use acceptbench::listener::{Listener, ListenerSpec};
use acceptbench::record::Recorder;
use acceptbench::timing::timed_run;

const K: u64 = 1000;
const SERVER_CPU: usize = 0;
const CLIENT_CPU: usize = 1;

fn supported_engines() -> Vec<EngineKind> {
    let p = probe::probe_uring();
    EngineKind::ALL
        .into_iter()
        .filter(|&k| {
            let s = acceptbench::engine::engine_support(k, &p);
            if !s.supported {
                eprintln!("accept bench: engine {k} skipped: {}", s.reason);
            }
            s.supported
        })
        .collect()
}

fn listener(backlog: u32) -> Listener {
    Listener::bind(&ListenerSpec {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        backlog,
        reuse_port: false,
        dual_stack: false,
    })
    .expect("a loopback listener")
}

/// Releases the acceptor until `n` more connections arrived or `stop` is raised;
/// returns how many were accepted and the time from release to the last connection
/// done, scaled to `n`.
fn accept_batch(
    acceptor: &mut dyn Acceptor,
    l: &Listener,
    rec: &mut Recorder,
    n: u64,
    stop: &StopFlag,
) -> (u64, Duration) {
    let limits = Limits {
        count: Some(rec.accepted + n),
        deadline: Some(Instant::now() + Duration::from_secs(60)),
        stop: stop.clone(),
    };
    let t = timed_run(acceptor, l, &limits, rec);
    t.result.as_ref().expect("engine run");
    if t.accepted == 0 {
        return (0, Duration::ZERO);
    }
    let span = Duration::from_nanos(t.span_ns());
    (t.accepted, span.mul_f64(n as f64 / t.accepted as f64))
}

fn client_config(target: SocketAddr) -> loadgen::Config {
    let mut cfg = loadgen::Config::new(target);
    cfg.connections = Some(K);
    cfg.duration = None;
    cfg.cpus = vec![CLIENT_CPU];
    cfg
}

/// One batch: loadgen connects K times on its own thread while the engine accepts.
fn concurrent_batch(acceptor: &mut dyn Acceptor, l: &Listener, cfg: &loadgen::Config) -> Duration {
    let mut rec = Recorder::new(true);
    let stop = StopFlag::new();
    std::thread::scope(|s| {
        let client = s.spawn(|| {
            let report = loadgen::run(cfg, &AtomicBool::new(false));
            // A small backlog can overflow: a connection the client saw established may
            // never reach the queue (its final ACK was dropped). Stop once the queue is
            // empty instead of waiting for it.
            let end = Instant::now() + Duration::from_secs(5);
            while l.queue_info().is_ok_and(|q| q.depth > 0) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(20));
            stop.raise();
            report
        });
        // Released once the client's first connection is in the queue.
        let end = Instant::now() + Duration::from_secs(1);
        while l.queue_info().is_ok_and(|q| q.depth == 0) && Instant::now() < end {
            std::hint::spin_loop();
        }
        let (got, t) = accept_batch(acceptor, l, &mut rec, K, &stop);
        let report = client.join().expect("client thread").expect("loadgen run");
        assert!(
            got <= report.established,
            "accepted {got} > established {}",
            report.established
        );
        t
    })
}

fn accept(c: &mut Criterion) {
    let _ = common::affinity::pin_current_thread(SERVER_CPU);
    let engines = supported_engines();
    let mut g = c.benchmark_group("accept");
    g.throughput(Throughput::Elements(K));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    for backlog in [16u32, 128, 4096] {
        for &kind in &engines {
            let l = listener(backlog);
            let mut acceptor =
                engine::build(kind, &EngineOptions::default()).expect("supported engine");
            let cfg = client_config(l.local_addr);
            g.bench_function(BenchmarkId::new(backlog.to_string(), kind), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| concurrent_batch(acceptor.as_mut(), &l, &cfg))
                        .sum()
                })
            });
        }
    }
    g.finish();
}

fn accept_drain(c: &mut Criterion) {
    let _ = common::affinity::pin_current_thread(SERVER_CPU);
    let engines = supported_engines();
    let mut g = c.benchmark_group("accept_drain");
    g.throughput(Throughput::Elements(K));
    g.sample_size(20);
    for &kind in &engines {
        let l = listener(4096);
        let mut acceptor =
            engine::build(kind, &EngineOptions::default()).expect("supported engine");
        g.bench_function(BenchmarkId::from_parameter(kind), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Fill the queue (not timed): K connections wait in it, already reset
                    // by the client (linger 0), as in the sweep's drain mode.
                    for _ in 0..K {
                        let s = TcpStream::connect(l.local_addr).expect("connect");
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    }
                    let mut rec = Recorder::new(true);
                    let (got, t) =
                        accept_batch(acceptor.as_mut(), &l, &mut rec, K, &StopFlag::new());
                    assert_eq!(got, K);
                    total += t;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, accept, accept_drain);
criterion_main!(benches);
