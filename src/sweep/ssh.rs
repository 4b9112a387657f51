//! `sweep --client-hosts ssh://…`: loadgen on real client machines, driven with the
//! system's OpenSSH — the user's keys, agent and `~/.ssh/config` (or `--ssh-config`),
//! `BatchMode` (never a password prompt), a connect timeout, no TTY.
//!
//! Before the first run, [`preflight`] checks every host: reachable; its acceptbench
//! the same version and results format as this one (or `--client-binary` copies ours
//! over with scp); its clock's offset from ours, estimated over one ssh session; and a
//! test connection from it to `--server-addr`. Each run then starts one
//! [`RemoteClient`] per host: `acceptbench loadgen --remote` in a private temporary
//! directory there, which says `ready pid N` and waits; when every host is ready the
//! sweep sends each `go` (how close the starts were, by the hosts' own clocks, is
//! reported). A run ends as a local one does; `stop` (Ctrl-C, a deadline) or the end of
//! the ssh session stops a remote loadgen. Its report comes back over the session, its
//! records are fetched after it (`cat`, then the directory is removed), and its
//! CLOCK_MONOTONIC stamps are moved onto this host's through both hosts' wall clocks.
//! A host that dies or hangs makes the run fail with its name; whatever happens, no
//! loadgen is left running: the process is checked for by pid over ssh and killed.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::record_header::RecordMeta;

use super::client::ClientResult;
use crate::sshhost::{shell_quote, HostInfo, SshHost, SshSettings};

/// How long ssh may take to connect (`ConnectTimeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a host may take from the ssh start to `ready` (ssh's connect and
/// authentication, mktemp, loadgen's set-up).
pub const START_LIMIT: Duration = Duration::from_secs(20);
/// How long a short remote command (host-info, kill, cat, rm) may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// Round trips of the clock estimate.
const CLOCK_ROUNDS: usize = 8;

impl SshSettings {
    /// The options every ssh and scp of the sweep gets, `port_flag` naming the port
    /// (`-p` for ssh, `-P` for scp).
    fn options(&self, c: &mut Command, host: &SshHost, port_flag: &str) {
        c.args(["-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs()));
        if let Some(f) = &self.config {
            c.arg("-F").arg(f);
        }
        for o in &self.options {
            c.arg("-o").arg(o);
        }
        if let Some(p) = host.port {
            c.arg(port_flag).arg(p.to_string());
        }
    }

    /// `ssh` with the sweep's options for `host`, the remote command to follow.
    fn ssh(&self, host: &SshHost) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-T")
            .args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]);
        self.options(&mut c, host, "-p");
        c.arg(host.destination()).arg("--");
        c
    }

    /// `scp` of `local` to `remote` on `host`.
    fn scp(&self, host: &SshHost, local: &Path, remote: &str) -> Command {
        let mut c = Command::new("scp");
        c.arg("-q");
        self.options(&mut c, host, "-P");
        c.arg(local).arg(format!("{}:{remote}", scp_host(host)));
        c
    }

    /// Runs `script` on `host` and returns its stdout; an error names the host and
    /// carries ssh's or the command's last stderr line.
    pub fn run(&self, host: &SshHost, script: &str) -> anyhow::Result<Vec<u8>> {
        let mut cmd = self.ssh(host);
        cmd.arg(script);
        run_bounded(&mut cmd, COMMAND_LIMIT)
            .with_context(|| format!("client host {}", host.label()))
    }
}

/// `[user@]host` for scp, IPv6 in brackets.
fn scp_host(host: &SshHost) -> String {
    let h = if host.host.contains(':') {
        format!("[{}]", host.host)
    } else {
        host.host.clone()
    };
    match &host.user {
        Some(u) => format!("{u}@{h}"),
        None => h,
    }
}

/// Runs `cmd` (stdin closed), killing it after `limit`; its stdout, or an error with
/// its exit status and last stderr line.
fn run_bounded(cmd: &mut Command, limit: Duration) -> anyhow::Result<Vec<u8>> {
    // Its own process group: a Ctrl-C at the terminal must not kill the pid check or
    // the records fetch of a run that is being stopped.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot run ssh (install OpenSSH's client: apt-get install openssh-client)")?;
    let mut out = child.stdout.take().context("no stdout")?;
    let mut err = child.stderr.take().context("no stderr")?;
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let give_up = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= give_up {
            let _ = child.kill();
            let _ = child.wait();
            bail!("gave no answer within {} s (killed)", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "{} ({status})",
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
        );
    }
    Ok(stdout)
}

/// This acceptbench and its host's clock: what `host-info` prints and what preflight
/// compares each client host's answer with.
pub fn this_host() -> HostInfo {
    HostInfo {
        acceptbench_version: env!("CARGO_PKG_VERSION").to_string(),
        format_version: crate::report::meta::FORMAT_VERSION,
        records_version: common::record_header::VERSION,
        host: RecordMeta::here(None, "").host,
        realtime_ns: common::record_header::realtime_ns(),
    }
}

/// The last non-empty line of a file (ssh's stderr), or "no message".
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string()
}

/// What preflight learned of a host.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// The host (its binary replaced by the copy when `--client-binary` made one).
    pub host: SshHost,
    /// What it said about itself.
    pub info: HostInfo,
    /// Its wall clock − ours, ns, estimated at the fastest of several round trips.
    pub offset_ns: i64,
    /// The estimate is within ± this, ns (half that round trip).
    pub offset_within_ns: u64,
    /// The binary preflight copied there (removed when the sweep ends).
    pub copied: Option<String>,
}

/// A version or format that does not match this acceptbench, named.
fn check_info(host: &SshHost, info: &HostInfo, ours: &HostInfo) -> anyhow::Result<()> {
    if info.acceptbench_version != ours.acceptbench_version
        || info.format_version != ours.format_version
        || info.records_version != ours.records_version
    {
        bail!(
            "client host {} runs acceptbench {} (results format {}, records {}) at {}; this is {} (format {}, records {}): install the same version there, or give --client-binary PATH to copy this one over with scp",
            host.label(),
            info.acceptbench_version,
            info.format_version,
            info.records_version,
            host.binary(),
            ours.acceptbench_version,
            ours.format_version,
            ours.records_version
        );
    }
    Ok(())
}

/// Asks `host` about itself and estimates its clock offset, over one ssh session:
/// `acceptbench host-info --clock` answers each line with its CLOCK_REALTIME.
fn host_info(ssh: &SshSettings, host: &SshHost) -> anyhow::Result<(HostInfo, i64, u64)> {
    let mut cmd = ssh.ssh(host);
    cmd.arg(format!("{} host-info --clock", shell_quote(host.binary())));
    let err = tempfile::NamedTempFile::new().context("cannot make a temporary file")?;
    let mut s = Session::start(cmd, Some(err.path()))?;
    // Shell start-up files may print lines first: the answer is the first JSON line.
    let mut seen = Vec::new();
    let info: HostInfo = loop {
        match s.line(START_LIMIT)? {
            Some(l) if l.starts_with('{') => {
                break serde_json::from_str(&l).with_context(|| {
                    format!(
                        "{} host-info did not answer as acceptbench does ({l:?}): is {} an acceptbench binary there?",
                        host.binary(),
                        host.binary()
                    )
                })?
            }
            Some(l) if seen.len() < 50 => seen.push(l),
            Some(_) => bail!(
                "{} host-info printed no JSON in 50 lines (the first: {:?}): is it an acceptbench binary?",
                host.binary(),
                seen.first()
            ),
            None => {
                let _ = s.child.wait();
                bail!("ssh ended before an answer: {}", last_line(err.path()));
            }
        }
    };
    let mut best: Option<(u64, i64)> = None;
    for _ in 0..CLOCK_ROUNDS {
        let t0 = common::record_header::realtime_ns();
        s.send("t")?;
        let line = s
            .line(COMMAND_LIMIT)?
            .context("ssh ended during the clock estimate")?;
        let t1 = common::record_header::realtime_ns();
        let r: u64 = line
            .trim()
            .parse()
            .with_context(|| format!("host-info --clock answered {line:?}"))?;
        let rtt = t1.saturating_sub(t0);
        let offset = r as i128 - (t0 as i128 + t1 as i128) / 2;
        if best.is_none_or(|(b, _)| rtt < b) {
            best = Some((rtt, offset as i64));
        }
    }
    s.close();
    let (rtt, offset) = best.context("no clock round trip")?;
    Ok((info, offset, rtt / 2))
}

/// Checks every host before the first run (see the module doc); `ours` is this
/// acceptbench's own [`HostInfo`], `server` the address the clients will connect to.
/// `copy`: this binary, to copy over first (`--client-binary`).
pub fn preflight(
    ssh: &SshSettings,
    hosts: &[SshHost],
    ours: &HostInfo,
    server: std::net::IpAddr,
    copy: Option<&Path>,
) -> anyhow::Result<Vec<HostFacts>> {
    let probe = std::net::TcpListener::bind((server, 0)).with_context(|| {
        format!("--server-addr {server}: cannot listen there (is it an address of this machine?)")
    })?;
    probe.set_nonblocking(true)?;
    let target = probe.local_addr()?;
    let mut facts = Copies {
        ssh: ssh.clone(),
        facts: Vec::new(),
    };
    for h in hosts {
        let mut host = h.clone();
        let copied = match copy {
            Some(local) => Some(copy_binary(ssh, &host, local)?),
            None => None,
        };
        if let Some(c) = &copied {
            host.binary = Some(c.clone());
        }
        // Kept (and its copy removed again if a later check fails) from here on.
        facts.facts.push(HostFacts {
            host: host.clone(),
            info: ours.clone(),
            offset_ns: 0,
            offset_within_ns: 0,
            copied,
        });
        let (info, offset_ns, within) =
            host_info(ssh, &host).with_context(|| format!("client host {}", host.label()))?;
        check_info(&host, &info, ours)?;
        test_connect(ssh, &host, target, &probe)?;
        if let Some(f) = facts.facts.last_mut() {
            (f.info, f.offset_ns, f.offset_within_ns) = (info, offset_ns, within);
        }
    }
    Ok(std::mem::take(&mut facts.facts))
}

/// The hosts preflight has copied a binary to: removed again on drop (a failed
/// preflight, or the end of the sweep whatever way it ends).
pub struct Copies {
    /// How ssh is called.
    pub ssh: SshSettings,
    /// The hosts.
    pub facts: Vec<HostFacts>,
}

impl Drop for Copies {
    fn drop(&mut self) {
        remove_copies(&self.ssh, &self.facts);
    }
}

/// Copies `local` to a fresh temporary file on `host` and makes it executable.
fn copy_binary(ssh: &SshSettings, host: &SshHost, local: &Path) -> anyhow::Result<String> {
    let out = ssh.run(host, "mktemp /tmp/acceptbench-bin.XXXXXX")?;
    let path = String::from_utf8_lossy(&out).trim().to_string();
    if !path.starts_with('/') {
        bail!("client host {}: mktemp answered {path:?}", host.label());
    }
    let copied = run_bounded(&mut ssh.scp(host, local, &path), Duration::from_secs(300))
        .with_context(|| format!("client host {}: scp of {}", host.label(), local.display()))
        .and_then(|_| ssh.run(host, &format!("chmod 755 {}", shell_quote(&path))));
    if let Err(e) = copied {
        let _ = ssh.run(host, &format!("rm -f {}", shell_quote(&path)));
        return Err(e);
    }
    Ok(path)
}

/// One connection from `host` to `target`, accepted on `probe`.
fn test_connect(
    ssh: &SshSettings,
    host: &SshHost,
    target: std::net::SocketAddr,
    probe: &std::net::TcpListener,
) -> anyhow::Result<()> {
    let script = format!(
        "{} loadgen --target {} --mode burst --connections 1 --connect-timeout 3s --json --quiet",
        shell_quote(host.binary()),
        shell_quote(&target.to_string())
    );
    let fail = |why: String| {
        anyhow::anyhow!(
            "client host {} cannot connect to {target} ({why}): give --server-addr an address of this machine the client hosts reach, and check the firewalls between them",
            host.label()
        )
    };
    let out = ssh.run(host, &script).map_err(|e| fail(format!("{e:#}")))?;
    let text = String::from_utf8_lossy(&out);
    let report: loadgen::Report = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| fail(format!("loadgen answered {:?}", text.trim())))?;
    if report.established != 1 {
        return Err(fail(format!(
            "0 of 1 established: refused {}, timeout {}",
            report.errors.refused, report.errors.timeout
        )));
    }
    let accepted = super::client::wait_until(Duration::from_secs(3), || probe.accept().is_ok());
    if !accepted {
        return Err(fail(
            "established, but not accepted here: another machine answered".into(),
        ));
    }
    Ok(())
}

/// Removes what preflight copied (best effort: the sweep is over).
pub fn remove_copies(ssh: &SshSettings, facts: &[HostFacts]) {
    for f in facts {
        if let Some(c) = &f.copied {
            let _ = ssh.run(&f.host, &format!("rm -f {}", shell_quote(c)));
        }
    }
}

/// An ssh child with its stdout read line by line on a thread of its own.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Session {
    /// Starts `cmd` (stdin and stdout piped; stderr to `stderr` or discarded). It dies
    /// with the thread that starts it (`PR_SET_PDEATHSIG`), in its own process group
    /// (a terminal's Ctrl-C reaches only the sweep).
    fn start(mut cmd: Command, stderr: Option<&Path>) -> anyhow::Result<Session> {
        let err = match stderr {
            Some(p) => Stdio::from(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            ),
            None => Stdio::null(),
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .process_group(0);
        super::client::dies_with_this_thread(&mut cmd);
        let mut child = cmd
            .spawn()
            .context("cannot run ssh (install OpenSSH's client: apt-get install openssh-client)")?;
        let stdout = child.stdout.take().context("ssh has no stdout")?;
        let stdin = child.stdin.take();
        let lines = super::client::read_lines(stdout, "ssh-stdout")?;
        Ok(Session {
            child,
            stdin,
            lines,
        })
    }

    /// The next stdout line within `limit`; `Ok(None)` at the end.
    fn line(&mut self, limit: Duration) -> anyhow::Result<Option<String>> {
        match self.lines.recv_timeout(limit) {
            Ok(l) => Ok(Some(l)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => bail!("no answer within {} s", limit.as_secs()),
        }
    }

    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the session's input is closed")?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .context("writing to the ssh session")
    }

    /// Ends the session: its input closed (the remote side sees the end of stdin),
    /// then ssh killed if it has not ended within a second.
    fn close(&mut self) {
        self.stdin = None;
        let give_up = Instant::now() + Duration::from_secs(1);
        while Instant::now() < give_up {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// loadgen running on one client host for one run.
pub struct RemoteClient {
    ssh: SshSettings,
    host: SshHost,
    session: Session,
    /// Its private directory there.
    dir: String,
    /// loadgen's pid there.
    pid: u32,
    stderr: PathBuf,
    interrupted: bool,
    /// `finish` ran (else dropping it ends the session and checks the pid).
    finished: bool,
    /// Its wall clock − ours, ns, and within ± this, as preflight estimated it.
    offset_ns: (i64, u64),
}

impl Drop for RemoteClient {
    /// A client dropped unfinished (a run failed while starting its hosts): its session
    /// ends (loadgen there sees the end of stdin, writes nothing and its directory goes)
    /// and its pid is checked over ssh, killed if still there.
    fn drop(&mut self) {
        if !self.finished {
            self.session.close();
            let _ = self.make_sure_gone();
        }
    }
}

impl RemoteClient {
    /// Starts `loadgen --remote` with `config` on the host of `facts` and waits until it
    /// is ready (within [`START_LIMIT`]). Its stderr goes to `tmp/ssh-<n>.stderr`.
    pub fn start(
        ssh: &SshSettings,
        facts: &HostFacts,
        config: &loadgen::Config,
        tmp: &Path,
        n: usize,
    ) -> anyhow::Result<RemoteClient> {
        let host = &facts.host;
        let mut config = config.clone();
        config.keep_records = true;
        config.output.records = None;
        config.output.remote = true;
        config.output.json = true;
        config.output.quiet = true;
        config
            .validate()
            .context("the sweep built an invalid loadgen configuration")?;
        let args: Vec<String> = config.to_args().iter().map(|a| shell_quote(a)).collect();
        // A private directory for the records, named first; loadgen reports its own
        // pid. Unless loadgen ends well (records written, for the sweep to fetch), the
        // directory goes: a vanished session (EXIT_DRIVER_GONE, or a write to it that
        // fails: SIGPIPE is ignored so the script always gets that far) leaves nothing.
        let script = format!(
            "trap '' PIPE; d=$(mktemp -d /tmp/acceptbench.XXXXXX) || exit 97; echo \"dir $d\"; {} loadgen {} --records \"$d/records.bin\"; s=$?; [ $s = 0 ] || rm -rf \"$d\"; exit $s",
            shell_quote(host.binary()),
            args.join(" ")
        );
        let mut cmd = ssh.ssh(host);
        cmd.arg(script);
        let stderr = tmp.join(format!("ssh-{n}.stderr"));
        let mut session = Session::start(cmd, Some(&stderr))?;
        let failed = |why: String, stderr: &Path| {
            anyhow::anyhow!(
                "client host {}: loadgen did not start ({why}): {}",
                host.label(),
                last_line(stderr)
            )
        };
        let give_up = Instant::now() + START_LIMIT;
        let (mut dir, mut pid) = (None, None);
        while pid.is_none() {
            let left = give_up.saturating_duration_since(Instant::now());
            match session.line(left) {
                Ok(Some(l)) => {
                    if let Some(d) = l.strip_prefix("dir ") {
                        dir = Some(d.to_string());
                    } else if let Some(r) = loadgen::protocol::Ready::parse(&l) {
                        pid = Some(r.pid);
                    }
                }
                Ok(None) => {
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(failed("the session ended".into(), &stderr));
                }
                Err(_) => {
                    return Err(failed(
                        format!("not ready within {} s", START_LIMIT.as_secs()),
                        &stderr,
                    ))
                }
            }
        }
        Ok(RemoteClient {
            ssh: ssh.clone(),
            host: host.clone(),
            session,
            dir: dir.unwrap_or_default(),
            pid: pid.unwrap_or(0),
            stderr,
            interrupted: false,
            finished: false,
            offset_ns: (facts.offset_ns, facts.offset_within_ns),
        })
    }

    /// Starts the run there.
    pub fn go(&mut self) -> anyhow::Result<()> {
        self.session
            .send(loadgen::protocol::GO)
            .with_context(|| format!("client host {}", self.host.label()))
    }

    /// The host's name in messages (`user@host`).
    pub fn label(&self) -> String {
        self.host.label()
    }

    /// True once the session has ended.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.session.child.try_wait(), Ok(Some(_)))
    }

    /// Asks loadgen there to stop early, once (it reports what it measured).
    pub fn interrupt(&mut self) {
        if !std::mem::replace(&mut self.interrupted, true) {
            let _ = self.session.send(loadgen::protocol::Reply::Stop.word());
        }
    }

    /// Waits up to `limit` for the report, asks for a stop and waits a little more, then
    /// ends the session; makes sure loadgen is gone there (by pid, over ssh: killed if
    /// not); fetches and removes its records. For another machine, its records'
    /// wall-clock anchor is first corrected by preflight's offset estimate; their stamps
    /// are then moved onto this host's clock, and the records as written go into
    /// `hosts` for the per-host join. An error names the host.
    pub fn finish(mut self, limit: Duration) -> anyhow::Result<ClientResult> {
        self.finished = true;
        let label = self.host.label();
        let mut last = None;
        let mut end = Instant::now() + limit;
        loop {
            match self
                .session
                .line(end.saturating_duration_since(Instant::now()))
            {
                Ok(Some(l)) if l.starts_with('{') => last = Some(l),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) if !self.interrupted => {
                    self.interrupt();
                    end = Instant::now() + super::client::STOP_GRACE;
                }
                Err(_) => break,
            }
        }
        self.session.close();
        let gone = self.make_sure_gone();
        let fetched = self.fetch_records();
        gone?;
        let Some(json) = last else {
            bail!(
                "client host {label}: no report from loadgen (the host died, hung or the session broke): {}",
                last_line(&self.stderr)
            );
        };
        let report: loadgen::Report = serde_json::from_str(&json)
            .with_context(|| format!("client host {label}: loadgen's report does not parse"))?;
        let file = fetched?;
        let mut meta = file
            .header
            .meta
            .with_context(|| format!("client host {label}: its records have no clock anchor"))?;
        let here = RecordMeta::here(None, "");
        if !meta.same_clock(&here) {
            // Its wall clock read `offset_ns` ahead of ours: anchor it on ours.
            meta.anchor_realtime_ns = (meta.anchor_realtime_ns as i128 - self.offset_ns.0 as i128)
                .clamp(0, u64::MAX as i128) as u64;
        }
        let shift = to_local_shift(&meta, &here);
        let records = file
            .records
            .iter()
            .map(|r| shifted(r, shift))
            .collect::<Vec<_>>();
        Ok(ClientResult {
            report,
            records,
            hosts: vec![super::client::HostRecords {
                label,
                meta,
                records: file.records,
                offset_ns: self.offset_ns,
            }],
        })
    }

    /// After the session: loadgen's pid must be gone there; if it is not, it is killed
    /// (and the run says so).
    fn make_sure_gone(&self) -> anyhow::Result<()> {
        if self.pid == 0 {
            return Ok(());
        }
        let label = self.host.label();
        let pid = self.pid;
        let script = format!(
            "for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 {pid} 2>/dev/null || {{ echo gone; exit 0; }}; sleep 0.3; done; kill -9 {pid} 2>/dev/null; echo killed"
        );
        let out = self.ssh.run(&self.host, &script).with_context(|| {
            format!("cannot check that loadgen (pid {pid}) is gone from {label}")
        })?;
        if String::from_utf8_lossy(&out).trim() == "killed" {
            bail!("client host {label}: loadgen (pid {pid}) did not stop when asked and its session ended; killed it over ssh");
        }
        Ok(())
    }

    /// The records file, read and removed with its directory.
    fn fetch_records(&self) -> anyhow::Result<loadgen::RecordsFile> {
        let label = self.host.label();
        if !self.dir.starts_with("/tmp/acceptbench.") {
            bail!("client host {label}: no records directory was made");
        }
        let d = shell_quote(&self.dir);
        let bytes = self
            .ssh
            .run(
                &self.host,
                &format!("cat {d}/records.bin; s=$?; rm -rf {d}; exit $s"),
            )
            .with_context(|| format!("fetching loadgen's records from {label}"))?;
        loadgen::record::read_records_file_from(
            &bytes[..],
            &format!("{label}:{}/records.bin", self.dir),
            Some(bytes.len() as u64),
        )
        .with_context(|| format!("client host {label}: its records do not read"))
    }
}

/// ns to add to a stamp of `remote`'s CLOCK_MONOTONIC to put it on `here`'s: 0 on the
/// same host and boot; otherwise through both wall clocks (so only as right as their
/// synchronisation: NTP ms, PTP µs).
pub fn to_local_shift(remote: &RecordMeta, here: &RecordMeta) -> i128 {
    if remote.same_clock(here) {
        return 0;
    }
    (remote.anchor_realtime_ns as i128 - remote.anchor_mono_ns as i128)
        - (here.anchor_realtime_ns as i128 - here.anchor_mono_ns as i128)
}

fn shifted(r: &loadgen::ConnRecord, shift: i128) -> loadgen::ConnRecord {
    let s = |t: u64| (t as i128 + shift).clamp(0, u64::MAX as i128) as u64;
    loadgen::ConnRecord {
        intended_ns: s(r.intended_ns),
        connect_start_ns: s(r.connect_start_ns),
        done_ns: s(r.done_ns),
        serve: match r.serve {
            loadgen::record::Serve::Served(t) => loadgen::record::Serve::Served(s(t)),
            other => other,
        },
        ..*r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_stamps_move_through_the_wall_clocks_unless_the_clock_is_ours() {
        let here = RecordMeta {
            anchor_mono_ns: 1_000,
            anchor_realtime_ns: 1_000_000,
            boot_id: [1; 16],
            host: "server".into(),
            ..Default::default()
        };
        let other = RecordMeta {
            anchor_mono_ns: 50_000,
            anchor_realtime_ns: 1_000_500,
            boot_id: [2; 16],
            host: "client".into(),
            ..Default::default()
        };
        // Client mono 50_000 is wall 1_000_500, which is server mono 1_500.
        assert_eq!(50_000 + to_local_shift(&other, &here), 1_500);
        let same = RecordMeta {
            anchor_mono_ns: 7,
            anchor_realtime_ns: 9,
            ..here.clone()
        };
        assert_eq!(to_local_shift(&same, &here), 0);
    }

    #[test]
    fn a_mismatched_version_is_refused_by_name_with_the_fix() {
        let ours = HostInfo {
            acceptbench_version: "0.1.0".into(),
            format_version: 3,
            records_version: 2,
            host: "server".into(),
            realtime_ns: 0,
        };
        let theirs = HostInfo {
            acceptbench_version: "0.0.9".into(),
            ..ours.clone()
        };
        let host: SshHost = "ssh://bench@client7".parse().unwrap();
        let e = check_info(&host, &theirs, &ours).unwrap_err().to_string();
        assert!(
            e.contains("client host bench@client7 runs acceptbench 0.0.9"),
            "{e}"
        );
        assert!(e.contains("--client-binary"), "{e}");
        assert!(check_info(&host, &ours, &ours).is_ok());
    }
}
