//! The loadgen child process of a sweep run: started as `acceptbench loadgen …`
//! (this same executable), pinned to the client CPUs, its JSON report and
//! per-connection records read back when it ends.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Source addresses for the client: several, so ports are reused rarely and the
/// join by (ip, port) stays unambiguous.
pub const SOURCES_V4: &str = "127.0.0.2-127.0.0.9";

/// A running loadgen child.
pub struct Client {
    child: Child,
    /// Lines of the child's stdout, read on a thread of their own so that every wait
    /// for the child can have a deadline (a stuck child must not stall the sweep).
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    records: PathBuf,
    stderr: PathBuf,
}

/// What a finished loadgen child left behind.
pub struct ClientResult {
    /// Its JSON report.
    pub report: loadgen::Report,
    /// Its per-connection records.
    pub records: Vec<loadgen::ConnRecord>,
}

/// The loadgen flags of one run, beyond target, pinning and output.
pub fn base_args(target: SocketAddr, mode: &str, threads: u32, cpus: &[usize]) -> Vec<String> {
    let cpus: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
    vec![
        "--target".into(),
        target.to_string(),
        "--mode".into(),
        mode.into(),
        "--threads".into(),
        threads.to_string(),
        "--cpus".into(),
        cpus.join(","),
        "--sources".into(),
        SOURCES_V4.into(),
        "--json".into(),
        "--quiet".into(),
    ]
}

impl Client {
    /// Starts `exe loadgen ARGS --records <tmp>`; with `interactive` its stdin is a pipe
    /// for the drain-round protocol.
    pub fn spawn(
        exe: &Path,
        tmp: &Path,
        args: &[String],
        interactive: bool,
    ) -> anyhow::Result<Client> {
        let records = tmp.join("records.bin");
        let stderr = tmp.join("loadgen.stderr");
        let _ = std::fs::remove_file(&records);
        let err_file = std::fs::File::create(&stderr)
            .with_context(|| format!("cannot create {}", stderr.display()))?;
        let mut child = Command::new(exe)
            .arg("loadgen")
            .args(args)
            .arg("--records")
            .arg(&records)
            .stdin(if interactive {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .with_context(|| format!("cannot start {} loadgen", exe.display()))?;
        let stdout = child.stdout.take().context("loadgen child has no stdout")?;
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::Builder::new()
            .name("loadgen-stdout".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line.trim_end().to_string()).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the thread reading loadgen's output")?;
        Ok(Client {
            child,
            lines,
            stdin,
            records,
            stderr,
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

    /// Writes one line to the child's stdin (drain-round protocol).
    pub fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("loadgen child has no stdin")?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .context("writing to loadgen")
    }

    /// Asks the child to stop early (SIGINT: loadgen finishes and reports what it measured).
    pub fn interrupt(&self) {
        // SAFETY: kill(2) on the PID of our own child, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
    }

    /// True once the child has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for the child, then parses its JSON report (the last stdout line) and records.
    pub fn finish(mut self, limit: Duration) -> anyhow::Result<ClientResult> {
        drop(self.stdin.take());
        let mut last = None;
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with('{') => last = Some(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    // Ask politely, then insist: the run ends either way.
                    self.interrupt();
                    if self.lines.recv_timeout(Duration::from_secs(2)).is_err() {
                        let _ = self.child.kill();
                    }
                }
            }
        }
        let status = self.child.wait().context("waiting for loadgen")?;
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let Some(json) = last else {
            bail!(
                "loadgen exited ({status}) without a report: {}",
                stderr.lines().last().unwrap_or("no message")
            );
        };
        let report: loadgen::Report = serde_json::from_str(&json)
            .with_context(|| format!("loadgen's report does not parse: {json}"))?;
        let records = loadgen::read_records(&self.records)
            .with_context(|| format!("reading loadgen's records {}", self.records.display()))?;
        Ok(ClientResult { report, records })
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
