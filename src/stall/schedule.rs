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

/// The kernel's timer wheel, which decides when a retransmit timer really fires: a
/// timer is filed in a bucket of its level and fires at the bucket's end, so a timeout
/// of `d` jiffies fires up to one granularity late — 8^level jiffies, where level 0
/// holds timeouts under 63 jiffies, level 1 under 504, level 2 under 4032, … (kernel
/// `timer.c`, `LVL_CLK_SHIFT` 3, `LVL_BITS` 6, since 4.8). Every timer of a bucket fires
/// together: with HZ=250 a 1 s SYN retransmit has a 32 ms granularity, so the SYNs
/// dropped over those 32 ms come back in one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerWheel {
    /// One jiffy, ns (1/HZ).
    pub jiffy_ns: u64,
}

impl TimerWheel {
    /// The running kernel's wheel: a jiffy is the resolution of CLOCK_MONOTONIC_COARSE.
    pub fn of_running_kernel() -> Option<TimerWheel> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer for the duration of the call.
        let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        (rc == 0 && ns > 0).then_some(TimerWheel { jiffy_ns: ns })
    }

    /// HZ.
    pub fn hz(&self) -> u64 {
        1_000_000_000 / self.jiffy_ns.max(1)
    }

    /// The granularity, ns, of a timer armed `timeout_ns` ahead.
    pub fn granularity_ns(&self, timeout_ns: u64) -> u64 {
        let delta = timeout_ns.div_ceil(self.jiffy_ns.max(1));
        let mut level = 0;
        // LVL_START(n+1) = 63 << 3n: the first delta that belongs to level n+1.
        while level < 8 && delta >= 63u64 << (3 * level) {
            level += 1;
        }
        (1u64 << (3 * level)) * self.jiffy_ns
    }

    /// When a timer armed at `armed_ns` for `timeout_ns` fires: the end of its bucket,
    /// the next multiple of its granularity strictly after its expiry (in jiffies;
    /// kernel `calc_index`). The jiffies counter's phase against CLOCK_MONOTONIC is
    /// unknown, so the buckets' edges are only as right as that.
    pub fn fires_at(&self, armed_ns: u64, timeout_ns: u64) -> u64 {
        let j = self.jiffy_ns.max(1);
        let g = self.granularity_ns(timeout_ns) / j;
        let expiry = armed_ns / j + timeout_ns.div_ceil(j);
        (expiry / g + 1) * g * j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retransmit_fires_at_the_end_of_its_wheel_bucket() {
        let hz250 = TimerWheel {
            jiffy_ns: 4_000_000,
        };
        assert_eq!(hz250.hz(), 250);
        // 1 s = 250 jiffies: level 1, 8 jiffies = 32 ms.
        assert_eq!(hz250.granularity_ns(1_000_000_000), 32_000_000);
        // 100 ms = 25 jiffies: level 0, one jiffy.
        assert_eq!(hz250.granularity_ns(100_000_000), 4_000_000);
        // 4 s = 1000 jiffies: level 2, 256 ms.
        assert_eq!(hz250.granularity_ns(4_000_000_000), 256_000_000);
        // Armed at 10 ms and 41 ms: both fire at 1.024 s + 32 ms buckets.
        assert_eq!(hz250.fires_at(10_000_000, 1_000_000_000), 1_024_000_000);
        assert_eq!(hz250.fires_at(23_000_000, 1_000_000_000), 1_024_000_000);
        assert_eq!(hz250.fires_at(25_000_000, 1_000_000_000), 1_056_000_000);
        let hz1000 = TimerWheel {
            jiffy_ns: 1_000_000,
        };
        assert_eq!(hz1000.granularity_ns(1_000_000_000), 64_000_000);
        let here =
            TimerWheel::of_running_kernel().expect("CLOCK_MONOTONIC_COARSE has a resolution");
        assert!(
            [100, 250, 300, 1000].contains(&here.hz()),
            "HZ {} is not one Linux offers",
            here.hz()
        );
    }

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
