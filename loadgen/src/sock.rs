//! Raw socket calls on the hot path: create, set up (linger, timeouts, source bind),
//! connect, read local address, close. Plain libc so each connection costs exactly the
//! system calls it needs and nothing allocates. Errors are positive errnos: the caller
//! classifies them into outcomes, they are not failures of the run.

use std::mem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;
use std::time::Duration;

/// A socket address in the kernel's layout.
#[derive(Clone, Copy)]
pub(crate) struct RawAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl RawAddr {
    pub fn new(addr: &SocketAddr) -> RawAddr {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid (AF_UNSPEC) value.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }

    pub fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    /// Decodes back to a `SocketAddr` (unspecified:0 for an unknown family), with the
    /// decoder the acceptor uses for peers, so the sweep's join compares like with like.
    pub fn to_socket_addr(self) -> SocketAddr {
        common::sockaddr::decode(&self.storage, self.len)
            .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }
}

/// How every socket of a run is set up before connect.
#[derive(Clone, Copy)]
pub(crate) struct SocketSetup {
    pub family: libc::c_int,
    pub nonblocking: bool,
    /// SO_LINGER {1,0}: close() sends RST.
    pub linger0: bool,
    /// SO_SNDTIMEO (bounds a blocking connect) and SO_RCVTIMEO (bounds a blocking read).
    pub blocking_timeout: Option<Duration>,
    /// Also set SO_RCVTIMEO to this (blocking --wait-close: the serve timeout).
    pub read_timeout: Option<Duration>,
}

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> Result<(), i32> {
    // SAFETY: `value` points to a live T of the given size for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Creates a TCP socket set up per `setup`, bound to `source` (port chosen at connect) if given.
pub(crate) fn new_socket(setup: &SocketSetup, source: Option<IpAddr>) -> Result<RawFd, i32> {
    let ty = libc::SOCK_STREAM
        | libc::SOCK_CLOEXEC
        | if setup.nonblocking {
            libc::SOCK_NONBLOCK
        } else {
            0
        };
    // SAFETY: plain system call with constant arguments.
    let fd = unsafe { libc::socket(setup.family, ty, 0) };
    if fd < 0 {
        return Err(errno());
    }
    match configure(fd, setup, source) {
        Ok(()) => Ok(fd),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

fn configure(fd: RawFd, setup: &SocketSetup, source: Option<IpAddr>) -> Result<(), i32> {
    if setup.linger0 {
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, &LINGER0)?;
    }
    if let Some(t) = setup.blocking_timeout {
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: t.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)?;
        if let Some(r) = setup.read_timeout {
            let tv = libc::timeval {
                tv_sec: r.as_secs() as libc::time_t,
                tv_usec: r.subsec_micros() as libc::suseconds_t,
            };
            setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        }
    }
    if let Some(ip) = source {
        bind_source(fd, ip)?;
    }
    Ok(())
}

/// SO_LINGER {1, 0}: close() sends RST and leaves no TIME_WAIT. Static so that an
/// in-ring setsockopt can point at it for as long as the ring runs.
pub(crate) static LINGER0: libc::linger = libc::linger {
    l_onoff: 1,
    l_linger: 0,
};

/// Binds `fd` to `ip` with the port left to connect (IP_BIND_ADDRESS_NO_PORT).
pub(crate) fn bind_source(fd: RawFd, ip: IpAddr) -> Result<(), i32> {
    setsockopt(
        fd,
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        &1 as &libc::c_int,
    )?;
    let addr = RawAddr::new(&SocketAddr::new(ip, 0));
    // SAFETY: addr is a valid sockaddr of addr.len bytes, alive for the call.
    if unsafe { libc::bind(fd, addr.as_ptr(), addr.len) } != 0 {
        return Err(errno());
    }
    Ok(())
}

/// connect(2); Ok on success, Err(errno) otherwise (EINPROGRESS for a non-blocking start).
pub(crate) fn connect(fd: RawFd, target: &RawAddr) -> Result<(), i32> {
    // SAFETY: target is a valid sockaddr of target.len bytes, alive for the call.
    if unsafe { libc::connect(fd, target.as_ptr(), target.len) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// Pending error of a socket (SO_ERROR), 0 if none.
pub(crate) fn so_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: err and len are live and sized as the kernel expects for SO_ERROR.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut err as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    if r == 0 {
        err
    } else {
        errno()
    }
}

/// Local address of a socket (unspecified:0 if it has none).
pub(crate) fn local_addr(fd: RawFd) -> SocketAddr {
    // SAFETY: zeroed sockaddr_storage is valid; getsockname writes at most `len` bytes into it.
    let mut raw = RawAddr {
        storage: unsafe { mem::zeroed() },
        len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
    };
    // SAFETY: as above; storage and len outlive the call.
    let r = unsafe {
        libc::getsockname(
            fd,
            &mut raw.storage as *mut _ as *mut libc::sockaddr,
            &mut raw.len,
        )
    };
    if r != 0 {
        return SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    }
    raw.to_socket_addr()
}

/// One read(2) into a discard buffer: bytes read (0 = the peer closed) or errno.
pub(crate) fn read_once(fd: RawFd) -> Result<usize, i32> {
    let mut buf = [0u8; 512];
    for _ in 0..64 {
        // SAFETY: buf is a live, writable buffer of buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
    Err(libc::EINTR)
}

/// Sends all of `bytes` (a request small enough for a fresh socket's send buffer) with
/// one send(2); a short send is EMSGSIZE. No SIGPIPE.
pub(crate) fn send_all(fd: RawFd, bytes: &[u8]) -> Result<(), i32> {
    for _ in 0..64 {
        // SAFETY: bytes is a live buffer of bytes.len() bytes, only read.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return if n as usize == bytes.len() {
                Ok(())
            } else {
                Err(libc::EMSGSIZE)
            };
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(e);
        }
    }
    Err(libc::EINTR)
}

/// close(2); errors are ignored (the descriptor is gone either way on Linux).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: fd is a descriptor this worker opened and has not closed yet.
    unsafe { libc::close(fd) };
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit in force.
pub(crate) fn raise_nofile_limit() -> u64 {
    // SAFETY: rlimit is plain data; getrlimit/setrlimit only read/write it.
    unsafe {
        let mut rl: libc::rlimit = mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}
