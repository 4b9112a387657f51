//! CPU pinning for the calling thread (`sched_setaffinity`).
//!
//! On a 2-core machine the acceptor and the load generator compete for CPU; both
//! sides pin themselves so a run measures the same placement every time.

use std::io;

/// Pins the calling thread to exactly one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    pin_current_thread_to(&[cpu])
}

/// The CPUs the calling thread may run on (`sched_getaffinity`), ascending: under
/// `taskset -c 1` that is `[1]`, not `[0]`. Falls back to `0..available_cpus()` if
/// the call fails (it does not for the calling thread).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data (zeroed = empty set); sched_getaffinity writes at
    // most its size; CPU_ISSET is given indices below CPU_SETSIZE and a valid set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..available_cpus()).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// A CPU list in `taskset -c` form: ascending runs as ranges, `0-3,6,8-9`.
pub fn format_cpus(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// Number of CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// CPU seconds (user, system) used so far by the calling thread (`RUSAGE_THREAD`).
pub fn thread_cpu_s() -> (f64, f64) {
    rusage(libc::RUSAGE_THREAD)
}

/// CPU seconds (user, system) used so far by the whole process (`RUSAGE_SELF`).
pub fn process_cpu_s() -> (f64, f64) {
    rusage(libc::RUSAGE_SELF)
}

fn rusage(who: libc::c_int) -> (f64, f64) {
    // SAFETY: rusage is plain data and getrusage only writes into it; RUSAGE_SELF and
    // RUSAGE_THREAD are always valid on Linux.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut ru);
        ru
    };
    let s = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    (s(ru.ru_utime), s(ru.ru_stime))
}

/// CPU seconds (user + system) used so far by the calling thread, from
/// `CLOCK_THREAD_CPUTIME_ID`. Unlike `getrusage(RUSAGE_THREAD)`, which can lag the
/// running thread by up to a scheduler tick, this includes the current time slice,
/// so it is exact for short intervals (a drain round lasts well under a tick).
pub fn thread_cpu_total_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID always exists
    // on Linux for the calling thread.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Pins the calling thread to a set of CPUs (empty: left as it is). Errors name the
/// CPUs asked for and the ones this thread may run on.
pub fn pin_current_thread_to(cpus: &[usize]) -> io::Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    if let Some(&cpu) = cpus.iter().find(|&&c| c >= libc::CPU_SETSIZE as usize) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cpu {cpu} is out of range: this thread runs on CPUs {} now",
                format_cpus(&allowed_cpus())
            ),
        ));
    }
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set. CPU_SET is given
    // indices below CPU_SETSIZE (checked above) and a valid set.
    let ret = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if ret != 0 {
        let err = io::Error::last_os_error();
        let asked = match cpus {
            [one] => format!("cpu {one}"),
            many => format!("cpus {}", format_cpus(many)),
        };
        return Err(io::Error::new(
            err.kind(),
            format!(
                "cannot pin thread to {asked}: {err} (the CPU must exist, be online and be in this process's cpuset; this thread runs on CPUs {} now)",
                format_cpus(&allowed_cpus())
            ),
        ));
    }
    Ok(())
}

/// The CPU-time clock of the calling thread, readable from other threads with
/// [`clock_s`] while this thread lives (`pthread_getcpuclockid`).
pub fn current_thread_cpu_clock() -> Option<libc::clockid_t> {
    let mut id: libc::clockid_t = 0;
    // SAFETY: pthread_self() is this live thread; `id` is a valid out-pointer.
    let ret = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
    (ret == 0).then_some(id)
}

/// Reads `clock` in seconds (None when the clock is gone, e.g. its thread ended).
pub fn clock_s(clock: libc::clockid_t) -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; an invalid clock id fails with EINVAL.
    let ret = unsafe { libc::clock_gettime(clock, &mut ts) };
    (ret == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_print_as_taskset_ranges() {
        assert_eq!(format_cpus(&[1]), "1");
        assert_eq!(format_cpus(&[3, 0, 1, 2, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(format_cpus(&[]), "");
    }

    #[test]
    fn the_allowed_set_holds_the_cpu_we_run_on() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty());
        assert_eq!(allowed.len(), available_cpus());
        // SAFETY: sched_getcpu takes no arguments.
        let cpu = unsafe { libc::sched_getcpu() };
        assert!(allowed.contains(&(cpu as usize)), "{cpu} in {allowed:?}");
    }
}
