//! The cost of peer extraction alone: decoding the sockaddr an accept returned (the
//! engines' own function), and `getpeername(2)` on a live socket — the extra
//! syscall the multishot engine pays per connection.

use std::hint::black_box;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use criterion::{criterion_group, criterion_main, Criterion};

use acceptbench::peer::{getpeername, sockaddr_to_socketaddr};

fn storage_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let sa = socket2::SockAddr::from(addr);
    // SAFETY: sockaddr_storage is plain data; we copy exactly `sa.len()` bytes of a
    // valid socket address into it.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
            sa.len() as usize,
        );
        (ss, sa.len())
    }
}

fn peer(c: &mut Criterion) {
    let mut g = c.benchmark_group("peer");
    let (v4, v4_len) = storage_of("127.0.0.2:40000".parse().unwrap());
    g.bench_function("decode_ipv4", |b| {
        b.iter(|| sockaddr_to_socketaddr(black_box(&v4), black_box(v4_len)))
    });
    let (v6, v6_len) = storage_of("[2001:db8::1]:40000".parse().unwrap());
    g.bench_function("decode_ipv6", |b| {
        b.iter(|| sockaddr_to_socketaddr(black_box(&v6), black_box(v6_len)))
    });
    match TcpListener::bind("127.0.0.1:0").and_then(|l| {
        let client = TcpStream::connect(l.local_addr()?)?;
        let (server, _) = l.accept()?;
        Ok((client, server))
    }) {
        Ok((_client, server)) => {
            let fd = server.as_raw_fd();
            g.bench_function("getpeername", |b| b.iter(|| getpeername(black_box(fd))));
        }
        Err(e) => eprintln!("peer/getpeername skipped: no loopback connection ({e})"),
    }
    g.finish();
}

criterion_group!(benches, peer);
criterion_main!(benches);
