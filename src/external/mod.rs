//! Process control of an external server — the one module that starts, pauses, resumes,
//! stops and reaps someone else's server. Measurement code asks it; it never sends a
//! signal itself.
//!
//! A server is started with `sh -c COMMAND` in its own process group (so a signal
//! reaches every process it forks) — as root in a PID namespace of its own that dies
//! with the sweep, even a SIGKILLed one (`spawn`) — pinned to one CPU (inherited by its children),
//! with stdout and stderr in files; it is *ready* when a LISTEN socket on its port
//! appears (seen by `kernel::sockdiag`, so in the network namespace of the thread that
//! opened that socket, which is also the one the server was started from). An
//! [`ExternalServer`] stops and reaps its process group when dropped: no code path can
//! leave it running.

pub mod proc;
mod spawn;
pub mod template;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::kernel::sockdiag::{ListenerDiag, Listening};

pub use template::{Template, TemplateError};

/// Default wait for a server's listener.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a server gets between SIGTERM and SIGKILL.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(2);
/// Poll interval while waiting for readiness or an exit.
const POLL: Duration = Duration::from_millis(10);
/// A server that listens only on other ports this long after its start is failed then.
const ELSEWHERE_AFTER: Duration = Duration::from_secs(2);
/// Log lines quoted in an error.
const QUOTED_LINES: usize = 5;

/// How to start one server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Its name (`--server NAME=…`), used in file names and messages.
    pub name: String,
    /// The command, placeholders filled in.
    pub command: String,
    /// Pin it (and everything it forks) to this CPU.
    pub cpu: Option<usize>,
    /// Where its stdout and stderr go: `<log_stem>.stdout` and `<log_stem>.stderr`.
    pub log_stem: PathBuf,
    /// How long it may take to listen.
    pub ready_timeout: Duration,
    /// SIGTERM → SIGKILL grace when stopped.
    pub stop_grace: Duration,
}

/// What went wrong with an external server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `sh` could not be started, or a log file not made.
    #[error("server {name}: cannot start `{command}`: {source}")]
    Spawn {
        name: String,
        command: String,
        source: std::io::Error,
    },
    /// It exited before listening.
    #[error("server {name} exited before listening on port {port} ({status}); its last log line: {last}")]
    Exited {
        name: String,
        port: u16,
        status: String,
        last: String,
    },
    /// Nothing listened on the port in time.
    #[error("server {name} did not listen on port {port} within {}{elsewhere}; its last log lines:\n{last}", humantime::format_duration(*waited))]
    NotReady {
        name: String,
        port: u16,
        waited: Duration,
        /// ", but listens on …: …" when its processes listen on other ports.
        elsewhere: String,
        last: String,
    },
    /// sock_diag failed.
    #[error("server {name}: reading listeners with sock_diag: {source}")]
    Diag {
        name: String,
        source: std::io::Error,
    },
}

/// How a server ended when stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// Its `sh`'s exit status, e.g. `exit 0` or `signal 15 (SIGTERM)`.
    pub status: String,
    /// It (or a process it forked) outlived SIGTERM's grace and was killed.
    pub killed: bool,
}

/// A running external server (its process group). Dropping it stops and reaps it.
pub struct ExternalServer {
    name: String,
    /// Its keeper's PID (`spawn`) until reaped.
    keeper: Option<i32>,
    /// The keeper's exit status (= its `sh`'s) once reaped.
    status: Option<ExitStatus>,
    pgid: i32,
    stdout: PathBuf,
    stderr: PathBuf,
    ready_timeout: Duration,
    stop_grace: Duration,
    stopped: Option<Stopped>,
    /// A server already running (`--attach`): never started, stopped or reaped.
    attached: Option<Attached>,
    /// While an attached server is paused: what continues it if the sweep dies.
    pause_guard: std::sync::Mutex<Option<spawn::PauseGuard>>,
}

/// How an attached server is paused and its CPU read.
#[derive(Debug, Clone, Copy)]
struct Attached {
    /// Its PID, if given.
    pid: Option<i32>,
    /// The PID leads a process group: pauses go to the group, else to the PID alone.
    group: bool,
}

impl ExternalServer {
    /// A server that is already running (`--attach`), with its PID if known: pauses
    /// (SIGSTOP/SIGCONT) go to that PID's process group if it leads one, else to the
    /// PID alone; its CPU is that PID's and its descendants'; it is never stopped.
    pub fn attach(name: &str, pid: Option<i32>) -> ExternalServer {
        ExternalServer {
            name: name.to_string(),
            keeper: None,
            status: None,
            pgid: pid.unwrap_or(0),
            stdout: PathBuf::new(),
            stderr: PathBuf::new(),
            ready_timeout: Duration::ZERO,
            stop_grace: Duration::ZERO,
            stopped: None,
            attached: Some(Attached {
                pid,
                group: pid.is_some_and(proc::leads_group),
            }),
            pause_guard: Default::default(),
        }
    }

    /// An attached server: what its pauses reach, for the row's note; None if started.
    pub fn attached_pauses(&self) -> Option<String> {
        let a = self.attached?;
        Some(match a.pid {
            None => "no PID given: it is never paused, its CPU is not read".into(),
            Some(p) if a.group => format!(
                "pauses go to process group {p} (PID {p} leads it); CPU = PID {p} and its descendants"
            ),
            Some(p) => format!(
                "pauses go to PID {p} alone (it leads no process group); CPU = PID {p} and its descendants"
            ),
        })
    }

    /// Starts `spec`'s command in a new process group, from the calling thread (so in its
    /// network namespace).
    pub fn start(spec: &ServerSpec) -> Result<ExternalServer, ServerError> {
        let spawn_err = |source| ServerError::Spawn {
            name: spec.name.clone(),
            command: spec.command.clone(),
            source,
        };
        let stdout = spec.log_stem.with_extension("stdout");
        let stderr = spec.log_stem.with_extension("stderr");
        let out = std::fs::File::create(&stdout).map_err(spawn_err)?;
        let err = std::fs::File::create(&stderr).map_err(spawn_err)?;
        let prepared =
            spawn::Prepared::new(&spec.command, out, err, spec.cpu).map_err(spawn_err)?;
        let pgid = spawn::spawn(&prepared).map_err(spawn_err)?;
        Ok(ExternalServer {
            name: spec.name.clone(),
            keeper: Some(pgid),
            status: None,
            pgid,
            stdout,
            stderr,
            ready_timeout: spec.ready_timeout,
            stop_grace: spec.stop_grace,
            stopped: None,
            attached: None,
            pause_guard: Default::default(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its process group id (= the PID of its keeper, see `spawn`).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Whether it runs in a PID namespace of its own, killed whole when the sweep dies
    /// (root); else a process it forks can outlive a SIGKILLed sweep.
    pub fn contained(&self) -> bool {
        self.keeper.is_some_and(spawn::contains)
    }

    /// Its stdout and stderr files.
    pub fn logs(&self) -> (&Path, &Path) {
        (&self.stdout, &self.stderr)
    }

    /// Waits until a LISTEN socket on `port` appears (seen through `diag`) and returns
    /// the listeners; fails, naming the server and quoting its log, if it exits first or
    /// the time limit passes.
    pub fn wait_ready(
        &mut self,
        diag: &mut ListenerDiag,
        port: u16,
    ) -> Result<Vec<Listening>, ServerError> {
        let start = Instant::now();
        // Bounded by the time limit (each turn sleeps POLL).
        loop {
            let seen = diag.listening(port).map_err(|source| ServerError::Diag {
                name: self.name.clone(),
                source,
            })?;
            if !seen.is_empty() {
                return Ok(seen);
            }
            if let Some(status) = self.exited() {
                return Err(ServerError::Exited {
                    name: self.name.clone(),
                    port,
                    status: describe(status),
                    last: self.last_lines(1).pop().unwrap_or_else(|| "(none)".into()),
                });
            }
            // A server listening on other ports for a while has set up its listeners:
            // it is not going to listen on this one (servers bind theirs together).
            let timed_out = start.elapsed() >= self.ready_timeout;
            let elsewhere = if timed_out || start.elapsed() >= ELSEWHERE_AFTER {
                self.listening_elsewhere(diag)
            } else {
                String::new()
            };
            if timed_out || !elsewhere.is_empty() {
                let waited = start.elapsed().min(self.ready_timeout);
                return Err(ServerError::NotReady {
                    name: self.name.clone(),
                    port,
                    waited: Duration::from_millis(waited.as_millis() as u64),
                    elsewhere,
                    last: self.quoted_log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// ", but it listens on ADDR, …: put {port} …" when its processes listen on other
    /// ports; empty otherwise.
    fn listening_elsewhere(&self, diag: &mut ListenerDiag) -> String {
        let inodes = proc::group_socket_inodes(self.pgid);
        let Ok(all) = diag.all_listening() else {
            return String::new();
        };
        let other: Vec<String> = all
            .iter()
            .filter(|l| inodes.contains(&l.inode))
            .map(|l| l.addr.to_string())
            .collect();
        if other.is_empty() {
            String::new()
        } else {
            format!(
                ", but it listens on {}: give it the run's port with {{port}} in its command (and {{addr}} for the address)",
                other.join(", ")
            )
        }
    }

    /// The exit status of its `sh`, if it has exited (reaped here, kept for later).
    fn exited(&mut self) -> Option<ExitStatus> {
        if let (None, Some(pid)) = (self.status, self.keeper) {
            let mut raw = 0;
            // SAFETY: waitpid on our own child, writing its status into `raw`.
            if unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) } == pid {
                use std::os::unix::process::ExitStatusExt;
                self.status = Some(ExitStatus::from_raw(raw));
                self.keeper = None;
            }
        }
        self.status
    }

    /// The last `n` lines of its stderr, else of its stdout.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let err = proc::last_lines(&self.stderr, n);
        if err.is_empty() {
            proc::last_lines(&self.stdout, n)
        } else {
            err
        }
    }

    /// Its last log lines, indented, for an error message.
    fn quoted_log(&self) -> String {
        let lines = self.last_lines(QUOTED_LINES);
        if lines.is_empty() {
            return format!(
                "  (none in {} or {})",
                self.stdout.display(),
                self.stderr.display()
            );
        }
        lines
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGSTOP to the whole group: it stops accepting (and doing anything else). An
    /// attached server (not ours, nothing of ours dies with it) is first given a
    /// [`spawn::PauseGuard`], so that it is continued even if the sweep is killed.
    pub fn pause(&self) -> std::io::Result<()> {
        if let Some(Attached {
            pid: Some(pid),
            group,
        }) = self.attached
        {
            let guard = spawn::PauseGuard::start(if group { -pid } else { pid })?;
            *self.pause_guard.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
        }
        self.signal(libc::SIGSTOP)
    }

    /// SIGCONT to the whole group (and the attached server's guard ends).
    pub fn resume(&self) -> std::io::Result<()> {
        let r = self.signal(libc::SIGCONT);
        drop(
            self.pause_guard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        r
    }

    fn signal(&self, sig: libc::c_int) -> std::io::Result<()> {
        if let Some(a) = self.attached {
            let pid = a.pid.ok_or_else(|| {
                std::io::Error::other(format!(
                    "server {} was attached without its PID: give --attach {}=ADDR:PORT,pid=PID to pause it",
                    self.name, self.name
                ))
            })?;
            let target = if a.group { -pid } else { pid };
            // SAFETY: kill(2) on the PID (or group) the user named for this server.
            return if unsafe { libc::kill(target, sig) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            };
        }
        // A process group id is not reused while any member lives; once its `sh` is
        // reaped and no member is left the id may be someone else's: never signal it.
        let reaped = self.keeper.is_none();
        if self.stopped.is_some() || (reaped && proc::group_members(self.pgid).is_empty()) {
            return Ok(());
        }
        // SAFETY: kill with a negative pid signals the process group we created.
        if unsafe { libc::kill(-self.pgid, sig) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// CPU seconds its processes (every thread) have used so far; the difference over a
    /// window is its CPU in that window.
    pub fn cpu_s(&self) -> f64 {
        match self.attached {
            Some(a) => a
                .pid
                .map_or(0.0, |p| proc::pids_cpu_s(&proc::tree_members(p))),
            None => proc::group_cpu_s(self.pgid),
        }
    }

    /// Whether its CPU is read (not for an attached server without its PID).
    pub fn cpu_known(&self) -> bool {
        self.attached.is_none_or(|a| a.pid.is_some())
    }

    /// Stops it: SIGCONT and SIGTERM to the group, SIGKILL to whatever is left after the
    /// grace period; reaps its `sh` and waits (bounded) until no process of the group is
    /// left. Idempotent: later calls return the first result.
    pub fn stop(&mut self) -> Stopped {
        if let Some(s) = &self.stopped {
            return s.clone();
        }
        if let Some(a) = self.attached {
            // Not ours to stop; continued in case a pause was cut short.
            if a.pid.is_some() {
                let _ = self.signal(libc::SIGCONT);
            }
            let s = Stopped {
                status: "left running (attached)".into(),
                killed: false,
            };
            self.stopped = Some(s.clone());
            return s;
        }
        // A stopped process acts on SIGTERM only once continued.
        let _ = self.signal(libc::SIGCONT);
        let _ = self.signal(libc::SIGTERM);
        let killed = !self.wait_gone(self.stop_grace);
        if killed {
            let _ = self.signal(libc::SIGKILL);
            self.wait_gone(Duration::from_secs(5));
        }
        // Reaped by `wait_gone` unless it outlived SIGKILL's 5 s (uninterruptible
        // sleep): then it is named, not waited for without end.
        let status = match self.exited() {
            Some(st) => describe(st),
            None => format!("still running 5 s after SIGKILL (pid {})", self.pgid),
        };
        let s = Stopped { status, killed };
        self.stopped = Some(s.clone());
        s
    }

    /// Waits up to `limit` until its `sh` has exited and no process of the group is
    /// left; true if so.
    fn wait_gone(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            let sh_gone = self.exited().is_some();
            if sh_gone && proc::group_members(self.pgid).is_empty() {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for ExternalServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `exit N` or `signal N (NAME)`.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exit {code}")
    } else if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGINT => " (SIGINT)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            _ => "",
        };
        format!("signal {sig}{name}")
    } else {
        "unknown".into()
    }
}
