//! One clock for both sides: `CLOCK_MONOTONIC` in nanoseconds.
//!
//! The acceptor (in `acceptbench`) and loadgen (possibly another process) stamp
//! events with this clock so that client and server records of one connection
//! can be subtracted. It is system-wide on Linux, so stamps from two processes
//! on the same host are comparable. `std::time::Instant` uses the same clock but
//! does not expose the raw value, hence this function.

/// Nanoseconds of `CLOCK_MONOTONIC`.
#[inline]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux,
    // so the call cannot fail and needs no error check.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
