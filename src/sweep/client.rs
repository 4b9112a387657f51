//! The loadgen child process of a sweep run: started as `acceptbench loadgen …`
//! (this same executable) from a typed [`loadgen::Config`], its JSON report and
//! per-connection records read back when it ends.
//!
//! The child gets its own process group (a Ctrl-C at the terminal reaches only the
//! sweep, which forwards exactly one stop) and dies with the thread that started it
//! (`PR_SET_PDEATHSIG`), so a killed sweep never leaves a client connecting.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Source addresses for the client: several, so ports are reused rarely and the
/// join by (ip, port) stays unambiguous.
pub const SOURCES_V4: &str = "127.0.0.2-127.0.0.9";

/// How long a child asked to stop (SIGINT) has to report before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// A running loadgen child.
pub struct Client {
    child: Child,
    /// Lines of the child's stdout, read on a thread of their own so that every wait
    /// for the child can have a deadline (a stuck child must not stall the sweep).
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    records: PathBuf,
    stderr: PathBuf,
    interrupted: bool,
}

/// What a finished loadgen child left behind.
pub struct ClientResult {
    /// Its JSON report.
    pub report: loadgen::Report,
    /// Its per-connection records (on this host's CLOCK_MONOTONIC).
    pub records: Vec<loadgen::ConnRecord>,
    /// ssh client hosts: each host's own records, for the per-host join (empty for a
    /// local client).
    pub hosts: Vec<HostRecords>,
}

/// One ssh client host's share of a run, as its records file had it.
#[derive(Debug, Clone)]
pub struct HostRecords {
    /// `[user@]host[:port]`.
    pub label: String,
    /// Its records' header (host name, boot, clock anchor: the loadgen's start).
    pub meta: common::record_header::RecordMeta,
    /// Its records, on its own clock.
    pub records: Vec<loadgen::ConnRecord>,
    /// Its wall clock − ours, ns, as preflight estimated it, and within ± this.
    pub offset_ns: (i64, u64),
}

/// The loadgen configuration every sweep run starts from: `target`, the client
/// threads and CPUs, several source addresses, a JSON report and records, quiet.
pub fn base_config(
    target: std::net::SocketAddr,
    threads: u32,
    cpus: &[usize],
) -> anyhow::Result<loadgen::Config> {
    let mut c = loadgen::Config::new(target);
    c.threads = threads as usize;
    c.cpus = cpus.to_vec();
    c.sources = Some(loadgen::sources::SourceRange::parse(SOURCES_V4)?);
    c.keep_records = true;
    c.output.json = true;
    c.output.quiet = true;
    Ok(c)
}

impl Client {
    /// Starts `exe loadgen <config>` writing its records into `tmp`; with
    /// `config.output.sync_stdio` its stdin is a pipe for the drain-round protocol.
    pub fn spawn(exe: &Path, tmp: &Path, config: &loadgen::Config) -> anyhow::Result<Client> {
        Self::spawn_in(exe, tmp, config, None)
    }

    /// As [`Client::spawn`], the child entering the network namespace `netns` (an open
    /// `/run/netns/…` descriptor) before exec (`sweep --client-hosts`).
    pub fn spawn_in(
        exe: &Path,
        tmp: &Path,
        config: &loadgen::Config,
        netns: Option<std::os::fd::RawFd>,
    ) -> anyhow::Result<Client> {
        let records = tmp.join("records.bin");
        let stderr = tmp.join("loadgen.stderr");
        let _ = std::fs::remove_file(&records);
        let mut config = config.clone();
        config.keep_records = true;
        config.output.records = Some(records.clone());
        config
            .validate()
            .context("the sweep built an invalid loadgen configuration")?;
        let err_file = std::fs::File::create(&stderr)
            .with_context(|| format!("cannot create {}", stderr.display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("loadgen")
            .args(config.to_args())
            .stdin(if config.output.sync_stdio {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(err_file)
            .process_group(0);
        dies_with_this_thread(&mut cmd);
        if let Some(fd) = netns {
            // SAFETY: the closure runs in the forked child before exec and calls only
            // setns(2), which is async-signal-safe; the namespace descriptor is held
            // open by the caller until the spawn returns.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} loadgen", exe.display()))?;
        let stdout = child.stdout.take().context("loadgen child has no stdout")?;
        let stdin = child.stdin.take();
        let lines = read_lines(stdout, "loadgen-stdout")?;
        Ok(Client {
            child,
            lines,
            stdin,
            records,
            stderr,
            interrupted: false,
        })
    }

    /// Waits up to `limit` for the next stdout line: `Ok(None)` at EOF, an error
    /// when the child says nothing for that long.
    pub fn read_line(&mut self, limit: Duration) -> anyhow::Result<Option<String>> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => {
                bail!("loadgen said nothing for {} s", limit.as_secs_f64())
            }
        }
    }

    /// [`Client::read_line`], spinning instead of sleeping: the calling thread stays on
    /// its CPU while it waits.
    pub fn read_line_spinning(&mut self, limit: Duration) -> anyhow::Result<Option<String>> {
        let give_up = std::time::Instant::now() + limit;
        loop {
            match self.lines.try_recv() {
                Ok(line) => return Ok(Some(line)),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Ok(None),
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
            if std::time::Instant::now() >= give_up {
                bail!("loadgen said nothing for {} s", limit.as_secs_f64())
            }
            std::hint::spin_loop();
        }
    }

    /// Writes one reply of the drain-round protocol to the child's stdin.
    pub fn send(&mut self, reply: loadgen::protocol::Reply) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("loadgen child has no stdin")?;
        writeln!(stdin, "{}", reply.word())
            .and_then(|_| stdin.flush())
            .context("writing to loadgen")
    }

    /// Asks the child to stop early, once (SIGINT: loadgen finishes and reports what
    /// it measured; a second SIGINT would make it exit at once without a report).
    pub fn interrupt(&mut self) {
        if std::mem::replace(&mut self.interrupted, true) {
            return;
        }
        // SAFETY: kill(2) on the PID of our own child, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
    }

    /// True once the child has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits up to `limit` for the child to end, then asks it to stop and waits
    /// [`STOP_GRACE`] more (a report that arrives then is used), then kills it. Parses
    /// its JSON report (the last stdout line starting with `{`) and its records.
    pub fn finish(mut self, limit: Duration) -> anyhow::Result<ClientResult> {
        drop(self.stdin.take());
        let mut last = None;
        let mut end = Instant::now() + limit;
        let mut killed = false;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with('{') => last = Some(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) if !self.interrupted => {
                    self.interrupt();
                    end = Instant::now() + STOP_GRACE;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    killed = true;
                    break;
                }
            }
        }
        let status = self.child.wait().context("waiting for loadgen")?;
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let Some(json) = last else {
            bail!(
                "loadgen {} ({status}) without a report: {}",
                if killed {
                    "was killed after not stopping"
                } else {
                    "exited"
                },
                stderr.lines().last().unwrap_or("no message")
            );
        };
        let report: loadgen::Report = serde_json::from_str(&json)
            .with_context(|| format!("loadgen's report does not parse: {json}"))?;
        let records = loadgen::read_records(&self.records)
            .with_context(|| format!("reading loadgen's records {}", self.records.display()))?;
        Ok(ClientResult {
            report,
            records,
            hosts: Vec::new(),
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // A run that failed part-way drops its client unfinished: never leave it running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A child's stdout, read line by line (trailing white space trimmed) on a thread of its
/// own named `name`, so that every wait for a line can have a deadline; the channel
/// closes at the end of the output.
pub fn read_lines(
    out: impl std::io::Read + Send + 'static,
    name: &str,
) -> anyhow::Result<Receiver<String>> {
    let (tx, lines) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line.trim_end().to_string()).is_err() {
                    break;
                }
            }
        })
        .with_context(|| format!("cannot start the thread reading a child's output ({name})"))?;
    Ok(lines)
}

/// Makes the child `cmd` starts die (SIGKILL) with the thread that starts it
/// (`PR_SET_PDEATHSIG`), so a run's thread never leaves a client behind.
pub fn dies_with_this_thread(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2),
    // which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Polls `done` every few ms until it is true or `limit` passes; returns whether it became true.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}
