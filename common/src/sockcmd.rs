//! Socket commands through `IORING_OP_URING_CMD` (Linux 6.7): the SQEs for
//! `SOCKET_URING_OP_GETSOCKOPT` (the acceptor reads the peer in the ring) and
//! `SOCKET_URING_OP_SETSOCKOPT` (loadgen sets SO_LINGER in the ring), which the
//! io-uring crate (0.6) has no opcodes for.
//!
//! The kernel reads the sockopt arguments from fields of `struct io_uring_sqe` that
//! share unions with other opcodes' fields (include/uapi/linux/io_uring.h, 6.7):
//! `cmd_op` (u32 at byte 8, union with `off`), `level` and `optname` (two u32 at
//! bytes 16 and 20, union with `addr`), `optlen` (u32 at byte 44, union with
//! `file_index`) and `optval` (u64 at byte 48, union with `addr3` and `cmd`). This is
//! what liburing's `io_uring_prep_cmd_sock` fills and what the C reference
//! `ring_peer.c` writes by offset. The crate's `UringCmd16` sets opcode, fd (plain or
//! fixed) and `cmd_op`, and its 16-byte `cmd` starts at byte 48, so `optval` goes
//! there; `level`, `optname` and `optlen` are written into the entry by offset.
//! The kernel only accepts `level == SOL_SOCKET` (else EOPNOTSUPP); on success the
//! CQE's result is the length the kernel wrote (setsockopt: 0). The module only
//! builds entries.

use std::mem::size_of;
use std::os::fd::RawFd;

use io_uring::opcode::UringCmd16;
use io_uring::squeue::Entry;
use io_uring::types;

/// `SOCKET_URING_OP_SIOCINQ` = 0, `SIOCOUTQ` = 1, `GETSOCKOPT` = 2, `SETSOCKOPT` = 3.
pub const SOCKET_URING_OP_GETSOCKOPT: u32 = 2;
/// `SOCKET_URING_OP_SETSOCKOPT`.
pub const SOCKET_URING_OP_SETSOCKOPT: u32 = 3;

const OFF_LEVEL: usize = 16;
const OFF_OPTNAME: usize = 20;
const OFF_OPTLEN: usize = 44;

// The entry is the kernel's 64-byte SQE (`#[repr(C)] struct Entry(io_uring_sqe)`).
const _: () = assert!(size_of::<Entry>() == 64);

/// The socket a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockTarget {
    /// A descriptor in the process's fd table.
    Fd(RawFd),
    /// A direct descriptor: an index into the ring's registered file table.
    Fixed(u32),
}

/// `getsockopt(target, level, optname, optval, &optlen)` as an SQE. The kernel writes
/// at most `optlen` bytes at `optval` when the request runs; `optlen` itself is passed
/// by value (the written length comes back as the CQE's result).
///
/// The caller owns the safety contract of pushing it: `optval` must stay valid for
/// `optlen` bytes until the CQE is reaped.
pub fn getsockopt_sqe(
    target: SockTarget,
    level: u32,
    optname: u32,
    optval: *mut u8,
    optlen: u32,
) -> Entry {
    sockopt_sqe(
        SOCKET_URING_OP_GETSOCKOPT,
        target,
        level,
        optname,
        optval as u64,
        optlen,
    )
}

/// `setsockopt(target, level, optname, optval, optlen)` as an SQE: the kernel reads
/// `optlen` bytes at `optval` when the request runs (CQE result 0 on success).
///
/// The caller owns the safety contract of pushing it: `optval` must stay valid for
/// `optlen` bytes until the CQE is reaped (or, with `IOSQE_CQE_SKIP_SUCCESS`, until
/// the ring has run it).
pub fn setsockopt_sqe(
    target: SockTarget,
    level: u32,
    optname: u32,
    optval: *const u8,
    optlen: u32,
) -> Entry {
    sockopt_sqe(
        SOCKET_URING_OP_SETSOCKOPT,
        target,
        level,
        optname,
        optval as u64,
        optlen,
    )
}

fn sockopt_sqe(
    cmd_op: u32,
    target: SockTarget,
    level: u32,
    optname: u32,
    optval: u64,
    optlen: u32,
) -> Entry {
    let mut cmd = [0u8; 16];
    cmd[..8].copy_from_slice(&optval.to_ne_bytes());
    let mut e = match target {
        SockTarget::Fd(fd) => UringCmd16::new(types::Fd(fd), cmd_op).cmd(cmd).build(),
        SockTarget::Fixed(i) => UringCmd16::new(types::Fixed(i), cmd_op).cmd(cmd).build(),
    };
    put_u32(&mut e, OFF_LEVEL, level);
    put_u32(&mut e, OFF_OPTNAME, optname);
    put_u32(&mut e, OFF_OPTLEN, optlen);
    e
}

/// Writes `v` at byte `off` of the SQE.
fn put_u32(e: &mut Entry, off: usize, v: u32) {
    assert!(off + 4 <= size_of::<Entry>());
    // SAFETY: Entry is #[repr(C)] around the kernel's 64-byte io_uring_sqe (checked
    // above), which is plain integers and unions of integers: any bytes are a valid
    // value, and off + 4 ≤ 64 keeps the unaligned write inside the entry.
    unsafe {
        (e as *mut Entry)
            .cast::<u8>()
            .add(off)
            .cast::<u32>()
            .write_unaligned(v)
    };
}

/// The SQE's bytes (tests and debugging).
#[cfg(test)]
fn bytes(e: &Entry) -> [u8; 64] {
    // SAFETY: as in put_u32: 64 bytes of plain integers behind a valid reference.
    unsafe { (e as *const Entry).cast::<[u8; 64]>().read_unaligned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8; 64], off: usize) -> u32 {
        u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }

    /// The layout liburing's `io_uring_prep_cmd_sock` produces and `ring_peer.c`
    /// writes by offset; every byte not named here must stay zero.
    fn check(target: SockTarget, fd_field: u32, flags: u8) {
        let mut buf = [0u8; 28];
        let ptr = buf.as_mut_ptr();
        let e = getsockopt_sqe(
            target,
            libc::SOL_SOCKET as u32,
            libc::SO_PEERNAME as u32,
            ptr,
            28,
        )
        .user_data(0x1234_5678_9abc_def0);
        check_entry(
            &e,
            SOCKET_URING_OP_GETSOCKOPT,
            fd_field,
            flags,
            28,
            ptr as u64,
        );
    }

    fn check_entry(e: &Entry, cmd_op: u32, fd_field: u32, flags: u8, optname: u32, optval: u64) {
        let b = bytes(e);
        assert_eq!(b[0], 46, "opcode IORING_OP_URING_CMD");
        assert_eq!(b[1], flags, "sqe flags");
        assert_eq!(u32_at(&b, 4), fd_field, "fd");
        assert_eq!(u32_at(&b, 8), cmd_op, "cmd_op");
        assert_eq!(u32_at(&b, 16), 1, "level SOL_SOCKET");
        assert_eq!(u32_at(&b, 20), optname, "optname");
        let optlen = if cmd_op == SOCKET_URING_OP_GETSOCKOPT {
            28
        } else {
            8
        };
        assert_eq!(u32_at(&b, 44), optlen, "optlen");
        let got = u64::from_ne_bytes(b[48..56].try_into().unwrap());
        assert_eq!(got, optval, "optval");
        let ud = u64::from_ne_bytes(b[32..40].try_into().unwrap());
        assert_eq!(ud, 0x1234_5678_9abc_def0);
        let named = [
            0usize, 1, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23,
        ]
        .into_iter()
        .chain(32..40)
        .chain(44..56)
        .collect::<Vec<_>>();
        for (i, byte) in b.iter().enumerate() {
            if !named.contains(&i) {
                assert_eq!(*byte, 0, "byte {i} must be zero");
            }
        }
    }

    #[test]
    fn getsockopt_sqe_has_the_kernel_layout() {
        check(SockTarget::Fd(7), 7, 0);
    }

    #[test]
    fn getsockopt_sqe_on_a_fixed_file_sets_fixed_file() {
        check(SockTarget::Fixed(5), 5, 1 << 0);
    }

    #[test]
    fn setsockopt_sqe_differs_only_in_cmd_op() {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        let ptr = (&linger as *const libc::linger).cast::<u8>();
        let e = setsockopt_sqe(
            SockTarget::Fd(9),
            libc::SOL_SOCKET as u32,
            libc::SO_LINGER as u32,
            ptr,
            size_of::<libc::linger>() as u32,
        )
        .user_data(0x1234_5678_9abc_def0);
        check_entry(
            &e,
            SOCKET_URING_OP_SETSOCKOPT,
            9,
            0,
            libc::SO_LINGER as u32,
            ptr as u64,
        );
    }
}
