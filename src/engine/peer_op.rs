//! How `uring-linked` reads a connection's peer in the ring: the uring_cmd
//! `GETSOCKOPT(SO_PEERNAME)` (6.7), or `GETSOCKNAME` with the peer flag (6.19, the
//! in-ring getpeername). `auto` takes getsockname where the probe found it. Pure
//! choice: the engine asks it which SQE to build.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::kernel::probe::UringProbe;

/// The in-ring peer read `uring-linked` uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum PeerOp {
    /// getsockname(peer) where the kernel has it (6.19), else getsockopt.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// `SOCKET_URING_OP_GETSOCKNAME` with the peer flag (6.19). Row label suffix `.gsn`.
    #[serde(rename = "getsockname")]
    Getsockname,
    /// `SOCKET_URING_OP_GETSOCKOPT(SOL_SOCKET, SO_PEERNAME)` (6.7). No label suffix:
    /// what `uring-linked` always did.
    #[serde(rename = "getsockopt")]
    Getsockopt,
}

impl PeerOp {
    /// Every setting.
    pub const ALL: [PeerOp; 3] = [PeerOp::Auto, PeerOp::Getsockname, PeerOp::Getsockopt];

    /// The name on the command line and in `summary.csv` (`peer_op`).
    pub fn name(self) -> &'static str {
        match self {
            PeerOp::Auto => "auto",
            PeerOp::Getsockname => "getsockname",
            PeerOp::Getsockopt => "getsockopt",
        }
    }

    /// The suffix of a row's label after `uring-linked` (empty for getsockopt).
    pub fn label(self) -> &'static str {
        match self {
            PeerOp::Getsockname => ".gsn",
            PeerOp::Auto | PeerOp::Getsockopt => "",
        }
    }

    /// The label suffix of the op named `name` in a row (`""` for an empty or unknown
    /// name, as rows of other engines and older files have).
    pub fn label_of(name: &str) -> &'static str {
        name.parse::<PeerOp>().map_or("", PeerOp::label)
    }

    /// The op used on a kernel `probe` describes: `auto` resolved, the others as they are.
    pub fn resolve(self, probe: &UringProbe) -> PeerOp {
        match self {
            PeerOp::Auto if probe.uring_cmd_getsockname => PeerOp::Getsockname,
            PeerOp::Auto => PeerOp::Getsockopt,
            op => op,
        }
    }
}

impl fmt::Display for PeerOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--peer-op` value that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown peer op {0:?}: use auto, getsockname or getsockopt")]
pub struct UnknownPeerOp(pub String);

impl FromStr for PeerOp {
    type Err = UnknownPeerOp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PeerOp::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownPeerOp(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_getsockname_only_where_the_probe_found_it() {
        let mut p = UringProbe::default();
        assert_eq!(PeerOp::Auto.resolve(&p), PeerOp::Getsockopt);
        p.uring_cmd_getsockname = true;
        assert_eq!(PeerOp::Auto.resolve(&p), PeerOp::Getsockname);
        assert_eq!(PeerOp::Getsockopt.resolve(&p), PeerOp::Getsockopt);
    }

    #[test]
    fn names_round_trip_and_label() {
        for op in PeerOp::ALL {
            assert_eq!(op.name().parse::<PeerOp>().unwrap(), op);
        }
        assert_eq!(PeerOp::label_of("getsockname"), ".gsn");
        assert_eq!(PeerOp::label_of("getsockopt"), "");
        assert_eq!(PeerOp::label_of(""), "");
        assert!("peername".parse::<PeerOp>().is_err());
    }
}
