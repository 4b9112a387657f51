//! Facts about the running kernel and how it is set up: release, sysctls, limits,
//! io_uring support, TcpExt counters. Reads only; changing settings happens in a
//! private network namespace (see `netns`), never on the host.

pub mod costs;
// The tracepoint stack lives in common (loadgen records with it too).
pub use common::ktrace::{account, timeline, tracefs};
pub mod netns;
pub mod netstat;
pub mod perf;
pub mod probe;
pub mod sockdiag;
pub mod sysctl;

use serde::{Deserialize, Serialize};

/// `uname(2)` fields that identify a kernel build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uname {
    /// e.g. `6.18.44-fc-v657`.
    pub release: String,
    /// Build string, e.g. `#1 SMP PREEMPT_DYNAMIC ...`.
    pub version: String,
    /// e.g. `x86_64`.
    pub machine: String,
    /// Host name.
    pub nodename: String,
}

/// Reads `uname(2)`.
pub fn uname() -> Uname {
    // SAFETY: utsname is plain data that uname fills with NUL-terminated strings; uname
    // cannot fail with a valid pointer.
    let u = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        libc::uname(&mut u);
        u
    };
    let s = |field: &[libc::c_char]| {
        let bytes: Vec<u8> = field
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Uname {
        release: s(&u.release),
        version: s(&u.version),
        machine: s(&u.machine),
        nodename: s(&u.nodename),
    }
}

/// The (major, minor) of a release string such as `6.18.44-fc`, if it parses.
pub fn release_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// `RLIMIT_NOFILE` (soft, hard).
pub fn rlimit_nofile() -> (u64, u64) {
    // SAFETY: rlimit is plain data; getrlimit only writes into it.
    let r = unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r
    };
    (r.rlim_cur, r.rlim_max)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (a load run holds many sockets).
/// Returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let (soft, hard) = rlimit_nofile();
    if soft >= hard {
        return soft;
    }
    let r = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: a valid rlimit with cur <= max; failure leaves the old limit in place.
    let ok = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0;
    if ok {
        hard
    } else {
        soft
    }
}

/// Grows this process's descriptor table so that `n` descriptors more than are open
/// now fit without growing it again, by duplicating `fd` at the right number and
/// closing the copy. The table never shrinks, so this is done once per process, the way
/// a long-running server's table is already grown after its first burst. It matters to
/// a timed drain: an engine that holds a whole accept queue of descriptors at once
/// (multishot, uring-linked) grows the table by doubling, and in a multithreaded
/// process each doubling waits for an RCU grace period (`expand_fdtable` calls
/// `synchronize_rcu` when the table is shared) — 5 waits, ~38 ms, inside the first
/// drain of 4097 connections on a 2-vCPU VM (6.18), 18% of a 1 s sweep cell's drain
/// time, which a blocking accept loop (one descriptor at a time) and the
/// single-threaded C reference never pay. Best effort: returns false when the table
/// could not be grown (e.g. `RLIMIT_NOFILE` is lower), and the run pays the growth.
pub fn reserve_fds(fd: std::os::fd::RawFd, n: u32) -> bool {
    // SAFETY: plain descriptor calls on a descriptor the caller holds; the copies made
    // here are closed here.
    unsafe {
        let lowest = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
        if lowest < 0 {
            return false;
        }
        let top = libc::fcntl(
            fd,
            libc::F_DUPFD_CLOEXEC,
            lowest.saturating_add(n.min(i32::MAX as u32) as i32),
        );
        libc::close(lowest);
        if top < 0 {
            return false;
        }
        libc::close(top);
    }
    true
}

/// CPU model name from /proc/cpuinfo, if present.
pub fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// How the machine is virtualised: `tcg` (QEMU software emulation), `kvm`/`hypervisor`
/// (hardware virtualisation), or `none`, from cpuinfo flags and the DMI vendor.
pub fn virtualisation() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hypervisor = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    let vendor = std::fs::read_to_string("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
    // QEMU names its software-emulated CPUs "QEMU TCG CPU …"; a KVM guest with
    // QEMU's default model says "QEMU Virtual CPU" and is hardware-virtualised.
    let model_has_tcg = cpuinfo
        .lines()
        .any(|l| l.starts_with("model name") && l.contains("TCG"));
    if model_has_tcg {
        "tcg".into()
    } else if hypervisor {
        let v = vendor.trim();
        if v.is_empty() {
            "hypervisor".into()
        } else {
            format!("hypervisor ({v})")
        }
    } else {
        "none".into()
    }
}
