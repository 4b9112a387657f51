//! The listener seen from outside: LISTEN sockets on a TCP port and their accept queues,
//! from the kernel's sock_diag netlink interface (`inet_diag`). This module owns the
//! netlink socket; nothing else opens one.
//!
//! For a LISTEN socket `inet_diag` reports `idiag_rqueue` = connections waiting in the
//! accept queue and `idiag_wqueue` = the backlog the kernel applied (already clamped to
//! `net.core.somaxconn`) — the same two figures `TCP_INFO` gives the socket's owner
//! (`tcpi_unacked`, `tcpi_sacked`, both from `inet_csk_listen` since Linux 2.6). The
//! queue holds backlog + 1 connections (`sk_acceptq_is_full` tests `>`, Linux 4.x+).
//!
//! A netlink socket sees the network namespace it was made in: a [`ListenerDiag`] made on
//! the thread that entered a run's namespace sees that namespace's sockets, wherever it
//! is used afterwards.

use std::net::SocketAddr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NlAddr};

/// Replies read per query at most (each holds many sockets; a dump of every listener
/// on a busy host is a few): bounds a query whatever the kernel sends.
const MAX_REPLIES: usize = 4096;

/// One LISTEN socket as sock_diag reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// The address it is bound to.
    pub addr: SocketAddr,
    /// Connections waiting in its accept queue (`idiag_rqueue`).
    pub queued: u32,
    /// The backlog the kernel applied (`idiag_wqueue`); the queue holds one more.
    pub backlog: u32,
    /// Its inode: tells the sockets of an `SO_REUSEPORT` group apart.
    pub inode: u32,
}

/// A sock_diag netlink socket, bound to the network namespace of the thread that made it.
pub struct ListenerDiag {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl ListenerDiag {
    /// Opens the netlink socket in the calling thread's network namespace.
    pub fn open() -> std::io::Result<ListenerDiag> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&NlAddr::new(0, 0))?;
        Ok(ListenerDiag {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Every LISTEN TCP socket on `port` (IPv4 and IPv6), one entry per socket, in the
    /// kernel's order (several for an `SO_REUSEPORT` group).
    pub fn listening(&mut self, port: u16) -> std::io::Result<Vec<Listening>> {
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            self.dump(family, Some(port), &mut out)?;
        }
        Ok(out)
    }

    /// Every LISTEN TCP socket in the namespace, whatever its port.
    pub fn all_listening(&mut self) -> std::io::Result<Vec<Listening>> {
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            self.dump(family, None, &mut out)?;
        }
        Ok(out)
    }

    /// Asks for the LISTEN sockets of `family` and appends those on `port` (all with
    /// `None`) to `out`.
    fn dump(
        &mut self,
        family: u8,
        port: Option<u16>,
        out: &mut Vec<Listening>,
    ) -> std::io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut socket_id = if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        // The kernel's dump does not filter on the id's port without a bytecode filter:
        // the port is checked on each reply below.
        socket_id.source_port = port.unwrap_or(0);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::LISTEN,
                socket_id,
            })
            .into(),
        );
        packet.finalize();
        let mut req = vec![0; packet.buffer_len()];
        packet.serialize(&mut req);
        self.socket.send(&req, 0)?;
        for _ in 0..MAX_REPLIES {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            if self.parse_replies(n, port, out)? {
                return Ok(());
            }
        }
        Err(std::io::Error::other(format!(
            "sock_diag: no end of the dump after {MAX_REPLIES} replies"
        )))
    }

    /// Parses the `n` bytes received; true at the end of the dump.
    fn parse_replies(
        &self,
        n: usize,
        port: Option<u16>,
        out: &mut Vec<Listening>,
    ) -> std::io::Result<bool> {
        let mut offset = 0;
        while offset < n {
            let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&self.buf[offset..n])
                .map_err(|e| std::io::Error::other(format!("sock_diag reply: {e}")))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    let id = &r.header.socket_id;
                    if port.is_none_or(|p| id.source_port == p) {
                        out.push(Listening {
                            addr: SocketAddr::new(id.source_address, id.source_port),
                            queued: r.header.recv_queue,
                            backlog: r.header.send_queue,
                            inode: r.header.inode,
                        });
                    }
                }
                NetlinkPayload::Done(_) => return Ok(true),
                NetlinkPayload::Error(e) => {
                    return Err(e.to_io());
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listeners_queue_and_backlog_are_seen() {
        let mut diag = match ListenerDiag::open() {
            Ok(d) => d,
            Err(e) => {
                common::testskip::skip(
                    common::testskip::Lack::Kernel,
                    &format!("no sock_diag netlink socket here: {e}"),
                );
                return;
            }
        };
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        sock.listen(5).expect("listen");
        let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        // The handshakes complete in softirq right after connect() returns; allow a moment.
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = diag.listening(addr.port()).expect("dump");
            if seen.first().is_some_and(|l| l.queued == 3) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!((seen[0].queued, seen[0].backlog), (3, 5), "{seen:?}");
        assert_eq!(seen[0].addr, addr);
        drop(clients);
        drop(sock);
        assert!(diag.listening(addr.port()).expect("dump").is_empty());
    }
}
