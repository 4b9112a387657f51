//! When a client whose SYN was dropped tries again: the kernel's SYN retransmit
//! schedule, read from the running kernel's sysctls.
//!
//! The initial RTO is 1 s (`TCP_TIMEOUT_INIT`). Since Linux 6.5 the first
//! `tcp_syn_linear_timeouts` (default 4) retransmits keep that RTO, and only then does it
//! double; before, it doubled from the first. After `tcp_syn_retries` (default 6)
//! retransmits the client waits one more RTO and gives up (ETIMEDOUT).

use std::io;

use crate::kernel::sysctl;

/// The initial SYN retransmit timeout, ms.
pub const INITIAL_RTO_MS: u64 = 1000;

/// A SYN's retransmit times, from the first SYN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynSchedule {
    /// `net.ipv4.tcp_syn_retries`.
    pub retries: u32,
    /// `net.ipv4.tcp_syn_linear_timeouts` (0 where the kernel has no such setting).
    pub linear: u32,
}

impl SynSchedule {
    /// The schedule of the kernel this runs on (in the caller's network namespace).
    pub fn of_running_kernel() -> io::Result<SynSchedule> {
        let retries = sysctl::read_u64("net.ipv4.tcp_syn_retries")? as u32;
        // Absent before 6.5: every timeout doubles.
        let linear = match sysctl::read_u64("net.ipv4.tcp_syn_linear_timeouts") {
            Ok(n) => n as u32,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(SynSchedule { retries, linear })
    }

    /// The RTO before retransmit `i` (0-based), and before giving up for `i == retries`.
    pub fn timeout_ms(&self, i: u32) -> u64 {
        // Linear timeouts first (the first RTO and `linear` more at 1 s), then doubling.
        let doublings = i.saturating_sub(self.linear);
        INITIAL_RTO_MS << doublings.min(20)
    }

    /// Cumulative times of the retransmits after the first SYN, ms: 1, 2, 3, 4, 5, 7 s
    /// with 6 retries and 4 linear timeouts; 1, 3, 7, 15, 31, 63 s with none.
    pub fn retransmits_ms(&self) -> Vec<u64> {
        let mut t = 0;
        (0..self.retries)
            .map(|i| {
                t += self.timeout_ms(i);
                t
            })
            .collect()
    }

    /// When the client gives up (ETIMEDOUT), ms after its first SYN.
    pub fn give_up_ms(&self) -> u64 {
        (0..=self.retries).map(|i| self.timeout_ms(i)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_timeouts_since_6_5_and_doubling_before() {
        let new = SynSchedule {
            retries: 6,
            linear: 4,
        };
        assert_eq!(new.retransmits_ms(), [1000, 2000, 3000, 4000, 5000, 7000]);
        assert_eq!(new.give_up_ms(), 11_000);
        let old = SynSchedule {
            retries: 6,
            linear: 0,
        };
        assert_eq!(
            old.retransmits_ms(),
            [1000, 3000, 7000, 15000, 31000, 63000]
        );
        assert_eq!(old.give_up_ms(), 127_000);
        let short = SynSchedule {
            retries: 2,
            linear: 4,
        };
        assert_eq!(short.retransmits_ms(), [1000, 2000]);
        assert_eq!(short.give_up_ms(), 3000);
    }

    #[test]
    fn the_running_kernel_schedule_matches_its_sysctls() {
        let s = SynSchedule::of_running_kernel().expect("tcp_syn_retries is readable");
        let retries: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_syn_retries")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(s.retries, retries);
        assert_eq!(s.retransmits_ms().len(), retries as usize);
        // The first retransmit is always one initial RTO after the SYN.
        assert_eq!(
            s.retransmits_ms().first(),
            Some(&1000).filter(|_| retries > 0)
        );
    }
}
