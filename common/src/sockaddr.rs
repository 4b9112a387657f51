//! Kernel `sockaddr` → [`SocketAddr`], one decoder for both sides: the acceptor
//! decodes the peer that accept wrote, loadgen decodes the local address that
//! getsockname wrote, and the sweep's join compares the two. It allocates nothing
//! (hot path on both sides).

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// `sizeof(struct sockaddr_storage)`, the length to pass to accept/getpeername/getsockname.
pub const SOCKADDR_STORAGE_LEN: libc::socklen_t =
    mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

/// Decodes an IPv4 or IPv6 address the kernel wrote into `ss`, `len` bytes long.
///
/// Returns `None` for another family or a length too short for the family's struct
/// (the kernel truncates to the buffer it was given, so a short length means the
/// address is incomplete). `sin6_flowinfo` is taken as it is, like the standard
/// library does both ways (`SocketAddrV6::flowinfo` is the raw field), so an address
/// decoded here equals the one `TcpStream::peer_addr` reports. An IPv4-mapped IPv6
/// address comes back as plain IPv4 ([`unmap_v4`]).
#[inline]
pub fn decode(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match ss.ss_family as libc::c_int {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, `len` covers it,
            // and sockaddr_storage is at least as large and as aligned as sockaddr_in.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(unmap_v4(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            ))))
        }
        _ => None,
    }
}

/// An IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]:port`, what a dual-stack listener
/// sees for an IPv4 client) as the plain IPv4 address it is (`127.0.0.1:port`), the
/// form the client itself reports as its local address; every other address as is.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroed() -> libc::sockaddr_storage {
        // SAFETY: sockaddr_storage is plain data; all-zero is valid.
        unsafe { mem::zeroed() }
    }

    /// What the standard library writes for `addr` (its own sockaddr conversion, via
    /// a real socket's getsockname would need a bound socket; std's `From` is not
    /// public, so build it the way std documents: flowinfo raw, port big-endian).
    fn v6_storage(ip: Ipv6Addr, port: u16, flow: u32, scope: u32) -> libc::sockaddr_storage {
        let mut ss = zeroed();
        // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
        let sin6 =
            unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_port = port.to_be();
        sin6.sin6_flowinfo = flow;
        sin6.sin6_addr.s6_addr = ip.octets();
        sin6.sin6_scope_id = scope;
        ss
    }

    #[test]
    fn decodes_ipv4_and_ipv6_like_the_standard_library() {
        let mut ss = zeroed();
        // SAFETY: as above, for sockaddr_in.
        let sin =
            unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
        sin.sin_family = libc::AF_INET as libc::sa_family_t;
        sin.sin_port = 8080u16.to_be();
        sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 2]);
        assert_eq!(
            decode(&ss, SOCKADDR_STORAGE_LEN),
            Some("127.0.0.2:8080".parse().unwrap())
        );
        let ss = v6_storage(Ipv6Addr::LOCALHOST, 9, 0x1234_5678, 3);
        let want = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0x1234_5678, 3));
        assert_eq!(decode(&ss, SOCKADDR_STORAGE_LEN), Some(want));
    }

    #[test]
    fn a_connected_ipv6_socket_decodes_as_std_sees_it() {
        let Ok(l) = std::net::TcpListener::bind("[::1]:0") else {
            crate::testskip::skip(crate::testskip::Lack::Host, "no IPv6 loopback here");
            return;
        };
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let mut ss = zeroed();
        let mut len = SOCKADDR_STORAGE_LEN;
        use std::os::fd::AsRawFd;
        // SAFETY: ss/len are valid out-pointers for the duration of the call.
        let r = unsafe {
            libc::getsockname(
                c.as_raw_fd(),
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0);
        assert_eq!(decode(&ss, len), Some(c.local_addr().unwrap()));
    }

    #[test]
    fn mapped_short_and_unknown() {
        let mapped = v6_storage(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped(), 7, 0, 0);
        assert_eq!(
            decode(&mapped, SOCKADDR_STORAGE_LEN),
            Some("127.0.0.1:7".parse().unwrap())
        );
        let ss = v6_storage(Ipv6Addr::LOCALHOST, 9, 0, 0);
        assert_eq!(decode(&ss, 8), None);
        assert_eq!(decode(&zeroed(), SOCKADDR_STORAGE_LEN), None);
    }
}
