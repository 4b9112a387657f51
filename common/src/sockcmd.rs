//! Socket commands through `IORING_OP_URING_CMD` (Linux 6.7): the SQEs for
//! `SOCKET_URING_OP_GETSOCKOPT` (the acceptor reads the peer in the ring),
//! `SOCKET_URING_OP_SETSOCKOPT` (loadgen sets SO_LINGER in the ring) and
//! `SOCKET_URING_OP_GETSOCKNAME` (6.19: getsockname, or getpeername with the peer
//! flag), which the io-uring crate (0.7) has no opcodes for.
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
//! CQE's result is the length the kernel wrote (setsockopt: 0).
//!
//! `SOCKET_URING_OP_GETSOCKNAME` (io_uring/cmd_net.c `io_uring_cmd_getsockname`, 6.19;
//! liburing's `io_uring_prep_cmd_getsockname`) reads other fields: the sockaddr
//! buffer's address from `addr` (u64 at byte 16, the same bytes as `level` and
//! `optname`), a pointer to an `int` holding the buffer's length from `addr3` (u64 at
//! byte 48, where `optval` is) and the peer flag from `optlen` (u32 at byte 44: 0 the
//! socket's own name, 1 the peer's, more is EINVAL). `ioprio`, `__pad1` (byte 12),
//! `len` and `rw_flags` must be zero (else EINVAL). The kernel runs
//! `do_getsockname(sock, peer, …)`, the body of getsockname(2)/getpeername(2): it
//! writes the address and the length it has (truncating to the buffer) through the
//! two pointers, and the CQE's result is 0. The peer form is getpeername's: a
//! connection already reset (TCP_CLOSE) fails with ENOTCONN, where `SO_PEERNAME`
//! still answers. The module only builds entries.

use std::mem::size_of;
use std::os::fd::RawFd;

use io_uring::opcode::UringCmd16;
use io_uring::squeue::Entry;
use io_uring::types;

/// `SOCKET_URING_OP_SIOCINQ` = 0, `SIOCOUTQ` = 1, `GETSOCKOPT` = 2, `SETSOCKOPT` = 3.
pub const SOCKET_URING_OP_GETSOCKOPT: u32 = 2;
/// `SOCKET_URING_OP_SETSOCKOPT`.
pub const SOCKET_URING_OP_SETSOCKOPT: u32 = 3;
/// `SOCKET_URING_OP_GETSOCKNAME` (6.19; 4 is `TX_TIMESTAMP`, 6.17).
pub const SOCKET_URING_OP_GETSOCKNAME: u32 = 5;

const OFF_LEVEL: usize = 16;
const OFF_OPTNAME: usize = 20;
const OFF_OPTLEN: usize = 44;
const OFF_ADDR: usize = 16;

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

/// `getsockname(target, addr, addrlen)`, or with `peer` `getpeername`, as an SQE.
/// The kernel reads the buffer's length from `*addrlen` and writes the address at
/// `addr` and its length back into `*addrlen` when the request runs (CQE result 0).
///
/// The caller owns the safety contract of pushing it: `addr` must stay valid for
/// `*addrlen` bytes and `addrlen` for 4 bytes until the CQE is reaped.
pub fn getsockname_sqe(target: SockTarget, peer: bool, addr: *mut u8, addrlen: *mut u32) -> Entry {
    // The crate's 16-byte `cmd` is the SQE's bytes 48..64: `addr3` is its first 8.
    let mut cmd = [0u8; 16];
    cmd[..8].copy_from_slice(&(addrlen as u64).to_ne_bytes());
    let op = SOCKET_URING_OP_GETSOCKNAME;
    let mut e = match target {
        SockTarget::Fd(fd) => UringCmd16::new(types::Fd(fd), op).cmd(cmd).build(),
        SockTarget::Fixed(i) => UringCmd16::new(types::Fixed(i), op).cmd(cmd).build(),
    };
    put_bytes(&mut e, OFF_ADDR, &(addr as u64).to_ne_bytes());
    put_u32(&mut e, OFF_OPTLEN, u32::from(peer));
    e
}

/// Writes `v` at byte `off` of the SQE.
fn put_u32(e: &mut Entry, off: usize, v: u32) {
    put_bytes(e, off, &v.to_ne_bytes());
}

/// Writes `v` (a field's native-endian bytes) at byte `off` of the SQE.
fn put_bytes(e: &mut Entry, off: usize, v: &[u8]) {
    assert!(off + v.len() <= size_of::<Entry>());
    // SAFETY: Entry is #[repr(C)] around the kernel's 64-byte io_uring_sqe (checked
    // above), which is plain integers and unions of integers: any bytes are a valid
    // value, and off + len ≤ 64 keeps the byte copy inside the entry.
    unsafe {
        std::ptr::copy_nonoverlapping(v.as_ptr(), (e as *mut Entry).cast::<u8>().add(off), v.len())
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

    /// The fields `io_uring_cmd_getsockname` (6.19) reads: cmd_op 5, `addr` the
    /// buffer, `addr3` the length's address, `optlen` the peer flag; every other byte
    /// zero (the kernel refuses a non-zero ioprio, `__pad1`, len or rw_flags).
    fn check_getsockname(target: SockTarget, fd_field: u32, flags: u8, peer: bool) {
        let mut ss = [0u8; 128];
        let mut len: u32 = 128;
        let (addr, lenp) = (ss.as_mut_ptr(), &mut len as *mut u32);
        let e = getsockname_sqe(target, peer, addr, lenp).user_data(0x1234_5678_9abc_def0);
        let b = bytes(&e);
        assert_eq!(b[0], 46, "opcode IORING_OP_URING_CMD");
        assert_eq!(b[1], flags, "sqe flags");
        assert_eq!(u32_at(&b, 4), fd_field, "fd");
        assert_eq!(u32_at(&b, 8), 5, "cmd_op SOCKET_URING_OP_GETSOCKNAME");
        let u64_at = |off: usize| u64::from_ne_bytes(b[off..off + 8].try_into().unwrap());
        assert_eq!(u64_at(16), addr as u64, "addr: the sockaddr buffer");
        assert_eq!(u32_at(&b, 44), u32::from(peer), "optlen: the peer flag");
        assert_eq!(u64_at(48), lenp as u64, "addr3: the length's address");
        assert_eq!(u64_at(32), 0x1234_5678_9abc_def0, "user_data");
        let named: Vec<usize> = [0usize, 1]
            .into_iter()
            .chain(4..12)
            .chain(16..24)
            .chain(32..40)
            .chain(44..56)
            .collect();
        for (i, byte) in b.iter().enumerate() {
            if !named.contains(&i) {
                assert_eq!(*byte, 0, "byte {i} must be zero");
            }
        }
    }

    #[test]
    fn getsockname_sqe_has_the_kernel_layout() {
        check_getsockname(SockTarget::Fd(7), 7, 0, true);
        check_getsockname(SockTarget::Fd(7), 7, 0, false);
        check_getsockname(SockTarget::Fixed(3), 3, 1 << 0, true);
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
