//! Private network namespaces for overflow runs.
//!
//! `unshare(CLONE_NEWNET)` moves only the calling thread into a new namespace;
//! threads and processes it starts afterwards inherit it. In that namespace `lo`
//! starts down (we bring it up: 127.0.0.0/8 and ::1 appear), `net.*` sysctls
//! start at their defaults and can be set without touching the host, and TcpExt
//! counters count only this namespace's traffic. Because the namespace is per
//! thread, counters are read from `/proc/thread-self/net/netstat`, not
//! `/proc/net/netstat` (which follows the thread-group leader).

use std::io;

/// Settings applied inside the namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetnsSettings {
    /// net.ipv4.tcp_abort_on_overflow=1: a full accept queue answers the final ACK with RST.
    pub abort_on_overflow: bool,
    /// net.ipv4.tcp_syncookies (0, 1, 2).
    pub syncookies: Option<u8>,
    /// net.core.somaxconn.
    pub somaxconn: Option<u32>,
}

/// Why a private namespace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Not root (no CAP_SYS_ADMIN).
    #[error("a private network namespace needs root (CAP_SYS_ADMIN): {0}; run as root, or drop --abort-on-overflow/--syncookies/--somaxconn to measure on the host's loopback")]
    NotPermitted(io::Error),
    /// Anything else.
    #[error("cannot set up a private network namespace: {0}")]
    Io(io::Error),
}

/// Moves the calling thread into a fresh network namespace, brings `lo` up and
/// applies `settings`.
pub fn enter_private(settings: &NetnsSettings) -> Result<(), NetnsError> {
    // SAFETY: unshare takes flags only; it affects the calling thread.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) => NetnsError::NotPermitted(e),
            _ => NetnsError::Io(e),
        });
    }
    loopback_up().map_err(NetnsError::Io)?;
    let set =
        |name: &str, value: String| super::sysctl::write(name, &value).map_err(NetnsError::Io);
    set(
        "net.ipv4.tcp_abort_on_overflow",
        u8::from(settings.abort_on_overflow).to_string(),
    )?;
    if let Some(v) = settings.syncookies {
        set("net.ipv4.tcp_syncookies", v.to_string())?;
    }
    if let Some(v) = settings.somaxconn {
        set("net.core.somaxconn", v.to_string())?;
    }
    Ok(())
}

/// Whether this process may create network namespaces: tried for real on a
/// throwaway thread (the namespace dies with it), because being root is not enough
/// in a container without CAP_SYS_ADMIN or under a seccomp filter. `Err` says why not.
pub fn can_create() -> Result<(), String> {
    let tried = std::thread::Builder::new()
        .name("netns-probe".into())
        .spawn(|| {
            // SAFETY: unshare takes flags only; it affects this short-lived thread.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
        .map_err(|e| format!("cannot start a thread to try it: {e}"))?
        .join()
        .map_err(|_| "the namespace probe panicked".to_string())?;
    tried.map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => format!(
            "unshare(CLONE_NEWNET) is not permitted ({e}): needs root with CAP_SYS_ADMIN (a container may drop it)"
        ),
        _ => format!("unshare(CLONE_NEWNET) failed: {e}"),
    })
}

/// Brings the loopback interface of the current namespace up (SIOCSIFFLAGS).
fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket used only for the interface ioctls; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; the name "lo" fits in IFNAMSIZ with its NUL; the
    // ioctls read and write only the ifreq, which lives across both calls.
    let result = unsafe {
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            Err(io::Error::last_os_error())
        } else {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) != 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd is ours and open.
    unsafe { libc::close(fd) };
    result
}
