//! `reuseport-cpu`: a classic BPF program on a SO_REUSEPORT group that picks the
//! shard by the CPU processing the SYN. Owns the program and the setsockopt only.

use crate::listener::Listener;

/// `SO_ATTACH_REUSEPORT_CBPF` from `<asm-generic/socket.h>` (x86, arm, riscv, …; mips
/// and sparc number it differently and are not supported here).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Attaches `A = cpu; A %= n; return A` to the reuseport group of `listener`: the
/// kernel then hands each SYN to the group's socket number `cpu % n` (sockets are
/// numbered in bind order, so listener i is shard i).
pub(super) fn by_cpu(listener: &Listener, n: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let op = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let mut prog = [
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32,
        ),
        op(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, n.max(1)),
        op(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel copies the
    // program before returning.
    let ret = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
