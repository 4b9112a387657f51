//! The TCP tracepoints the kernel's account reads, and their raw records decoded by
//! field name: each event's [`Layout`] is built from its tracefs `format` file, so a
//! kernel that moves a field still decodes, and a kernel that lacks one says which.
//!
//! Plain data and pure functions; opening the events is [`super::trace`]'s.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::tracefs::Field;

/// A tracepoint the recorder opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tp {
    /// `sock:inet_sock_set_state`: every TCP state change, both sides.
    SetState,
    /// `tcp:tcp_retransmit_skb`: a retransmitted segment (a SYN in state SYN_SENT).
    RetransmitSkb,
    /// `tcp:tcp_retransmit_synack`: the listener resent a SYN-ACK.
    RetransmitSynack,
    /// `tcp:tcp_receive_reset`: a socket received a RST.
    ReceiveReset,
    /// `tcp:tcp_send_reset`: a RST was sent.
    SendReset,
    /// `skb:kfree_skb` with reason `TCP_LISTEN_OVERFLOW` (the reason exists from 6.x).
    OverflowDrop,
}

impl Tp {
    /// Every tracepoint, in the order they are opened.
    pub const ALL: [Tp; 6] = [
        Tp::SetState,
        Tp::RetransmitSkb,
        Tp::RetransmitSynack,
        Tp::ReceiveReset,
        Tp::SendReset,
        Tp::OverflowDrop,
    ];

    /// Its tracefs name, `system:name`.
    pub fn name(self) -> &'static str {
        match self {
            Tp::SetState => "sock:inet_sock_set_state",
            Tp::RetransmitSkb => "tcp:tcp_retransmit_skb",
            Tp::RetransmitSynack => "tcp:tcp_retransmit_synack",
            Tp::ReceiveReset => "tcp:tcp_receive_reset",
            Tp::SendReset => "tcp:tcp_send_reset",
            Tp::OverflowDrop => "skb:kfree_skb",
        }
    }

    /// The fields its decoder reads (a format without one of them: the event is
    /// absent, with that reason).
    pub fn needs(self) -> &'static [&'static str] {
        match self {
            Tp::SetState => &[
                "skaddr", "oldstate", "newstate", "protocol", "sport", "dport", "family", "saddr",
                "daddr", "saddr_v6", "daddr_v6",
            ],
            Tp::RetransmitSkb => &[
                "skaddr", "state", "sport", "dport", "family", "saddr", "daddr", "saddr_v6",
                "daddr_v6",
            ],
            Tp::RetransmitSynack => &[
                "skaddr", "req", "sport", "dport", "family", "saddr", "daddr", "saddr_v6",
                "daddr_v6",
            ],
            Tp::ReceiveReset => &[
                "skaddr", "sport", "dport", "family", "saddr", "daddr", "saddr_v6", "daddr_v6",
            ],
            // saddr/daddr here are whole sockaddrs (28 bytes), ports inside.
            Tp::SendReset => &["skaddr", "state", "saddr", "daddr"],
            Tp::OverflowDrop => &["rx_sk", "reason"],
        }
    }

    /// Whether the kernel filters it to the run's port (else it records the whole
    /// host's, and losing some of those says nothing about the run's connections).
    pub fn port_filtered(self) -> bool {
        !matches!(self, Tp::SendReset | Tp::OverflowDrop)
    }

    /// The in-kernel filter (tracefs filter syntax) that keeps only `port`'s records
    /// (and of the state changes only those into the states the account reads: a
    /// connection's closing handshake would otherwise double the records); None where
    /// the format has no port field to filter on (then the decoded record is filtered
    /// here). `overflow_reason`: the drop reason's value on this kernel.
    pub fn filter(self, port: u16, overflow_reason: Option<u64>) -> Option<String> {
        let ports = format!("(sport == {port} || dport == {port})");
        match self {
            Tp::SetState => Some(format!(
                "protocol == 6 && {ports} && (newstate == {} || newstate == {} || newstate == {} || newstate == {})",
                state::ESTABLISHED,
                state::SYN_SENT,
                state::SYN_RECV,
                state::CLOSE
            )),
            Tp::RetransmitSkb | Tp::RetransmitSynack | Tp::ReceiveReset => Some(ports),
            Tp::SendReset => None,
            Tp::OverflowDrop => overflow_reason.map(|r| format!("reason == {r}")),
        }
    }
}

/// TCP states as `include/net/tcp_states.h` numbers them (unchanged since 2.6).
pub mod state {
    /// Established.
    pub const ESTABLISHED: i32 = 1;
    /// SYN sent (a connecting client).
    pub const SYN_SENT: i32 = 2;
    /// SYN received (a server child before the final ACK's processing ends).
    pub const SYN_RECV: i32 = 3;
    /// Closed.
    pub const CLOSE: i32 = 7;
    /// Listening.
    pub const LISTEN: i32 = 10;
    /// A request socket (never reported by `inet_sock_set_state` on 6.18).
    pub const NEW_SYN_RECV: i32 = 12;
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A TCP state change of socket `sk` (its kernel address, the key between one
    /// socket's own events). A connecting socket's CLOSE→SYN_SENT has source port 0
    /// (the port is bound after the state change, 6.18).
    State {
        /// The socket.
        sk: u64,
        /// Old state (see [`state`]).
        old: i32,
        /// New state.
        new: i32,
        /// Local end.
        src: SocketAddr,
        /// Remote end.
        dst: SocketAddr,
    },
    /// A retransmitted segment of socket `sk` in state `state`.
    Retransmit {
        /// The socket.
        sk: u64,
        /// Its state (SYN_SENT: a SYN retransmit).
        state: i32,
        /// Local end.
        src: SocketAddr,
        /// Remote end.
        dst: SocketAddr,
    },
    /// The listener `listener` resent the SYN-ACK of request `req`.
    SynackRetransmit {
        /// The listening socket.
        listener: u64,
        /// The request socket.
        req: u64,
        /// Server end.
        src: SocketAddr,
        /// Client end.
        dst: SocketAddr,
    },
    /// Socket `sk` received a RST.
    ReceiveReset {
        /// The socket.
        sk: u64,
        /// Local end.
        src: SocketAddr,
        /// Remote end.
        dst: SocketAddr,
    },
    /// A RST was sent (`sk` 0: no socket, e.g. to a client whose server child never
    /// existed).
    SendReset {
        /// The socket, or 0.
        sk: u64,
        /// Its state, or 0.
        state: i32,
        /// Sender.
        src: Option<SocketAddr>,
        /// Receiver.
        dst: Option<SocketAddr>,
    },
    /// A packet dropped because a listener's accept queue was full (the final ACK of
    /// a handshake). Has no ports: counted for every listener of the host.
    OverflowDrop {
        /// The receiving socket.
        rx_sk: u64,
    },
}

impl Event {
    /// Whether this record concerns `port` at either end (records without ports —
    /// overflow drops — are kept: the in-kernel filter selected them).
    pub fn involves(&self, port: u16) -> bool {
        let ends = |a: Option<SocketAddr>, b: Option<SocketAddr>| {
            a.is_some_and(|a| a.port() == port) || b.is_some_and(|b| b.port() == port)
        };
        match self {
            Event::State { src, dst, .. }
            | Event::Retransmit { src, dst, .. }
            | Event::SynackRetransmit { src, dst, .. }
            | Event::ReceiveReset { src, dst, .. } => ends(Some(*src), Some(*dst)),
            Event::SendReset { src, dst, .. } => ends(*src, *dst),
            Event::OverflowDrop { .. } => true,
        }
    }
}

/// One record as read from a ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// CLOCK_MONOTONIC ns (comparable with `crate::clock::mono_ns`).
    pub time_ns: u64,
    /// The CPU whose ring held it.
    pub cpu: u32,
    /// What happened.
    pub event: Event,
}

/// Where each field of one tracepoint's record lies.
#[derive(Debug, Clone)]
pub struct Layout {
    tp: Tp,
    fields: HashMap<String, Field>,
}

impl Layout {
    /// The layout of `tp` from its format's fields; Err names the missing field.
    pub fn new(tp: Tp, fields: Vec<Field>) -> Result<Layout, String> {
        let fields: HashMap<String, Field> =
            fields.into_iter().map(|f| (f.name.clone(), f)).collect();
        if let Some(missing) = tp.needs().iter().find(|n| !fields.contains_key(**n)) {
            return Err(format!(
                "{} has no field {missing} on this kernel",
                tp.name()
            ));
        }
        Ok(Layout { tp, fields })
    }

    /// Which tracepoint.
    pub fn tp(&self) -> Tp {
        self.tp
    }

    fn bytes<'r>(&self, raw: &'r [u8], name: &str) -> Option<&'r [u8]> {
        let f = self.fields.get(name)?;
        raw.get(f.offset..f.offset.checked_add(f.size)?)
    }

    /// An integer field (native byte order, as the kernel wrote it), sign-extended
    /// where the format says signed.
    fn int(&self, raw: &[u8], name: &str) -> Option<i64> {
        let f = self.fields.get(name)?;
        let b = self.bytes(raw, name)?;
        let mut buf = [0u8; 8];
        if b.len() > 8 {
            return None;
        }
        buf[..b.len()].copy_from_slice(b);
        let v = u64::from_ne_bytes(buf);
        let bits = 8 * b.len() as u32;
        Some(if f.signed && bits < 64 {
            ((v << (64 - bits)) as i64) >> (64 - bits)
        } else {
            v as i64
        })
    }

    fn uint(&self, raw: &[u8], name: &str) -> Option<u64> {
        self.int(raw, name).map(|v| v as u64)
    }

    /// An address from `family` and the v4/v6 byte fields, with a host-order port field.
    fn addr(&self, raw: &[u8], v4: &str, v6: &str, port: &str) -> Option<SocketAddr> {
        let port = self.uint(raw, port)? as u16;
        let ip = match self.uint(raw, "family")? as i32 {
            libc::AF_INET => {
                let b: [u8; 4] = self.bytes(raw, v4)?.try_into().ok()?;
                IpAddr::V4(Ipv4Addr::from(b))
            }
            libc::AF_INET6 => {
                let b: [u8; 16] = self.bytes(raw, v6)?.try_into().ok()?;
                IpAddr::V6(Ipv6Addr::from(b))
            }
            _ => return None,
        };
        // A dual-stack listener's child of an IPv4 client is AF_INET6 with mapped
        // addresses; the client's own socket is AF_INET: one form for the join.
        Some(crate::sockaddr::unmap_v4(SocketAddr::new(ip, port)))
    }

    /// Decodes one raw record; None if it is too short or of an unknown family.
    pub fn decode(&self, raw: &[u8]) -> Option<Event> {
        let sk = || self.uint(raw, "skaddr");
        let src = || self.addr(raw, "saddr", "saddr_v6", "sport");
        let dst = || self.addr(raw, "daddr", "daddr_v6", "dport");
        Some(match self.tp {
            Tp::SetState => Event::State {
                sk: sk()?,
                old: self.int(raw, "oldstate")? as i32,
                new: self.int(raw, "newstate")? as i32,
                src: src()?,
                dst: dst()?,
            },
            Tp::RetransmitSkb => Event::Retransmit {
                sk: sk()?,
                state: self.int(raw, "state")? as i32,
                src: src()?,
                dst: dst()?,
            },
            Tp::RetransmitSynack => Event::SynackRetransmit {
                listener: sk()?,
                req: self.uint(raw, "req")?,
                src: src()?,
                dst: dst()?,
            },
            Tp::ReceiveReset => Event::ReceiveReset {
                sk: sk()?,
                src: src()?,
                dst: dst()?,
            },
            Tp::SendReset => Event::SendReset {
                sk: sk()?,
                state: self.int(raw, "state")? as i32,
                src: sockaddr(self.bytes(raw, "saddr")?),
                dst: sockaddr(self.bytes(raw, "daddr")?),
            },
            Tp::OverflowDrop => Event::OverflowDrop {
                rx_sk: self.uint(raw, "rx_sk")?,
            },
        })
    }
}

/// A `struct sockaddr_in`/`sockaddr_in6` as the kernel copied it into a record.
fn sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?) as i32;
    let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        libc::AF_INET6 => {
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some(crate::sockaddr::unmap_v4(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                port,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::tracefs::parse_format;
    use super::*;

    /// `sock:inet_sock_set_state`'s fields as Linux 6.18 lays them out.
    pub(crate) const SET_STATE_618: &str = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;\n\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;\n\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n";

    fn raw_state(sk: u64, old: i32, new: i32, sport: u16, dport: u16) -> Vec<u8> {
        let mut r = vec![0u8; 72];
        r[8..16].copy_from_slice(&sk.to_ne_bytes());
        r[16..20].copy_from_slice(&old.to_ne_bytes());
        r[20..24].copy_from_slice(&new.to_ne_bytes());
        r[24..26].copy_from_slice(&sport.to_ne_bytes());
        r[26..28].copy_from_slice(&dport.to_ne_bytes());
        r[28..30].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        r[30..32].copy_from_slice(&6u16.to_ne_bytes());
        r[32..36].copy_from_slice(&[127, 0, 0, 1]);
        r[36..40].copy_from_slice(&[127, 0, 0, 2]);
        r
    }

    #[test]
    fn a_state_change_decodes_by_field_name() {
        let layout = Layout::new(Tp::SetState, parse_format(SET_STATE_618).unwrap()).unwrap();
        let raw = raw_state(
            0xffff_8883_8cc5_6f00,
            state::SYN_SENT,
            state::ESTABLISHED,
            45012,
            8080,
        );
        let e = layout.decode(&raw).unwrap();
        assert_eq!(
            e,
            Event::State {
                sk: 0xffff_8883_8cc5_6f00,
                old: state::SYN_SENT,
                new: state::ESTABLISHED,
                src: "127.0.0.1:45012".parse().unwrap(),
                dst: "127.0.0.2:8080".parse().unwrap(),
            }
        );
        assert!(e.involves(8080) && !e.involves(80));
        // An AF_INET6 socket with IPv4-mapped addresses decodes to the IPv4 form.
        let mut v6 = raw.clone();
        v6[28..30].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[40..56].copy_from_slice(&"::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap().octets());
        v6[56..72].copy_from_slice(&"::1".parse::<Ipv6Addr>().unwrap().octets());
        match layout.decode(&v6) {
            Some(Event::State { src, dst, .. }) => {
                assert_eq!(src, "127.0.0.1:45012".parse::<SocketAddr>().unwrap());
                assert_eq!(dst, "[::1]:8080".parse::<SocketAddr>().unwrap());
            }
            other => panic!("{other:?}"),
        }
        // A record cut short decodes to nothing rather than to a wrong value.
        assert_eq!(layout.decode(&raw[..30]), None);
    }

    #[test]
    fn a_moved_field_is_still_found_and_a_missing_one_is_named() {
        // The same fields 8 bytes further on (another kernel's layout).
        let shifted: String = SET_STATE_618
            .lines()
            .map(|l| {
                let f = parse_format(l).unwrap().remove(0);
                let off = if f.name == "common_type" {
                    0
                } else {
                    f.offset + 8
                };
                format!(
                    "field:x {};\toffset:{off};\tsize:{};\tsigned:{};\n",
                    f.name, f.size, f.signed as u8
                )
            })
            .collect();
        let layout = Layout::new(Tp::SetState, parse_format(&shifted).unwrap()).unwrap();
        let mut raw = vec![0u8; 8];
        raw.extend(raw_state(7, state::LISTEN, state::SYN_RECV, 8080, 45012));
        match layout.decode(&raw) {
            Some(Event::State {
                sk, old, new, src, ..
            }) => {
                assert_eq!(
                    (sk, old, new, src.port()),
                    (7, state::LISTEN, state::SYN_RECV, 8080)
                )
            }
            other => panic!("{other:?}"),
        }
        let without: String = SET_STATE_618
            .lines()
            .filter(|l| !l.contains("newstate"))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = Layout::new(Tp::SetState, parse_format(&without).unwrap()).unwrap_err();
        assert!(err.contains("newstate"), "{err}");
    }

    #[test]
    fn a_reset_carries_whole_sockaddrs() {
        let mut b = vec![0u8; 28];
        b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&8080u16.to_be_bytes());
        b[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(sockaddr(&b), Some("127.0.0.1:8080".parse().unwrap()));
        let mut b6 = vec![0u8; 28];
        b6[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b6[2..4].copy_from_slice(&443u16.to_be_bytes());
        b6[23] = 1;
        assert_eq!(sockaddr(&b6), Some("[::1]:443".parse().unwrap()));
        assert_eq!(sockaddr(&[0u8; 28]), None);
    }

    #[test]
    fn filters_select_the_runs_port() {
        assert_eq!(
            Tp::SetState.filter(8080, None).as_deref(),
            Some("protocol == 6 && (sport == 8080 || dport == 8080) && (newstate == 1 || newstate == 2 || newstate == 3 || newstate == 7)")
        );
        assert_eq!(Tp::SendReset.filter(8080, None), None);
        assert_eq!(
            Tp::OverflowDrop.filter(8080, Some(40)).as_deref(),
            Some("reason == 40")
        );
        assert_eq!(Tp::OverflowDrop.filter(8080, None), None);
    }
}
