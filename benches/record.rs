//! The harness's own cost per accepted connection: two clock reads, one histogram
//! increment, counters and (in sweeps) one peer record — what every engine pays on
//! its hot path on top of accept + close.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use acceptbench::record::Recorder;
use common::clock::mono_ns;

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    let peer: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    // Exactly what an engine does per connection: stamp, decode (elsewhere), stamp, record.
    g.bench_function("accept_with_peers_kept", |b| {
        let mut rec = Recorder::new(true);
        b.iter(|| {
            let accepted = mono_ns();
            let decoded = mono_ns();
            rec.accepted(black_box(peer), accepted, decoded);
            // Keep memory bounded over criterion's many iterations.
            if rec.peers.len() >= 1 << 20 {
                rec.peers.clear();
            }
        })
    });
    g.bench_function("accept_counters_only", |b| {
        let mut rec = Recorder::new(false);
        b.iter(|| {
            let accepted = mono_ns();
            let decoded = mono_ns();
            rec.accepted(black_box(peer), accepted, decoded);
        })
    });
    g.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
