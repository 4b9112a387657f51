//! The accept flags of Linux 6.10 as `uring`'s plan dimension: how each single-shot
//! accept is armed (`IORING_ACCEPT_POLL_FIRST`, `IORING_ACCEPT_DONTWAIT`, in
//! `sqe->ioprio`) and how the `IORING_CQE_F_SOCK_NONEMPTY` hint on a completion (more
//! connections were queued when it was taken) chooses the next one, as netty's
//! io_uring transport does. Pure policy: `uring` asks it what to arm next.

use std::fmt;
use std::str::FromStr;

use common::ring::{ACCEPT_DONTWAIT, ACCEPT_POLL_FIRST};
use serde::{Deserialize, Serialize};

/// How `uring` arms its single-shot accepts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum AcceptFlags {
    /// No flags (every kernel): the accept tries at once and, finding the queue empty,
    /// arms a poll inside the kernel. Row label `uring.q<N>`.
    #[default]
    #[serde(rename = "none")]
    Plain,
    /// `IORING_ACCEPT_POLL_FIRST` on every accept: arm the poll without trying (the
    /// application expects an empty queue). Label suffix `.pf`.
    #[serde(rename = "poll-first")]
    PollFirst,
    /// `IORING_ACCEPT_DONTWAIT` on every accept: try once and complete with `EAGAIN`
    /// rather than arm; a slot that came back `EAGAIN` re-arms with `POLL_FIRST` (wait
    /// for the next connection) and goes back to `DONTWAIT` after it. Label `.dw`.
    #[serde(rename = "dontwait")]
    DontWait,
    /// The hint, as netty uses it: after a completion that says more are queued
    /// (`IORING_CQE_F_SOCK_NONEMPTY`) re-arm with `DONTWAIT` (a connection is waiting),
    /// otherwise with `POLL_FIRST` (the queue looked empty); an `EAGAIN` re-arms with
    /// `POLL_FIRST`. The first accept of a slot has no flags. Label `.ne`.
    #[serde(rename = "nonempty")]
    NonEmpty,
}

impl AcceptFlags {
    /// Every setting, today's first.
    pub const ALL: [AcceptFlags; 4] = [
        AcceptFlags::Plain,
        AcceptFlags::PollFirst,
        AcceptFlags::DontWait,
        AcceptFlags::NonEmpty,
    ];

    /// The name on the command line and in `summary.csv` (`accept_flags`).
    pub fn name(self) -> &'static str {
        match self {
            AcceptFlags::Plain => "none",
            AcceptFlags::PollFirst => "poll-first",
            AcceptFlags::DontWait => "dontwait",
            AcceptFlags::NonEmpty => "nonempty",
        }
    }

    /// The suffix of a row's label after `uring.q<N>` (empty for none).
    pub fn label(self) -> &'static str {
        match self {
            AcceptFlags::Plain => "",
            AcceptFlags::PollFirst => ".pf",
            AcceptFlags::DontWait => ".dw",
            AcceptFlags::NonEmpty => ".ne",
        }
    }

    /// The label suffix of the setting named `name` in a row (`""` for an empty or
    /// unknown name, as rows of other engines and older files have).
    pub fn label_of(name: &str) -> &'static str {
        name.parse::<AcceptFlags>().map_or("", AcceptFlags::label)
    }

    /// True when the kernel must have the 6.10 accept flags.
    pub fn needs_6_10(self) -> bool {
        self != AcceptFlags::Plain
    }

    /// The `ioprio` flags of a slot's first accept.
    pub fn first(self) -> u16 {
        match self {
            AcceptFlags::Plain | AcceptFlags::NonEmpty => 0,
            AcceptFlags::PollFirst => ACCEPT_POLL_FIRST,
            AcceptFlags::DontWait => ACCEPT_DONTWAIT,
        }
    }

    /// The `ioprio` flags of the next accept of a slot whose accept completed with a
    /// connection; `nonempty` is the completion's `IORING_CQE_F_SOCK_NONEMPTY`.
    pub fn after_connection(self, nonempty: bool) -> u16 {
        match self {
            AcceptFlags::NonEmpty if nonempty => ACCEPT_DONTWAIT,
            AcceptFlags::NonEmpty => ACCEPT_POLL_FIRST,
            other => other.first(),
        }
    }

    /// The `ioprio` flags of the next accept of a slot whose `DONTWAIT` accept found
    /// the queue empty (`EAGAIN`): wait for a connection.
    pub fn after_empty(self) -> u16 {
        ACCEPT_POLL_FIRST
    }
}

impl fmt::Display for AcceptFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An accept-flags name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown accept flags {0:?}: use one of none, poll-first, dontwait, nonempty")]
pub struct UnknownAcceptFlags(pub String);

impl FromStr for AcceptFlags {
    type Err = UnknownAcceptFlags;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AcceptFlags::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownAcceptFlags(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_labels_differ() {
        let mut labels = std::collections::BTreeSet::new();
        for f in AcceptFlags::ALL {
            assert_eq!(f.name().parse::<AcceptFlags>().unwrap(), f);
            assert!(labels.insert(f.label()));
            assert_eq!(AcceptFlags::label_of(f.name()), f.label());
        }
        assert_eq!(AcceptFlags::label_of(""), "");
        let e = "fast".parse::<AcceptFlags>().unwrap_err().to_string();
        assert!(e.contains("none, poll-first, dontwait, nonempty"), "{e}");
    }

    #[test]
    fn the_hint_chooses_dontwait_when_more_are_queued_and_poll_first_when_empty() {
        let ne = AcceptFlags::NonEmpty;
        assert_eq!(ne.first(), 0);
        assert_eq!(ne.after_connection(true), ACCEPT_DONTWAIT);
        assert_eq!(ne.after_connection(false), ACCEPT_POLL_FIRST);
        assert_eq!(ne.after_empty(), ACCEPT_POLL_FIRST);
        let dw = AcceptFlags::DontWait;
        assert_eq!(dw.after_connection(false), ACCEPT_DONTWAIT);
        assert_eq!(
            AcceptFlags::PollFirst.after_connection(true),
            ACCEPT_POLL_FIRST
        );
        assert_eq!(AcceptFlags::Plain.after_connection(true), 0);
    }
}
