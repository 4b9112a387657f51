//! Listeners loadgen did not write, for the integration tests (loopback only).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loadgen::{Config, Mode};

/// A plain `std::net::TcpListener` accept loop on 127.0.0.1 (backlog 128, std's default)
/// that accepts and drops every connection, counting them.
pub struct AcceptLoop {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl AcceptLoop {
    pub fn start() -> Self {
        // A plain std accept loop, but with a deep queue: std's own listen backlog can
        // overflow under a closed-loop burst when this thread falls behind (other tests
        // run in parallel), and an overflow drops connections the client believes are
        // established — that would be the kernel's doing, not a counting error.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind 127.0.0.1:0");
        socket.listen(4096).expect("listen");
        let listener: TcpListener = socket.into();
        let addr = listener.local_addr().expect("local_addr");
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if conn.is_ok() {
                    a.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        AcceptLoop {
            addr,
            accepted,
            stop,
            handle: Some(handle),
        }
    }

    /// Waits (up to 3 s) until `n` connections were accepted; returns the count.
    pub fn wait_for(&self, n: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.accepted.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A closed-loop config making exactly `n` connections to `target`.
pub fn closed(target: SocketAddr, n: u64) -> Config {
    let mut c = Config::new(target);
    c.mode = Mode::Closed;
    c.connections = Some(n);
    c.duration = None;
    c.connect_timeout = Duration::from_secs(2);
    c
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("local_addr");
    drop(l);
    a
}
