//! The listening socket every engine shares: one function, explicit backlog.
//!
//! std, tokio and mio hard-code a backlog of 128 and tokio-uring 1024; acceptbench
//! never relies on those. `listen(2)` silently clamps the backlog to
//! `net.core.somaxconn` (per network namespace), so after listening we read the
//! limit the kernel actually applied back from `TCP_INFO` on the listener, where
//! `tcpi_sacked` carries `sk_max_ack_backlog` and `tcpi_unacked` the current accept
//! queue length (Linux ≥ 2.6.x for listeners; same numbers `ss -ltn` shows as Send-Q
//! and Recv-Q).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

use crate::kernel::sysctl;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Address to bind; the family (IPv4/IPv6) follows from it. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// The backlog passed to `listen(2)`.
    pub backlog: u32,
    /// Set SO_REUSEPORT (several listeners on one port, one per acceptor thread).
    pub reuse_port: bool,
    /// IPv6 addresses only: also accept IPv4 clients (IPV6_V6ONLY off). Their peers
    /// arrive as IPv4-mapped `::ffff:a.b.c.d` and are reported as plain IPv4 (see
    /// [`crate::peer`]). Off by default: a listener on `[::]` takes IPv6 only,
    /// whatever the host's `net.ipv6.bindv6only` says.
    pub dual_stack: bool,
}

/// Why the listener could not be made. Each message names the value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Something else holds the address.
    #[error("address {addr} is in use: stop the program holding it (`ss -ltnp 'sport = :{port}'`) or pick another port (port 0 picks a free one)", port = addr.port())]
    AddrInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The address is not on this machine.
    #[error("address {addr} is not available on this machine: bind a local address such as 127.0.0.1, ::1 or 0.0.0.0")]
    AddrNotAvailable {
        /// The address.
        addr: SocketAddr,
    },
    /// A backlog of 0 is legal for the kernel but means "one connection"; almost certainly a mistake.
    #[error("backlog must be at least 1 (got 0)")]
    ZeroBacklog,
    /// Binding a privileged port without the right to.
    #[error("binding {addr} needs privileges: use a port above 1023 or run as root")]
    PermissionDenied {
        /// The address.
        addr: SocketAddr,
    },
    /// Dual stack asked for on an IPv4 address.
    #[error("--dual-stack needs an IPv6 address such as [::]:{port} (got {addr}); an IPv4 listener takes IPv4 only", port = addr.port())]
    DualStackNeedsIpv6 {
        /// The address.
        addr: SocketAddr,
    },
    /// Any other failure.
    #[error("{what} on {addr}: {source}")]
    Io {
        /// The call that failed.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
}

/// A bound, listening socket and the backlog it really got.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    /// The bound address (the real port when port 0 was asked for).
    pub local_addr: SocketAddr,
    /// The backlog passed to `listen(2)`.
    pub backlog_requested: u32,
    /// The accept-queue limit the kernel applied (`sk_max_ack_backlog`); the queue holds
    /// one more than this, because the kernel tests `len > max`, not `len >= max`.
    pub backlog_effective: u32,
    /// `net.core.somaxconn` of this network namespace when the socket was made, if readable.
    pub somaxconn: Option<u32>,
}

/// Accept-queue figures of a listener, read from `TCP_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueInfo {
    /// Connections waiting in the accept queue now.
    pub depth: u32,
    /// The queue's limit (`sk_max_ack_backlog`).
    pub limit: u32,
}

impl Listener {
    /// Makes the socket: family from the address, SO_REUSEADDR, optional SO_REUSEPORT,
    /// bind, `listen(backlog)`, then reads back the backlog the kernel applied.
    pub fn bind(spec: &ListenerSpec) -> Result<Listener, ListenerError> {
        if spec.backlog == 0 {
            return Err(ListenerError::ZeroBacklog);
        }
        let addr = spec.addr;
        if spec.dual_stack && !addr.is_ipv6() {
            return Err(ListenerError::DualStackNeedsIpv6 { addr });
        }
        let io_err =
            |what: &'static str| move |source: io::Error| ListenerError::Io { what, addr, source };
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(io_err("socket"))?;
        socket
            .set_reuse_address(true)
            .map_err(io_err("SO_REUSEADDR"))?;
        if spec.reuse_port {
            socket
                .set_reuse_port(true)
                .map_err(io_err("SO_REUSEPORT"))?;
        }
        if addr.is_ipv6() {
            // Set either way: the host default (net.ipv6.bindv6only) may be either, and a
            // v6 listener on :: should not silently also take v4 unless asked to.
            socket
                .set_only_v6(!spec.dual_stack)
                .map_err(io_err("IPV6_V6ONLY"))?;
        }
        socket.bind(&addr.into()).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => ListenerError::AddrInUse { addr },
            io::ErrorKind::AddrNotAvailable => ListenerError::AddrNotAvailable { addr },
            io::ErrorKind::PermissionDenied => ListenerError::PermissionDenied { addr },
            _ => ListenerError::Io {
                what: "bind",
                addr,
                source: e,
            },
        })?;
        // listen() takes an int; anything above i32::MAX is clamped by somaxconn anyway.
        let backlog = i32::try_from(spec.backlog).unwrap_or(i32::MAX);
        socket.listen(backlog).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => ListenerError::AddrInUse { addr },
            _ => ListenerError::Io {
                what: "listen",
                addr,
                source: e,
            },
        })?;
        let local_addr = socket
            .local_addr()
            .map_err(io_err("getsockname"))?
            .as_socket()
            .unwrap_or(addr);
        let somaxconn = sysctl::read_u64("net.core.somaxconn")
            .ok()
            .map(|v| v.min(u32::MAX as u64) as u32);
        let mut listener = Listener {
            socket,
            local_addr,
            backlog_requested: spec.backlog,
            backlog_effective: spec.backlog,
            somaxconn,
        };
        listener.backlog_effective = match listener.queue_info() {
            Ok(q) => q.limit,
            // TCP_INFO always works on a TCP listener; fall back to the documented clamp.
            Err(_) => somaxconn.map_or(spec.backlog, |m| spec.backlog.min(m)),
        };
        Ok(listener)
    }

    /// True when the kernel applied a smaller backlog than requested (somaxconn clamp).
    pub fn is_clamped(&self) -> bool {
        self.backlog_effective < self.backlog_requested
    }

    /// The underlying socket (engines set blocking mode or wrap a duplicate of it).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Current accept-queue depth and limit, from `TCP_INFO` on the listener.
    pub fn queue_info(&self) -> io::Result<QueueInfo> {
        queue_info(self.socket.as_raw_fd())
    }

    /// Puts the listener's file description in the blocking mode an engine relies on
    /// (`nonblocking` true sets O_NONBLOCK, false clears it) until the returned guard is
    /// restored or dropped, which puts back the mode found. The flag belongs to the
    /// file description, so it is shared with every dup of the fd and every engine that
    /// runs on this listener later: each engine sets what it needs and leaves what it
    /// found. every engine calls this first thing in `run` (the io_uring ones too,
    /// although an armed io_uring accept waits for a connection in either mode).
    pub fn set_blocking_mode(&self, nonblocking: bool) -> io::Result<BlockingModeGuard<'_>> {
        let was_nonblocking = self.socket.nonblocking()?;
        if was_nonblocking != nonblocking {
            self.socket.set_nonblocking(nonblocking)?;
        }
        Ok(BlockingModeGuard {
            socket: &self.socket,
            was_nonblocking,
            restored: false,
        })
    }
}

/// The listener's previous blocking mode, put back by [`BlockingModeGuard::restore`]
/// (which reports a failure) or, failing that, on drop (which cannot).
#[derive(Debug)]
#[must_use = "dropping the guard at once restores the previous mode at once"]
pub struct BlockingModeGuard<'a> {
    socket: &'a Socket,
    was_nonblocking: bool,
    restored: bool,
}

impl BlockingModeGuard<'_> {
    /// True when the listener was O_NONBLOCK before the guard was made.
    pub fn was_nonblocking(&self) -> bool {
        self.was_nonblocking
    }

    /// Puts the previous mode back now.
    pub fn restore(mut self) -> io::Result<()> {
        self.restored = true;
        self.put_back()
    }

    fn put_back(&self) -> io::Result<()> {
        if self.socket.nonblocking()? != self.was_nonblocking {
            self.socket.set_nonblocking(self.was_nonblocking)?;
        }
        Ok(())
    }
}

impl Drop for BlockingModeGuard<'_> {
    fn drop(&mut self) {
        if !self.restored {
            // An early return already carries the error that caused it; a failure to
            // restore (fcntl on a valid fd does not fail) would only hide it.
            let _ = self.put_back();
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Accept-queue depth and limit of any listening TCP socket `fd`, from `TCP_INFO`.
pub fn queue_info(fd: RawFd) -> io::Result<QueueInfo> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes into it and
    // `len` is its size. An invalid fd yields an error, not undefined behaviour.
    let (ret, info) = unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let ret = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (ret, info)
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    if info.tcpi_state != TCP_LISTEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket is not listening",
        ));
    }
    Ok(QueueInfo {
        depth: info.tcpi_unacked,
        limit: info.tcpi_sacked,
    })
}

/// `TCP_LISTEN` from the kernel's `enum tcp_state` (not exported by the libc crate for Linux).
const TCP_LISTEN: u8 = 10;
