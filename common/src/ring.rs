//! io_uring set-up flags, the same for the acceptor's ring engines and loadgen's
//! connect driver: what each asks of the kernel, which Linux accepts it, and the
//! fallback (defer → coop → default) when the kernel refuses one, with the reason
//! kept so that what a run actually used can be reported.

use std::fmt;
use std::str::FromStr;

use io_uring::IoUring;
use serde::{Deserialize, Serialize};

/// io_uring set-up flags for a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingSetup {
    /// No task-run flags: completions are run by task work that interrupts the task (IPI).
    Default,
    /// `IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG` (5.19): no interrupt;
    /// completions run at the next transition into the kernel.
    Coop,
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` (6.1): completions run
    /// only when the ring's (single) submitter thread waits with GETEVENTS.
    Defer,
}

impl RingSetup {
    /// Every setting, plainest first.
    pub const ALL: [RingSetup; 3] = [RingSetup::Default, RingSetup::Coop, RingSetup::Defer];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            RingSetup::Default => "default",
            RingSetup::Coop => "coop",
            RingSetup::Defer => "defer",
        }
    }

    /// The Linux version that accepts the flags.
    pub fn needs(self) -> &'static str {
        match self {
            RingSetup::Default => "5.1",
            RingSetup::Coop => "5.19",
            RingSetup::Defer => "6.1",
        }
    }

    /// What to try when the kernel refuses these flags.
    pub fn fallback(self) -> Option<RingSetup> {
        match self {
            RingSetup::Defer => Some(RingSetup::Coop),
            RingSetup::Coop => Some(RingSetup::Default),
            RingSetup::Default => None,
        }
    }

    /// A ring of `sq` SQ and `cq` CQ entries with exactly these flags.
    pub fn build(self, sq: u32, cq: u32) -> std::io::Result<IoUring> {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq);
        match self {
            RingSetup::Default => {}
            RingSetup::Coop => {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            RingSetup::Defer => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
        }
        b.build(sq)
    }
}

impl fmt::Display for RingSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A ring set-up name that is not one of ours.
#[derive(Debug)]
pub struct UnknownRingSetup(pub String);

impl fmt::Display for UnknownRingSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown ring setup {:?}: use one of default, coop, defer",
            self.0
        )
    }
}

impl std::error::Error for UnknownRingSetup {}

impl FromStr for RingSetup {
    type Err = UnknownRingSetup;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RingSetup::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownRingSetup(s.to_string()))
    }
}

/// Whether an `io_uring_enter` failure is a normal return rather than a fault: the
/// wait timed out (ETIME), a signal came (EINTR), or completions must be reaped before
/// more can be submitted (EBUSY, EAGAIN). The caller reaps and goes on.
pub fn is_transient_enter_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}

/// Makes a ring with `sq` entries and a CQ of `cq` entries and the `want`ed flags,
/// falling back (defer → coop → default) when the kernel refuses them with EINVAL.
/// Returns the ring and what was applied, e.g. `"defer"` or
/// `"default (coop refused: EINVAL, needs Linux 5.19)"`; any other failure of
/// io_uring_setup is returned as it is.
pub fn setup(want: RingSetup, sq: u32, cq: u32) -> std::io::Result<(IoUring, String)> {
    let mut refused: Vec<String> = Vec::new();
    let mut attempt = want;
    loop {
        match attempt.build(sq, cq) {
            Ok(ring) => {
                let applied = if refused.is_empty() {
                    attempt.name().to_string()
                } else {
                    format!("{} ({})", attempt.name(), refused.join("; "))
                };
                return Ok((ring, applied));
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match attempt.fallback() {
                Some(next) => {
                    refused.push(format!(
                        "{} refused: EINVAL, needs Linux {}",
                        attempt.name(),
                        attempt.needs()
                    ));
                    attempt = next;
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
}

/// `IORING_ACCEPT_DONTWAIT` (6.10): the accept completes with `-EAGAIN` when nothing
/// is queued instead of arming a poll. Stored in `sqe->ioprio`.
pub const ACCEPT_DONTWAIT: u16 = 1 << 1;
/// `IORING_ACCEPT_POLL_FIRST` (6.10): the accept arms its poll without trying first
/// (the caller expects an empty queue). Stored in `sqe->ioprio`.
pub const ACCEPT_POLL_FIRST: u16 = 1 << 2;

/// `accept` with `flags` (`ACCEPT_DONTWAIT`, `ACCEPT_POLL_FIRST`) or-ed into its
/// `ioprio`, which the io-uring crate's `Accept` builder has no setter for (it leaves
/// the field 0 for a single-shot accept). Kernels before 6.10 fail such an accept with
/// EINVAL; probe first.
pub fn with_accept_flags(
    mut accept: io_uring::squeue::Entry,
    flags: u16,
) -> io_uring::squeue::Entry {
    const _: () = assert!(std::mem::size_of::<io_uring::squeue::Entry>() == 64);
    let base = (&mut accept as *mut io_uring::squeue::Entry).cast::<u8>();
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte `struct
    // io_uring_sqe` (size checked above), whose uapi layout starts `__u8 opcode; __u8
    // flags; __u16 ioprio;`: bytes 2..4 are `ioprio`, inside the value we own. The
    // entry carries no pointers this touches; unaligned access because we reach it
    // through a byte pointer.
    unsafe {
        let ioprio = base.add(2).cast::<u16>();
        ioprio.write_unaligned(ioprio.read_unaligned() | flags);
    }
    accept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_nonsense_is_refused() {
        for s in RingSetup::ALL {
            assert_eq!(s.name().parse::<RingSetup>().unwrap(), s);
        }
        let e = "fast".parse::<RingSetup>().unwrap_err().to_string();
        assert!(
            e.contains("\"fast\"") && e.contains("default, coop, defer"),
            "{e}"
        );
    }

    #[test]
    fn accept_flags_land_in_ioprio_and_nothing_else_changes() {
        use io_uring::{opcode, types};
        let build = || {
            opcode::Accept::new(types::Fd(7), std::ptr::null_mut(), std::ptr::null_mut())
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(42)
        };
        // SAFETY: `Entry` is a 64-byte `#[repr(C)]` plain-data struct (asserted in
        // `with_accept_flags`); reading it as bytes is sound.
        let bytes = |e: io_uring::squeue::Entry| unsafe {
            std::mem::transmute::<io_uring::squeue::Entry, [u8; 64]>(e)
        };
        let plain = bytes(build());
        let flagged = bytes(with_accept_flags(
            build(),
            ACCEPT_POLL_FIRST | ACCEPT_DONTWAIT,
        ));
        assert_eq!(plain[0], opcode::Accept::CODE, "opcode at byte 0");
        assert_eq!(u16::from_ne_bytes([flagged[2], flagged[3]]), 0b110);
        assert_eq!(u16::from_ne_bytes([plain[2], plain[3]]), 0);
        assert_eq!(plain[..2], flagged[..2]);
        assert_eq!(plain[4..], flagged[4..]);
    }

    #[test]
    fn fallback_goes_down_to_default_and_stops() {
        assert_eq!(RingSetup::Defer.fallback(), Some(RingSetup::Coop));
        assert_eq!(RingSetup::Coop.fallback(), Some(RingSetup::Default));
        assert_eq!(RingSetup::Default.fallback(), None);
    }
}
