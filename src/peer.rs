//! Peer addresses: kernel `sockaddr` → [`SocketAddr`].
//!
//! Owns the decoding of what `accept(2)`/`IORING_OP_ACCEPT` wrote into a
//! `sockaddr_storage`, and the per-fd peer lookup (`SO_PEERNAME`, `getpeername(2)`)
//! for engines whose accept gives no trustworthy address (multishot accept writes
//! every peer into one buffer).
//! It allocates nothing: it runs once per accepted connection on the hot path.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;

pub use common::sockaddr::{decode as sockaddr_to_socketaddr, unmap_v4, SOCKADDR_STORAGE_LEN};

/// The peer address of connected socket `fd` (`getpeername(2)`).
///
/// Fails with the kernel's errno (e.g. `ENOTCONN` once the peer reset the
/// connection) or `InvalidData` for a family other than IPv4/IPv6.
#[inline]
pub fn getpeername(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data, so all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = SOCKADDR_STORAGE_LEN;
    // SAFETY: `ss` and `len` live on this stack frame for the whole (synchronous) call;
    // the kernel writes at most `len` bytes into `ss`. A bad fd yields an errno.
    let ret = unsafe {
        libc::getpeername(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    sockaddr_to_socketaddr(&ss, len).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "peer of fd {fd} has address family {} (not IPv4/IPv6)",
                ss.ss_family
            ),
        )
    })
}

/// The peer address of accepted socket `fd`, whatever state the connection is in,
/// with one system call: `getsockopt(SO_PEERNAME)`. `ipv6` is the listener's family
/// (an accepted socket has its listener's family).
///
/// Why not `getpeername(2)`: it fails with ENOTCONN once the peer has reset the
/// connection (the socket is then TCP_CLOSE), and load generators close with RST
/// (SO_LINGER 0) to avoid TIME_WAIT — measured here with a closed-loop client, 99% of
/// multishot-accepted sockets were already reset when the acceptor asked. SO_PEERNAME
/// reads the same address without that state check, like `accept(2)` itself does.
/// If SO_PEERNAME fails anyway, `getpeername` is tried for its errno.
#[inline]
pub fn peer_of_accepted(fd: RawFd, ipv6: bool) -> io::Result<SocketAddr> {
    so_peername(fd, ipv6).or_else(|_| getpeername(fd))
}

/// `getsockopt(fd, SOL_SOCKET, SO_PEERNAME)` for a socket of the given family.
///
/// The length must be exactly the family's sockaddr size: the kernel fails with EINVAL
/// when the buffer is longer than the address.
#[inline]
pub fn so_peername(fd: RawFd, ipv6: bool) -> io::Result<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data, so all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = if ipv6 {
        mem::size_of::<libc::sockaddr_in6>()
    } else {
        mem::size_of::<libc::sockaddr_in>()
    } as libc::socklen_t;
    // SAFETY: `ss` and `len` live on this stack frame for the whole (synchronous) call;
    // the kernel writes at most `len` (≤ sizeof(sockaddr_storage)) bytes into `ss`.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERNAME,
            (&mut ss as *mut libc::sockaddr_storage).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    sockaddr_to_socketaddr(&ss, len).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "peer of fd {fd} has address family {} (asked for {})",
                ss.ss_family,
                if ipv6 { "IPv6" } else { "IPv4" }
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn getpeername_matches_client_local_addr() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, accepted_peer) = listener.accept().unwrap();
        let peer = getpeername(server.as_raw_fd()).unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(peer, accepted_peer);
        assert_eq!(peer_of_accepted(server.as_raw_fd(), false).unwrap(), peer);
    }

    #[test]
    fn peer_of_a_reset_connection_comes_from_so_peername() {
        reset_connection_peer("127.0.0.1:0");
        if TcpListener::bind("[::1]:0").is_ok() {
            reset_connection_peer("[::1]:0");
        }
    }

    fn reset_connection_peer(addr: &str) {
        let listener = TcpListener::bind(addr).unwrap();
        let client = socket2::Socket::new(
            socket2::Domain::for_address(listener.local_addr().unwrap()),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        client
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let client_addr = client.local_addr().unwrap().as_socket().unwrap();
        // Close with RST while the connection still waits in the accept queue.
        client.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (server, _) = listener.accept().unwrap();
        let fd = server.as_raw_fd();
        assert_eq!(
            getpeername(fd).unwrap_err().raw_os_error(),
            Some(libc::ENOTCONN)
        );
        let v6 = client_addr.is_ipv6();
        assert_eq!(peer_of_accepted(fd, v6).unwrap(), client_addr);
        assert_eq!(so_peername(fd, v6).unwrap(), client_addr);
        // The wrong family's length is refused, not misread.
        assert!(so_peername(fd, !v6).is_err());
    }

    #[test]
    fn getpeername_on_a_listener_fails_with_enotconn() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = getpeername(listener.as_raw_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
    }
}
