//! Reading sysctls from /proc/sys (per network namespace for `net.*`), and setting
//! them — only ever inside a private network namespace made by this process.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

/// The sysctls that change accept behaviour or a run's results, recorded in every run.
pub const RECORDED: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_synack_retries",
    // Linux 6.5+: the first N SYN retransmits keep a 1 s timeout (absent before).
    "net.ipv4.tcp_syn_linear_timeouts",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_tw_reuse",
    "kernel.io_uring_disabled",
];

fn path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

/// The value of sysctl `name` as text (whitespace normalised to single spaces).
pub fn read(name: &str) -> io::Result<String> {
    let text = std::fs::read_to_string(path(name))?;
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The value of a numeric sysctl.
pub fn read_u64(name: &str) -> io::Result<u64> {
    let text = read(name)?;
    text.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sysctl {name} is not a number: {text:?}"),
        )
    })
}

/// Writes sysctl `name`. Callers must only do this inside a network namespace they
/// created (`net.*` settings are per namespace there); it needs root.
pub fn write(name: &str, value: &str) -> io::Result<()> {
    std::fs::write(path(name), value)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot set sysctl {name}={value}: {e}")))
}

/// Every recorded sysctl that this kernel has, name → value.
pub fn snapshot() -> BTreeMap<String, String> {
    RECORDED
        .iter()
        .filter_map(|&name| read(name).ok().map(|v| (name.to_string(), v)))
        .collect()
}
