//! perf events, through perf-event2: the one place the project opens them. Counting on
//! the calling thread: its system calls (`raw_syscalls:sys_enter`) and its
//! `io_uring_enter` calls (`syscalls:sys_enter_io_uring_enter`), read at an engine's
//! release and done marks, so a window's counts are exactly its own.
//!
//! Sampling — the kernel's account of connections — is [`trace`] (opening and reading
//! the rings) with [`decode`] (the tracepoints and their records by field name).
//!
//! Where perf is not permitted (not root with `perf_event_paranoid` > 1, a container,
//! no tracefs) opening fails with the reason and callers fall back to what
//! `getrusage` gives (context switches and the user/kernel CPU split), saying so.

pub use common::ktrace::{decode, trace};

use perf_event::events::Tracepoint;
use perf_event::{Builder, Counter};

use super::tracefs::Tracefs;

/// The tracepoints counted, by name.
pub const SYSCALLS: &str = "raw_syscalls:sys_enter";
/// `io_uring_enter` entries.
pub const URING_ENTERS: &str = "syscalls:sys_enter_io_uring_enter";

/// Counters on one thread, opened by that thread for itself. Two plain counters, not
/// a perf group: a tracepoint member of perf-event2's group (a software dummy leader)
/// counted nothing here (Linux 6.18).
pub struct ThreadCounters {
    syscalls: Counter,
    uring_enters: Option<Counter>,
}

/// System calls of the counting itself inside a window read with
/// [`ThreadCounters::read_start`] and [`ThreadCounters::read_end`].
pub const OWN_SYSCALLS: u64 = 1;

/// What the counters read at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// System calls entered so far.
    pub syscalls: u64,
    /// io_uring_enter calls entered so far (None: this kernel lacks the tracepoint).
    pub uring_enters: Option<u64>,
}

/// The tracepoint ids, looked up once per process (tracefs must be open meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    syscalls: u64,
    uring_enters: Option<u64>,
}

impl Ids {
    /// Looks the counted tracepoints up in `tracefs`.
    pub fn of(tracefs: &Tracefs) -> Result<Ids, String> {
        Ok(Ids {
            syscalls: tracefs.id(SYSCALLS).map_err(|e| e.to_string())?,
            uring_enters: tracefs.id(URING_ENTERS).ok(),
        })
    }
}

/// `ids` if perf will count them here: opens and drops a counter on this thread, so a
/// sweep learns at its start, once, whether its rows will carry the counts.
pub fn usable(ids: Ids) -> Result<Ids, String> {
    ThreadCounters::open(ids).map(|_| ids)
}

fn counting(id: u64) -> Builder<'static> {
    let mut b = Builder::new(Tracepoint::with_id(id));
    // The calling thread only (pid 0, no inherit), on any CPU; a tracepoint fires in
    // the kernel, so kernel events must be counted.
    b.observe_self().any_cpu().include_kernel().inherit(false);
    b
}

impl ThreadCounters {
    /// Opens and enables the counters for the calling thread.
    pub fn open(ids: Ids) -> Result<ThreadCounters, String> {
        let why = |e: std::io::Error| {
            format!("perf_event_open on a tracepoint failed ({e}): needs root or kernel.perf_event_paranoid ≤ -1")
        };
        let mut syscalls = counting(ids.syscalls).build().map_err(why)?;
        let mut uring_enters = match ids.uring_enters {
            Some(id) => Some(counting(id).build().map_err(why)?),
            None => None,
        };
        if let Some(c) = uring_enters.as_mut() {
            c.enable().map_err(why)?;
        }
        syscalls.enable().map_err(why)?;
        Ok(ThreadCounters {
            syscalls,
            uring_enters,
        })
    }

    /// Reads the counts at the start of a window: the system-call counter last, so
    /// that no read of ours falls inside the window.
    pub fn read_start(&mut self) -> Option<Counts> {
        let uring_enters = self.read_uring()?;
        let syscalls = self.syscalls.read().ok()?;
        Some(Counts {
            syscalls,
            uring_enters,
        })
    }

    /// Reads the counts at the end of a window: the system-call counter first; its own
    /// read is entered before the kernel reads the counter, so the window holds exactly
    /// one system call of ours ([`OWN_SYSCALLS`]).
    pub fn read_end(&mut self) -> Option<Counts> {
        let syscalls = self.syscalls.read().ok()?;
        let uring_enters = self.read_uring()?;
        Some(Counts {
            syscalls,
            uring_enters,
        })
    }

    fn read_uring(&mut self) -> Option<Option<u64>> {
        match self.uring_enters.as_mut() {
            Some(c) => c.read().ok().map(Some),
            None => Some(None),
        }
    }
}

/// A thread's use of the kernel at one instant: `getrusage(RUSAGE_THREAD)` (user and
/// kernel CPU, voluntary and involuntary context switches) and, where perf counts it,
/// its system calls and io_uring_enter calls so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadUsage {
    /// User CPU, s.
    pub user_s: f64,
    /// Kernel CPU, s.
    pub sys_s: f64,
    /// Voluntary context switches (the thread blocked).
    pub vol_cs: u64,
    /// Involuntary context switches (preempted).
    pub invol_cs: u64,
    /// perf's counts, None where perf is not counting.
    pub counts: Option<Counts>,
}

/// `getrusage(RUSAGE_THREAD)` of the calling thread, without perf's counts.
fn rusage_now() -> ThreadUsage {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD of the calling thread into a struct we own.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) } != 0 {
        return ThreadUsage::default();
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    ThreadUsage {
        user_s: s(r.ru_utime),
        sys_s: s(r.ru_stime),
        vol_cs: r.ru_nvcsw as u64,
        invol_cs: r.ru_nivcsw as u64,
        counts: None,
    }
}

impl ThreadUsage {
    /// Now, at the start of a window: getrusage first, perf last (outside the window).
    pub fn start(counters: Option<&mut ThreadCounters>) -> ThreadUsage {
        let usage = rusage_now();
        ThreadUsage {
            counts: counters.and_then(ThreadCounters::read_start),
            ..usage
        }
    }

    /// Now, at the end of a window: perf first (one read of ours inside the window),
    /// then getrusage.
    pub fn end(counters: Option<&mut ThreadCounters>) -> ThreadUsage {
        let counts = counters.and_then(ThreadCounters::read_end);
        ThreadUsage {
            counts,
            ..rusage_now()
        }
    }

    /// What happened between `earlier` and this (the counting's own read taken out).
    pub fn since(&self, earlier: &ThreadUsage) -> UsageDelta {
        let counts = match (self.counts, earlier.counts) {
            (Some(b), Some(a)) => Some(Counts {
                syscalls: b.syscalls.saturating_sub(a.syscalls + OWN_SYSCALLS),
                uring_enters: b
                    .uring_enters
                    .zip(a.uring_enters)
                    .map(|(b, a)| b.saturating_sub(a)),
            }),
            _ => None,
        };
        UsageDelta {
            user_s: (self.user_s - earlier.user_s).max(0.0),
            sys_s: (self.sys_s - earlier.sys_s).max(0.0),
            vol_cs: self.vol_cs.saturating_sub(earlier.vol_cs),
            invol_cs: self.invol_cs.saturating_sub(earlier.invol_cs),
            counts,
        }
    }
}

/// A thread's use of the kernel over a window (see [`ThreadUsage`]); summed over
/// acceptors and drain rounds with [`UsageDelta::add`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageDelta {
    /// User CPU, s.
    pub user_s: f64,
    /// Kernel CPU, s.
    pub sys_s: f64,
    /// Voluntary context switches.
    pub vol_cs: u64,
    /// Involuntary context switches.
    pub invol_cs: u64,
    /// System calls and io_uring enters (None: perf did not count them all).
    pub counts: Option<Counts>,
}

impl UsageDelta {
    /// The sum of two windows (counts only if both have them).
    pub fn add(&self, o: &UsageDelta) -> UsageDelta {
        UsageDelta {
            user_s: self.user_s + o.user_s,
            sys_s: self.sys_s + o.sys_s,
            vol_cs: self.vol_cs + o.vol_cs,
            invol_cs: self.invol_cs + o.invol_cs,
            counts: self.counts.zip(o.counts).map(|(a, b)| Counts {
                syscalls: a.syscalls + b.syscalls,
                uring_enters: a.uring_enters.zip(b.uring_enters).map(|(x, y)| x + y),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts a known number of system calls on this thread.
    #[test]
    fn counts_this_threads_system_calls() {
        let Ok(t) = Tracefs::open() else {
            common::testskip::skip(common::testskip::Lack::Root, "no tracefs here");
            return;
        };
        let ids = Ids::of(&t).expect("raw_syscalls:sys_enter");
        let mut c = match ThreadCounters::open(ids) {
            Ok(c) => c,
            Err(e) => {
                common::testskip::skip(common::testskip::Lack::Root, &e);
                return;
            }
        };
        let a = c.read_start().unwrap();
        for _ in 0..1000 {
            // SAFETY: getppid takes no arguments.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        let b = c.read_end().unwrap();
        assert_eq!(b.syscalls - a.syscalls, 1000 + OWN_SYSCALLS);
        assert_eq!(b.uring_enters, a.uring_enters);
    }
}
