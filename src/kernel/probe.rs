//! io_uring support on this kernel: what the running kernel offers, as facts.
//!
//! Owns the probe (ring setup, `IORING_REGISTER_PROBE`, setup flags, a sparse file
//! table, one real multishot accept armed on a throwaway abstract-namespace Unix
//! socket, one real uring_cmd `GETSOCKOPT(SO_TYPE)` on an unbound UDP socket and
//! `GETSOCKNAME` on a UDP socket bound to an ephemeral loopback port, so no port is
//! taken from anyone); the verdict per engine is `crate::engine::support`'s. It never panics:
//! whatever fails is reported as "unsupported, because …, needs Linux X.Y".

use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use serde::{Deserialize, Serialize};

use crate::kernel::{self, sysctl};
use crate::sockcmd::{getsockopt_sqe, SockTarget};

/// What the io_uring probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UringProbe {
    /// `io_uring_setup` worked.
    pub setup_ok: bool,
    /// Why setup failed, when it did.
    pub setup_error: Option<String>,
    /// `kernel.io_uring_disabled` (0 enabled, 1 root/group only, 2 disabled), if present.
    pub io_uring_disabled: Option<u32>,
    /// IORING_OP_ACCEPT (5.5).
    pub accept: bool,
    /// Multishot accept (5.19).
    pub accept_multishot: bool,
    /// IORING_OP_CONNECT (5.5).
    pub connect: bool,
    /// IORING_OP_CLOSE (5.6).
    pub close: bool,
    /// IORING_OP_ASYNC_CANCEL (5.5).
    pub async_cancel: bool,
    /// IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN accepted (6.1).
    pub defer_taskrun: bool,
    /// IORING_FEAT_EXT_ARG (wait with timeout, 5.11; also 5.10.162+, whose io_uring is 5.15's).
    pub ext_arg: bool,
    /// IORING_SETUP_COOP_TASKRUN|TASKRUN_FLAG accepted (5.19).
    #[serde(default)]
    pub coop_taskrun: bool,
    /// Direct descriptors: a sparse registered file table and IORING_FILE_INDEX_ALLOC (5.19).
    #[serde(default)]
    pub direct_descriptors: bool,
    /// IORING_OP_SOCKET (5.19).
    #[serde(default)]
    pub socket_op: bool,
    /// IORING_OP_URING_CMD with SOCKET_URING_OP_GETSOCKOPT on sockets (6.7), tried for real.
    #[serde(default)]
    pub uring_cmd_sockopt: bool,
    /// The accept flags IORING_ACCEPT_DONTWAIT and IORING_ACCEPT_POLL_FIRST (6.10, with
    /// IORING_CQE_F_SOCK_NONEMPTY on accept completions), both tried for real.
    #[serde(default)]
    pub accept_flags: bool,
    /// IORING_OP_URING_CMD with SOCKET_URING_OP_GETSOCKNAME and its peer flag (6.19),
    /// tried for real.
    #[serde(default)]
    pub uring_cmd_getsockname: bool,
}

impl UringProbe {
    /// Each probed feature: (name, found, the Linux version that has it).
    pub fn features(&self) -> Vec<(&'static str, bool, &'static str)> {
        vec![
            ("accept", self.accept, "5.5"),
            ("async-cancel", self.async_cancel, "5.5"),
            ("connect", self.connect, "5.5"),
            ("close", self.close, "5.6"),
            ("ext-arg (wait with timeout)", self.ext_arg, "5.11"),
            ("multishot-accept", self.accept_multishot, "5.19"),
            ("coop-taskrun", self.coop_taskrun, "5.19"),
            (
                "direct-descriptors (file index alloc)",
                self.direct_descriptors,
                "5.19",
            ),
            ("op-socket", self.socket_op, "5.19"),
            ("defer-taskrun (single issuer)", self.defer_taskrun, "6.1"),
            ("uring-cmd getsockopt", self.uring_cmd_sockopt, "6.7"),
            (
                "accept-flags (poll-first, dontwait)",
                self.accept_flags,
                "6.10",
            ),
            (
                "in-ring getsockname (peer flag)",
                self.uring_cmd_getsockname,
                "6.19",
            ),
        ]
    }
}

/// Runs the probe (a few rings and one Unix socket; a few milliseconds).
///
/// It runs on a short-lived thread of its own: the kernel tears a closed ring down
/// asynchronously and then notifies the task that owned it, which interrupts that
/// task's next blocking call — a `std` engine's first `accept()` would fail with EINTR.
pub fn probe_uring() -> UringProbe {
    let spawned = std::thread::Builder::new()
        .name("io_uring-probe".into())
        .spawn(probe_on_this_thread);
    match spawned {
        Ok(handle) => handle.join().unwrap_or_else(|_| UringProbe {
            setup_error: Some("the io_uring probe panicked".into()),
            ..UringProbe::default()
        }),
        Err(_) => probe_on_this_thread(),
    }
}

fn probe_on_this_thread() -> UringProbe {
    let mut p = UringProbe {
        io_uring_disabled: sysctl::read_u64("kernel.io_uring_disabled")
            .ok()
            .map(|v| v.min(u32::MAX as u64) as u32),
        ..UringProbe::default()
    };
    let ring = match IoUring::new(8) {
        Ok(ring) => ring,
        Err(e) => {
            p.setup_error = Some(format!("io_uring_setup failed: {e}"));
            return p;
        }
    };
    p.setup_ok = true;
    p.ext_arg = ring.params().is_feature_ext_arg();
    let mut probe = Probe::new();
    if ring.submitter().register_probe(&mut probe).is_ok() {
        p.accept = probe.is_supported(opcode::Accept::CODE);
        p.connect = probe.is_supported(opcode::Connect::CODE);
        p.close = probe.is_supported(opcode::Close::CODE);
        p.async_cancel = probe.is_supported(opcode::AsyncCancel::CODE);
        p.socket_op = probe.is_supported(opcode::Socket::CODE);
    } else {
        // IORING_REGISTER_PROBE arrived in 5.6; 5.5 already had accept/connect/cancel.
        let at_least = |v| release().is_some_and(|r| r >= v);
        p.accept = at_least((5, 5));
        p.connect = at_least((5, 5));
        p.async_cancel = at_least((5, 5));
        p.close = false;
    }
    // IORING_RSRC_REGISTER_SPARSE and IORING_FILE_INDEX_ALLOC both arrived in 5.19.
    p.direct_descriptors = ring.submitter().register_files_sparse(4).is_ok();
    drop(ring);
    p.defer_taskrun = IoUring::<io_uring::squeue::Entry>::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(8)
        .is_ok();
    p.coop_taskrun = IoUring::<io_uring::squeue::Entry>::builder()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .build(8)
        .is_ok();
    p.accept_multishot = p.accept && p.async_cancel && multishot_accept_works();
    p.accept_flags = p.accept && p.async_cancel && accept_flags_work();
    p.uring_cmd_sockopt = getsockopt_cmd_works();
    p.uring_cmd_getsockname = p.uring_cmd_sockopt && getsockname_cmd_works();
    p
}

/// Runs uring_cmd `GETSOCKNAME` twice on a UDP socket bound to 127.0.0.1:0: the local
/// form must give the address getsockname(2) gives (result 0, length 16), the peer
/// form ENOTCONN (the socket has no peer), which shows the flag is read. Kernels
/// before 6.19 fail both with EOPNOTSUPP (the socket command is unknown).
fn getsockname_cmd_works() -> bool {
    let Ok(sock) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let Ok(std::net::SocketAddr::V4(want)) = sock.local_addr() else {
        return false;
    };
    let fd = sock.as_raw_fd();
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as u32;
    let local = getsockname_cmd(fd, false, &mut ss, &mut len);
    let got = common::sockaddr::decode(&ss, len);
    if local != Some(0) || got != Some(std::net::SocketAddr::V4(want)) {
        return false;
    }
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as u32;
    getsockname_cmd(fd, true, &mut ss, &mut len) == Some(-libc::ENOTCONN)
}

/// One uring_cmd `GETSOCKNAME` on `fd` through a ring of its own: the CQE's result.
fn getsockname_cmd(
    fd: i32,
    peer: bool,
    ss: &mut libc::sockaddr_storage,
    len: &mut u32,
) -> Option<i32> {
    let mut ring = IoUring::new(4).ok()?;
    let sqe = crate::sockcmd::getsockname_sqe(
        SockTarget::Fd(fd),
        peer,
        (ss as *mut libc::sockaddr_storage).cast(),
        len,
    )
    .user_data(1);
    // SAFETY: `ss` and `len` are borrowed for this whole call, which reaps the CQE
    // before returning; if the wait fails the ring is dropped first, and the kernel
    // finishes or cancels the (non-pollable) request during that teardown.
    if unsafe { ring.submission().push(&sqe) }.is_err() {
        return None;
    }
    if ring.submit_and_wait(1).is_err() {
        drop(ring);
        return None;
    }
    let res = ring.completion().next().map(|c| c.result());
    drop(ring);
    res
}

/// Runs one uring_cmd `GETSOCKOPT(SOL_SOCKET, SO_TYPE)` on an unbound UDP socket and
/// checks the answer (4 bytes, SOCK_DGRAM). Kernels before 6.7 fail it (EOPNOTSUPP
/// for sockets, or EINVAL for the opcode before 5.19).
fn getsockopt_cmd_works() -> bool {
    let Ok(sock) =
        std::net::UdpSocket::bind("0.0.0.0:0").or_else(|_| std::net::UdpSocket::bind("[::]:0"))
    else {
        return false;
    };
    let Ok(mut ring) = IoUring::new(4) else {
        return false;
    };
    let mut value: libc::c_int = -1;
    let sqe = getsockopt_sqe(
        SockTarget::Fd(sock.as_raw_fd()),
        libc::SOL_SOCKET as u32,
        libc::SO_TYPE as u32,
        (&mut value as *mut libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as u32,
    )
    .user_data(1);
    // SAFETY: `value` lives on this frame until the CQE is reaped below; if the wait
    // fails the ring is dropped first, and the kernel finishes or cancels the request
    // during the (synchronous for a non-pollable command) teardown before we return.
    if unsafe { ring.submission().push(&sqe) }.is_err() {
        return false;
    }
    if ring.submit_and_wait(1).is_err() {
        drop(ring);
        return false;
    }
    let res = ring.completion().next().map(|c| c.result());
    drop(ring);
    res == Some(std::mem::size_of::<libc::c_int>() as i32) && value == libc::SOCK_DGRAM
}

/// The probe, run once per process (kernel support does not change while we run).
pub fn probe_uring_cached() -> &'static UringProbe {
    static PROBE: OnceLock<UringProbe> = OnceLock::new();
    PROBE.get_or_init(probe_uring)
}

/// The running kernel's (major, minor), if its release string parses.
pub fn release() -> Option<(u32, u32)> {
    kernel::release_version(&kernel::uname().release)
}

/// Arms one multishot accept on a throwaway listening Unix socket and cancels it.
/// There is no opcode bit for multishot (it is a flag of IORING_OP_ACCEPT); kernels
/// before 5.19 reject the flag at once with -EINVAL, newer ones leave the accept armed
/// until the cancel, which completes it with -ECANCELED.
fn multishot_accept_works() -> bool {
    let res = accept_then_cancel(|fd| opcode::AcceptMulti::new(fd).build());
    res == Some(-libc::ECANCELED)
}

/// Tries both 6.10 accept flags on an empty throwaway listener: a `DONTWAIT` accept
/// completes at once with -EAGAIN, a `POLL_FIRST` one stays armed until the cancel
/// (-ECANCELED). Kernels before 6.10 refuse any flag but multishot with -EINVAL.
fn accept_flags_work() -> bool {
    let with = |flags| {
        accept_then_cancel(|fd| {
            let accept = opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut());
            common::ring::with_accept_flags(accept.build(), flags)
        })
    };
    with(common::ring::ACCEPT_DONTWAIT) == Some(-libc::EAGAIN)
        && with(common::ring::ACCEPT_POLL_FIRST) == Some(-libc::ECANCELED)
}

/// Submits the accept `build` makes for a throwaway listening Unix socket (nothing
/// ever connects), then a cancel of it, and returns the accept's final result.
fn accept_then_cancel(build: impl FnOnce(types::Fd) -> squeue::Entry) -> Option<i32> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "acceptbench-probe-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).ok()?;
    let listener = UnixListener::bind_addr(&addr).ok()?;
    let mut ring = IoUring::new(8).ok()?;
    const ACCEPT: u64 = 1;
    const CANCEL: u64 = 2;
    let accept = build(types::Fd(listener.as_raw_fd())).user_data(ACCEPT);
    let cancel = opcode::AsyncCancel::new(ACCEPT).build().user_data(CANCEL);
    // SAFETY: the accepts built here pass no buffers to the kernel (null address and
    // length, or none for multishot); the listener outlives the ring's use of it
    // because we reap the accept's final CQE below before dropping either (and if that
    // fails, the ring is dropped first: it holds its own file ref).
    let pushed = unsafe {
        let mut sq = ring.submission();
        sq.push(&accept).is_ok() && sq.push(&cancel).is_ok()
    };
    if !pushed {
        return None;
    }
    let ts = types::Timespec::from(Duration::from_millis(500));
    let args = types::SubmitArgs::new().timespec(&ts);
    let mut accept_res = None;
    let mut cqes_seen = 0;
    // Both CQEs (accept and cancel) come at once; bound the wait anyway.
    for _ in 0..4 {
        let waited = if ring.params().is_feature_ext_arg() {
            ring.submitter().submit_with_args(2 - cqes_seen, &args)
        } else {
            // No ext-arg means older than 5.11, so the flags are rejected at once.
            ring.submitter().submit_and_wait(2 - cqes_seen)
        };
        if let Err(e) = waited {
            if !matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) {
                break;
            }
        }
        for cqe in ring.completion() {
            cqes_seen += 1;
            if cqe.user_data() == ACCEPT && !cqueue::more(cqe.flags()) {
                accept_res = Some(cqe.result());
            }
        }
        if cqes_seen >= 2 {
            break;
        }
    }
    drop(ring);
    drop(listener);
    accept_res
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn full() -> UringProbe {
        UringProbe {
            setup_ok: true,
            setup_error: None,
            io_uring_disabled: Some(0),
            accept: true,
            accept_multishot: true,
            connect: true,
            close: true,
            async_cancel: true,
            defer_taskrun: true,
            ext_arg: true,
            coop_taskrun: true,
            direct_descriptors: true,
            socket_op: true,
            uring_cmd_sockopt: true,
            accept_flags: true,
            uring_cmd_getsockname: true,
        }
    }

    #[test]
    fn features_name_their_versions() {
        let f = full().features();
        assert!(f.iter().all(|(_, found, _)| *found));
        assert!(f.contains(&("uring-cmd getsockopt", true, "6.7")));
        assert!(f.contains(&("defer-taskrun (single issuer)", true, "6.1")));
    }

    #[test]
    fn probe_never_panics_and_is_consistent() {
        let p = probe_uring();
        if !p.setup_ok {
            assert!(p.setup_error.is_some());
            assert!(!p.accept && !p.accept_multishot);
        }
        if p.accept_multishot || p.accept_flags {
            assert!(p.accept);
        }
        // Both flags came in 6.10 (vendors may backport them to older releases).
        if let Some(r) = release().filter(|&r| r >= (6, 10)) {
            assert!(!p.accept || p.accept_flags, "{r:?}: {p:?}");
        }
        // The in-ring getsockname came in 6.19, after getsockopt (6.7).
        assert!(!p.uring_cmd_getsockname || p.uring_cmd_sockopt, "{p:?}");
        if let Some(r) = release() {
            if r >= (6, 19) {
                assert!(
                    !p.uring_cmd_sockopt || p.uring_cmd_getsockname,
                    "{r:?}: {p:?}"
                );
            }
        }
    }
}
