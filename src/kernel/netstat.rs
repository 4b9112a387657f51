//! TcpExt counters from /proc/net/netstat (per network namespace).
//!
//! The file holds pairs of lines, `TcpExt: Name1 Name2 …` then `TcpExt: v1 v2 …`.

use std::collections::BTreeMap;
use std::io;

/// Counters that tell what a full accept queue did.
pub const OVERFLOW_COUNTERS: &[&str] = &[
    "ListenOverflows",
    "ListenDrops",
    "TCPReqQFullDrop",
    "TCPReqQFullDoCookies",
    "SyncookiesSent",
];

/// All TcpExt counters of the calling thread's network namespace, name → value.
/// (`/proc/thread-self/net` follows this thread's namespace; `/proc/net` follows the
/// thread-group leader's, which differs after a per-thread `unshare(CLONE_NEWNET)`.)
pub fn read_tcpext() -> io::Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat")
        .or_else(|_| std::fs::read_to_string("/proc/net/netstat"))?;
    parse(&text, "TcpExt")
}

/// Parses one section (`TcpExt`, `IpExt`, …) of a /proc/net/netstat text.
pub fn parse(text: &str, section: &str) -> io::Result<BTreeMap<String, u64>> {
    let prefix = format!("{section}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/net/netstat has no {section} section"),
        ));
    };
    let names = names.split_whitespace().skip(1);
    let values = values.split_whitespace().skip(1);
    names
        .zip(values)
        .map(|(n, v)| {
            v.parse::<u64>().map(|v| (n.to_string(), v)).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("/proc/net/netstat: {section} {n} is not a number: {v:?}"),
                )
            })
        })
        .collect()
}

/// `after − before` for each of `names` (0 when a counter is missing on this kernel).
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    names: &[&str],
) -> BTreeMap<String, u64> {
    names
        .iter()
        .map(|&n| {
            let b = before.get(n).copied().unwrap_or(0);
            let a = after.get(n).copied().unwrap_or(0);
            (n.to_string(), a.saturating_sub(b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tcpext_section() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 1 22 333\n\
                    IpExt: InNoRoutes\nIpExt: 7\n";
        let m = parse(text, "TcpExt").unwrap();
        assert_eq!(m["ListenOverflows"], 22);
        assert_eq!(m["ListenDrops"], 333);
        assert_eq!(parse(text, "IpExt").unwrap()["InNoRoutes"], 7);
        assert!(parse(text, "Nope").is_err());
    }

    #[test]
    fn delta_subtracts_and_fills_missing() {
        let b = parse("TcpExt: A B\nTcpExt: 1 5\n", "TcpExt").unwrap();
        let a = parse("TcpExt: A B\nTcpExt: 4 5\n", "TcpExt").unwrap();
        let d = delta(&b, &a, &["A", "B", "C"]);
        assert_eq!(d["A"], 3);
        assert_eq!(d["B"], 0);
        assert_eq!(d["C"], 0);
    }
}
