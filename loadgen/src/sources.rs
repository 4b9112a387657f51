//! Source addresses for outgoing connections (`--sources`): one address or an inclusive
//! range, IPv4 or IPv6. Each connection binds the next address with port 0 after setting
//! `IP_BIND_ADDRESS_NO_PORT`, so the kernel picks the port at connect time per
//! (source, destination) 4-tuple instead of reserving a port per source address at bind
//! time; that is what lets N source addresses multiply the usable ephemeral ports.

use std::net::IpAddr;

use crate::error::LoadgenError;

/// An inclusive range of source addresses of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRange {
    first: IpAddr,
    count: u64,
}

impl SourceRange {
    /// Parses `A` or `A-B` (inclusive), both IPv4 or both IPv6, A ≤ B.
    pub fn parse(value: &str) -> Result<Self, LoadgenError> {
        let bad = |reason: String| LoadgenError::BadSources {
            value: value.to_string(),
            reason,
        };
        let ip = |s: &str| -> Result<IpAddr, LoadgenError> {
            s.trim()
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .map_err(|_| {
                    bad(format!(
                        "{s:?} is not an IP address; write e.g. 127.0.0.2-127.0.0.9 or ::1"
                    ))
                })
        };
        // IPv6 addresses contain no '-', so the first '-' splits a range.
        let (first, last) = match value.split_once('-') {
            Some((a, b)) => (ip(a)?, ip(b)?),
            None => {
                let a = ip(value)?;
                (a, a)
            }
        };
        let count = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(b) as i128) - (u32::from(a) as i128) + 1,
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let (a, b) = (u128::from(a), u128::from(b));
                if b < a {
                    0
                } else {
                    // Ranges beyond u64 are clamped: nobody binds 2^64 addresses.
                    (b - a).saturating_add(1).min(u64::MAX as u128) as i128
                }
            }
            _ => return Err(bad("both ends must be IPv4 or both IPv6".into())),
        };
        if count < 1 {
            return Err(bad(format!(
                "the range is reversed ({first} comes after {last}); write the lower address first, e.g. {last}-{first}"
            )));
        }
        Ok(SourceRange {
            first,
            count: count as u64,
        })
    }

    /// Number of addresses in the range.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// True for an IPv6 range.
    pub fn is_ipv6(&self) -> bool {
        self.first.is_ipv6()
    }

    /// The range as `--sources` takes it: `A` or `A-B`.
    pub fn to_arg(&self) -> String {
        if self.count == 1 {
            self.first.to_string()
        } else {
            format!("{}-{}", self.first, self.nth(self.count - 1))
        }
    }

    /// The `i`-th address of the range, wrapping around.
    pub fn nth(&self, i: u64) -> IpAddr {
        let k = i % self.count;
        match self.first {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(k as u32)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(k as u128)).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        let r = SourceRange::parse("127.0.0.2-127.0.0.9").unwrap();
        assert_eq!(r.len(), 8);
        assert_eq!(r.nth(0).to_string(), "127.0.0.2");
        assert_eq!(r.nth(9).to_string(), "127.0.0.3");
        assert_eq!(SourceRange::parse("::1").unwrap().len(), 1);
        assert_eq!(
            SourceRange::parse("fd00::1-fd00::4")
                .unwrap()
                .nth(3)
                .to_string(),
            "fd00::4"
        );
    }

    #[test]
    fn rejects_reversed_mixed_and_junk() {
        for bad in [
            "127.0.0.9-127.0.0.2",
            "127.0.0.1-::1",
            "banana",
            "127.0.0.1-",
        ] {
            assert!(SourceRange::parse(bad).is_err(), "{bad}");
        }
    }
}
