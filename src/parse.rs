//! Value parsers for command-line values that other modules read too (durations,
//! socket addresses): kept out of `cli`, which holds the argument structs only.

use std::net::SocketAddr;
use std::time::Duration;

/// A humantime duration (`10s`, `500ms`, `2m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (write durations like 10s, 500ms or 2m)"))
}

/// A humantime duration above zero.
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    if s.trim().starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("the duration must be above zero".into());
    }
    Ok(d)
}

/// A socket address `ip:port`, IPv6 in brackets.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("{s:?} is not an address: write ip:port, e.g. 0.0.0.0:8080 or [::1]:8080")
    })
}
