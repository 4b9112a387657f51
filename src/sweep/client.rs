//! The loadgen child process of a sweep run: started as `acceptbench loadgen …`
//! (this same executable), pinned to the client CPUs, its JSON report and
//! per-connection records read back when it ends.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

/// Source addresses for the client: several, so ports are reused rarely and the
/// join by (ip, port) stays unambiguous.
pub const SOURCES_V4: &str = "127.0.0.2-127.0.0.9";

/// A running loadgen child.
pub struct Client {
    child: Child,
    stdout: BufReader<ChildStdout>,
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
        Ok(Client {
            child,
            stdout: BufReader::new(stdout),
            stdin,
            records,
            stderr,
        })
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads the next stdout line (None at EOF).
    pub fn read_line(&mut self) -> anyhow::Result<Option<String>> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .context("reading loadgen's output")?;
        Ok((n > 0).then(|| line.trim_end().to_string()))
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
    pub fn finish(mut self) -> anyhow::Result<ClientResult> {
        drop(self.stdin.take());
        let mut last = None;
        while let Some(line) = self.read_line()? {
            if line.starts_with('{') {
                last = Some(line);
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
