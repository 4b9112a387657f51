//! Peer addresses: kernel `sockaddr` → [`SocketAddr`].
//!
//! Owns the decoding of what `accept(2)`/`IORING_OP_ACCEPT` wrote into a
//! `sockaddr_storage`, and the per-fd peer lookup (`SO_PEERNAME`, `getpeername(2)`)
//! for engines whose accept gives no trustworthy address (multishot accept writes
//! every peer into one buffer).
//! It allocates nothing: it runs once per accepted connection on the hot path.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// `sizeof(struct sockaddr_storage)`, the length to pass to `accept`/`getpeername`.
pub const SOCKADDR_STORAGE_LEN: libc::socklen_t =
    mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// Decodes an IPv4 or IPv6 address the kernel wrote into `ss`, `len` bytes long.
///
/// Returns `None` for another family or a length too short for the family's
/// struct (the kernel truncates to the buffer it was given, so a short length means
/// the address is incomplete).
#[inline]
pub fn sockaddr_to_socketaddr(
    ss: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match ss.ss_family as libc::c_int {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, `len` covers it,
            // and sockaddr_storage is at least as large and as aligned as sockaddr_in.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(unmap_v4(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            ))))
        }
        _ => None,
    }
}

/// An IPv4-mapped IPv6 peer (`[::ffff:127.0.0.1]:port`, what a dual-stack listener
/// sees for an IPv4 client) as the plain IPv4 address it is (`127.0.0.1:port`), the
/// form the client itself reports as its local address; every other address as is.
/// Applied to every decoded peer, whatever the listener: a v6-only listener never
/// sees a mapped address (the kernel refuses IPv4 clients before accept).
#[inline]
pub fn unmap_v4(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::V4(SocketAddrV4::new(ip, v6.port())),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

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

    fn zeroed() -> libc::sockaddr_storage {
        // SAFETY: plain data.
        unsafe { mem::zeroed() }
    }

    fn v4_storage(ip: Ipv4Addr, port: u16) -> libc::sockaddr_storage {
        let mut ss = zeroed();
        // SAFETY: writing a sockaddr_in into storage that is larger and as aligned.
        let sin =
            unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = port.to_be();
        sin.sin_addr.s_addr = u32::from(ip).to_be();
        ss
    }

    fn v6_storage(ip: Ipv6Addr, port: u16, flow: u32, scope: u32) -> libc::sockaddr_storage {
        let mut ss = zeroed();
        // SAFETY: as above, for sockaddr_in6.
        let sin6 =
            unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_port = port.to_be();
        sin6.sin6_addr.s6_addr = ip.octets();
        sin6.sin6_flowinfo = flow.to_be();
        sin6.sin6_scope_id = scope;
        ss
    }

    const V4_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    const V6_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;

    #[test]
    fn ipv4_mapped_peers_decode_as_ipv4() {
        let mapped = Ipv4Addr::new(127, 0, 0, 9).to_ipv6_mapped();
        let ss = v6_storage(mapped, 40_002, 0, 0);
        assert_eq!(
            sockaddr_to_socketaddr(&ss, V6_LEN),
            Some("127.0.0.9:40002".parse().unwrap())
        );
        // A real IPv6 address, and the IPv4-compatible form (::a.b.c.d), stay IPv6.
        for ip in [Ipv6Addr::LOCALHOST, "::7f00:1".parse().unwrap()] {
            let ss = v6_storage(ip, 7, 0, 0);
            assert_eq!(
                sockaddr_to_socketaddr(&ss, V6_LEN),
                Some(SocketAddr::V6(SocketAddrV6::new(ip, 7, 0, 0)))
            );
        }
    }

    #[test]
    fn decodes_ipv4() {
        let ss = v4_storage(Ipv4Addr::new(127, 0, 0, 2), 40_001);
        assert_eq!(
            sockaddr_to_socketaddr(&ss, V4_LEN),
            Some("127.0.0.2:40001".parse().unwrap())
        );
        // A longer length (the whole storage) is fine too.
        assert_eq!(
            sockaddr_to_socketaddr(&ss, SOCKADDR_STORAGE_LEN),
            Some("127.0.0.2:40001".parse().unwrap())
        );
    }

    #[test]
    fn decodes_ipv6_with_flowinfo_and_scope() {
        let ip: Ipv6Addr = "fe80::1:2".parse().unwrap();
        let ss = v6_storage(ip, 443, 7, 3);
        let got = sockaddr_to_socketaddr(&ss, V6_LEN).unwrap();
        assert_eq!(got, SocketAddr::V6(SocketAddrV6::new(ip, 443, 7, 3)));
        assert_eq!(
            sockaddr_to_socketaddr(&v6_storage(Ipv6Addr::LOCALHOST, 8080, 0, 0), V6_LEN),
            Some("[::1]:8080".parse().unwrap())
        );
    }

    #[test]
    fn rejects_short_length() {
        let ss = v4_storage(Ipv4Addr::LOCALHOST, 1);
        assert_eq!(sockaddr_to_socketaddr(&ss, V4_LEN - 1), None);
        assert_eq!(sockaddr_to_socketaddr(&ss, 0), None);
        let ss6 = v6_storage(Ipv6Addr::LOCALHOST, 1, 0, 0);
        assert_eq!(sockaddr_to_socketaddr(&ss6, V6_LEN - 1), None);
        assert_eq!(sockaddr_to_socketaddr(&ss6, V4_LEN), None);
    }

    #[test]
    fn rejects_unknown_family() {
        let mut ss = zeroed();
        ss.ss_family = libc::AF_UNIX as libc::sa_family_t;
        assert_eq!(sockaddr_to_socketaddr(&ss, SOCKADDR_STORAGE_LEN), None);
        ss.ss_family = libc::AF_UNSPEC as libc::sa_family_t;
        assert_eq!(sockaddr_to_socketaddr(&ss, SOCKADDR_STORAGE_LEN), None);
    }

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
