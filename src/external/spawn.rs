//! Starting an external server so that nothing it forks can outlive the sweep, even a
//! SIGKILLed one.
//!
//! The process forked here (the *keeper*) leads the server's process group, is pinned,
//! and dies with the thread that started it (`PR_SET_PDEATHSIG`, which fires when the
//! creating *thread* exits, not the process). As root it then makes a new PID
//! namespace and forks the namespace's init, which forks `sh -c COMMAND` (PID 2 there)
//! and reaps until nothing in the namespace is left. When the keeper dies — the run's
//! thread ended, or the sweep was SIGKILLed — its init dies too (its own
//! `PR_SET_PDEATHSIG`), and when a PID namespace's init dies the kernel SIGKILLs
//! everything in it (pid_namespaces(7)): the server, its workers, whatever it put in
//! the background. Without CAP_SYS_ADMIN the keeper runs `sh` itself (as before): a
//! process the server forks then outlives a SIGKILLed sweep (docs/your-server.md).
//!
//! The keeper and the init ignore SIGTERM (the init because an init ignores signals it
//! has no handler for), so the group's SIGTERM reaches only the server's processes and
//! ends them gracefully; SIGSTOP and SIGCONT stop and continue all of them; the keeper
//! exits as `sh` did (its exit code, or killed by the same signal), passed from the
//! init through a pipe. Between `fork` and `exec` only async-signal-safe calls are made
//! (the sweep is multi-threaded), on data prepared before the fork.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// What the parent prepares before forking: everything the children touch.
pub struct Prepared {
    /// `/bin/sh`, `-c`, the command: argv for execv, kept alive here.
    argv_owned: Vec<CString>,
    stdout: std::fs::File,
    stderr: std::fs::File,
    devnull: std::fs::File,
    cpu: Option<usize>,
    /// Try a new PID namespace (root); without one the keeper execs `sh` itself.
    contain: bool,
}

impl Prepared {
    /// `command` for `sh -c`, its output to `stdout`/`stderr`, pinned to `cpu`.
    pub fn new(
        command: &str,
        stdout: std::fs::File,
        stderr: std::fs::File,
        cpu: Option<usize>,
    ) -> std::io::Result<Prepared> {
        let nul = |_| std::io::Error::other("the command holds a NUL byte");
        Ok(Prepared {
            argv_owned: vec![
                CString::new("sh").map_err(nul)?,
                CString::new("-c").map_err(nul)?,
                CString::new(command).map_err(nul)?,
            ],
            stdout,
            stderr,
            devnull: std::fs::File::open("/dev/null")?,
            cpu,
            // SAFETY: geteuid has no failure mode and no memory effects.
            contain: unsafe { libc::geteuid() } == 0,
        })
    }
}

/// Forks the keeper (see the module doc); returns its PID, which is also the server's
/// process group id. The caller reaps it with `waitpid`.
pub fn spawn(p: &Prepared) -> std::io::Result<i32> {
    let sh = c"/bin/sh";
    let mut argv: Vec<*const libc::c_char> = p.argv_owned.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut set: libc::cpu_set_t = unsafe_zeroed_cpuset();
    if let Some(cpu) = p.cpu {
        // SAFETY: CPU_SET writes one bit of `set`, a local value.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // The init's report of sh's wait status to the keeper.
    let (status_rd, status_wr) = pipe()?;
    // SAFETY: getpid has no failure mode.
    let parent = unsafe { libc::getpid() };
    let fds = Fds {
        stdin: p.devnull.as_raw_fd(),
        stdout: p.stdout.as_raw_fd(),
        stderr: p.stderr.as_raw_fd(),
        status_rd: status_rd.as_raw_fd(),
        status_wr: status_wr.as_raw_fd(),
    };
    // SAFETY: fork in a multi-threaded process: the child calls only async-signal-safe
    // functions (keeper) on data prepared above, then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the child; see `keeper`.
        unsafe { keeper(parent, &fds, p.cpu.map(|_| &set), p.contain, sh, &argv) }
    }
    // Also here, so that the group exists before this returns (a signal sent at once
    // must reach it); the child's own call may come first, then this one fails harmlessly.
    // SAFETY: setpgid on our own child.
    unsafe { libc::setpgid(pid, pid) };
    drop((status_rd, status_wr));
    Ok(pid)
}

fn unsafe_zeroed_cpuset() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain bits; all zeros is the empty set.
    unsafe { std::mem::zeroed() }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: both descriptors were just made and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The descriptors the children use.
struct Fds {
    stdin: i32,
    stdout: i32,
    stderr: i32,
    status_rd: i32,
    status_wr: i32,
}

/// The keeper: group leader, pinned, dies with the starting thread; as root the parent
/// of a PID namespace's init. Never returns.
///
/// # Safety
/// Call only in a freshly forked child; only async-signal-safe calls are made.
unsafe fn keeper(
    parent: i32,
    fds: &Fds,
    cpu: Option<&libc::cpu_set_t>,
    contain: bool,
    sh: &std::ffi::CStr,
    argv: &[*const libc::c_char],
) -> ! {
    libc::setpgid(0, 0);
    libc::dup2(fds.stdin, 0);
    libc::dup2(fds.stdout, 1);
    libc::dup2(fds.stderr, 2);
    // The keeper and the init never exec: they must not hold the sweep's descriptors
    // (sockets, pipes of other runs) for the server's lifetime.
    close_all_but(fds.status_rd, fds.status_wr);
    // Rust ignores SIGPIPE; the server starts with the default, as std's Command does.
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    // If the thread that started it dies without stopping it, so does the keeper.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if libc::getppid() != parent {
        libc::_exit(125);
    }
    if let Some(set) = cpu {
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
            libc::_exit(126);
        }
    }
    // The sweep's threads may block signals; sh and the server start with none blocked.
    let mut none: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut none);
    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    if !contain || libc::unshare(libc::CLONE_NEWPID) != 0 {
        exec_sh(sh, argv);
    }
    let init = libc::fork();
    if init < 0 {
        libc::_exit(126);
    }
    if init == 0 {
        namespace_init(fds, sh, argv);
    }
    // The group's SIGTERM (and a hangup) is for the server, not for its keeper.
    libc::signal(libc::SIGTERM, libc::SIG_IGN);
    libc::signal(libc::SIGHUP, libc::SIG_IGN);
    libc::signal(libc::SIGINT, libc::SIG_IGN);
    libc::close(fds.status_wr);
    let mut init_status = 0;
    while libc::waitpid(init, &mut init_status, 0) < 0 {
        if *libc::__errno_location() != libc::EINTR {
            libc::_exit(126);
        }
    }
    let mut raw = [0u8; 4];
    let got = libc::read(fds.status_rd, raw.as_mut_ptr().cast(), 4);
    // sh's status when the init reported it; else the init's own (killed).
    let status = if got == 4 {
        i32::from_ne_bytes(raw)
    } else {
        init_status
    };
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        libc::signal(sig, libc::SIG_DFL);
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
    libc::_exit(libc::WEXITSTATUS(status))
}

/// PID 1 of the server's namespace: dies with the keeper, forks `sh` and reaps every
/// process of the namespace until none is left (the server's lifetime, which is what
/// bounds this loop), then reports sh's status to the keeper.
///
/// # Safety
/// As for `keeper`.
unsafe fn namespace_init(fds: &Fds, sh: &std::ffi::CStr, argv: &[*const libc::c_char]) -> ! {
    libc::close(fds.status_rd);
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    // The keeper may have died before the line above: then nobody reads the pipe.
    let mut pfd = libc::pollfd {
        fd: fds.status_wr,
        events: libc::POLLOUT,
        revents: 0,
    };
    if libc::poll(&mut pfd, 1, 0) < 0 || pfd.revents & libc::POLLERR != 0 {
        libc::_exit(125);
    }
    let sh_pid = libc::fork();
    if sh_pid < 0 {
        libc::_exit(126);
    }
    if sh_pid == 0 {
        libc::close(fds.status_wr);
        exec_sh(sh, argv);
    }
    let mut sh_status = 0;
    loop {
        let mut st = 0;
        let r = libc::waitpid(-1, &mut st, 0);
        if r == sh_pid {
            sh_status = st;
        } else if r < 0 && *libc::__errno_location() != libc::EINTR {
            break; // ECHILD: nothing of the server is left
        }
    }
    let raw = sh_status.to_ne_bytes();
    libc::write(fds.status_wr, raw.as_ptr().cast(), 4);
    libc::_exit(0)
}

/// Closes every descriptor from 3 up except `a` and `b`.
///
/// # Safety
/// As for `keeper`.
unsafe fn close_all_but(a: i32, b: i32) {
    let (lo, hi) = (a.min(b) as libc::c_uint, a.max(b) as libc::c_uint);
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        if first <= last {
            libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint);
        }
    };
    close_range(3, lo.saturating_sub(1));
    close_range(lo + 1, hi.saturating_sub(1));
    close_range(hi + 1, libc::c_uint::MAX);
}

/// # Safety
/// As for `keeper`.
unsafe fn exec_sh(sh: &std::ffi::CStr, argv: &[*const libc::c_char]) -> ! {
    libc::execv(sh.as_ptr(), argv.as_ptr());
    libc::_exit(127)
}

/// Whether process `pid` made a PID namespace for its children (the keeper did, as root).
pub fn contains(pid: i32) -> bool {
    let ns = |p: String| std::fs::read_link(p).ok();
    match (
        ns(format!("/proc/{pid}/ns/pid_for_children")),
        ns("/proc/self/ns/pid".to_string()),
    ) {
        (Some(theirs), Some(ours)) => theirs != ours,
        _ => false,
    }
}

/// While an attached server (`--attach …,pid=PID`) is paused: a forked child that
/// continues it (SIGCONT to `target`, a PID or a negative group id) as soon as this
/// process is gone, however it went — the child waits for end-of-file on a pipe whose
/// only write end this process holds (close-on-exec, so no exec'd child keeps it). A
/// SIGKILLed sweep therefore never leaves someone else's server stopped.
pub struct PauseGuard {
    pid: i32,
    write: Option<OwnedFd>,
}

impl PauseGuard {
    /// Forks the guard for `target`.
    pub fn start(target: i32) -> std::io::Result<PauseGuard> {
        let (rd, wr) = pipe()?;
        use std::os::fd::AsRawFd;
        let rd_fd = rd.as_raw_fd();
        // SAFETY: fork in a multi-threaded process: the child calls only
        // async-signal-safe functions (close_range, read, kill, _exit) on plain integers.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: the freshly forked child; async-signal-safe calls only.
            unsafe {
                // Every descriptor but its read end: no write end of this or another
                // guard stays open here.
                close_all_but(rd_fd, rd_fd);
                let mut b = 0u8;
                // Blocks until every write end is closed: the parent's, at resume or
                // when the parent dies. EINTR: try again.
                while libc::read(rd_fd, (&mut b as *mut u8).cast(), 1) < 0
                    && *libc::__errno_location() == libc::EINTR
                {}
                libc::kill(target, libc::SIGCONT);
                libc::_exit(0);
            }
        }
        drop(rd);
        Ok(PauseGuard {
            pid,
            write: Some(wr),
        })
    }
}

impl Drop for PauseGuard {
    /// The pause is over: the guard continues the server (already continued: no
    /// effect), exits, and is reaped.
    fn drop(&mut self) {
        drop(self.write.take());
        let mut status = 0;
        // SAFETY: waits for our own child, which exits once the pipe is closed.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}
