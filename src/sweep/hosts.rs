//! `sweep --client-hosts K`: each run's own small network — a server namespace
//! (10.77.0.1) and K client namespaces (10.77.0.2 …) on a bridge in a namespace of its
//! own — so the connections cross veth pairs and a bridge as between hosts, on the
//! same kernel as a loopback sweep. The host's own network is never touched.
//!
//! Owns making and deleting the namespaces (`ip netns`, iproute2), moving the run's
//! thread into the server namespace (the acceptor thread it starts inherits it), and
//! starting one loadgen child per client namespace (`setns` before exec). Each client
//! runs the loadgen a loopback run would: K client hosts make K times the load.
//! The namespaces are deleted when the [`Topology`] is dropped (end of the run, a
//! failed run, Ctrl-C); a SIGKILLed sweep leaves them behind (`ip netns list`, named
//! `abs<pid>-<n>-…`).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

use super::client::{Client, ClientResult};

/// The server's address inside its namespace.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Most client namespaces a run makes.
pub const MAX_CLIENT_HOSTS: u32 = 64;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One run's namespaces; deleted on drop.
pub struct Topology {
    /// Namespace names, the bridge's first; deleted in reverse.
    names: Vec<String>,
    /// The server namespace (open: setns needs a descriptor).
    server: Option<File>,
    /// The client namespaces.
    clients: Vec<File>,
}

/// Runs `ip ARGS`; errors say which command failed and why.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (install iproute2: apt-get install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {} (--client-hosts needs root and iproute2)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn open_ns(name: &str) -> anyhow::Result<File> {
    let path = Path::new("/run/netns").join(name);
    File::open(&path).with_context(|| format!("cannot open {}", path.display()))
}

impl Topology {
    /// Makes the namespaces: a bridge, the server and `k` clients, each with `lo` up
    /// and one address on its veth.
    pub fn create(k: u32) -> anyhow::Result<Topology> {
        if k == 0 || k > MAX_CLIENT_HOSTS {
            bail!("--client-hosts {k}: give 1 to {MAX_CLIENT_HOSTS}");
        }
        let id = format!(
            "abs{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut t = Topology {
            names: Vec::new(),
            server: None,
            clients: Vec::new(),
        };
        let sw = format!("{id}-sw");
        ip(&["netns", "add", &sw])?;
        t.names.push(sw.clone());
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for i in 0..=k {
            let ns = if i == 0 {
                format!("{id}-srv")
            } else {
                format!("{id}-c{i}")
            };
            ip(&["netns", "add", &ns])?;
            t.names.push(ns.clone());
            let port = format!("p{i}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            let addr = format!("{}/24", Ipv4Addr::new(10, 77, 0, 1 + i as u8));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            let f = open_ns(&ns)?;
            if i == 0 {
                t.server = Some(f);
            } else {
                t.clients.push(f);
            }
        }
        Ok(t)
    }

    /// Moves the calling thread into the server namespace; threads it starts afterwards
    /// are born there.
    pub fn enter_server(&self) -> anyhow::Result<()> {
        let f = self
            .server
            .as_ref()
            .context("the server namespace is missing")?;
        // SAFETY: setns on a namespace descriptor we hold open; affects this thread only.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("cannot enter the server's network namespace");
        }
        Ok(())
    }

    /// The address the acceptor listens on: the server's, a free port.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::from((SERVER_IP, 0))
    }

    /// Client namespace descriptors, one per client host.
    pub fn client_fds(&self) -> Vec<RawFd> {
        self.clients.iter().map(AsRawFd::as_raw_fd).collect()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.server = None;
        self.clients.clear();
        for name in self.names.iter().rev() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// Where a run's clients run.
#[derive(Clone, Copy)]
pub enum Place<'a> {
    /// One loadgen on this host's loopback.
    Loopback,
    /// One loadgen in each client namespace of the run's topology.
    Namespaces(&'a Topology),
    /// One loadgen on each ssh client host.
    Ssh(&'a SshRun),
}

/// The ssh client hosts of a sweep, after preflight.
#[derive(Debug, Clone)]
pub struct SshRun {
    /// How ssh is called.
    pub settings: crate::sshhost::SshSettings,
    /// Each host and what preflight learned of it.
    pub hosts: Vec<super::ssh::HostFacts>,
    /// The address of this machine they connect to.
    pub server_addr: std::net::IpAddr,
}

/// The loadgen children of one run: one on the host (loopback), one per client
/// namespace, or one per ssh client host.
pub struct Clients {
    local: Vec<Client>,
    /// What each local child is called in messages: `loadgen`, or `client host N`.
    local_names: Vec<String>,
    remote: Vec<super::ssh::RemoteClient>,
}

impl Clients {
    /// Starts loadgen with `config` at `place` (each writes its records under its own
    /// `tmp/host<i>/`). ssh hosts each get `config` with a rate split between them (an
    /// open loop at λ/K each, so the server sees λ), are started together once every
    /// one has said it is ready.
    pub fn spawn(
        exe: &Path,
        tmp: &Path,
        config: &loadgen::Config,
        place: Place,
    ) -> anyhow::Result<Clients> {
        let mut c = Clients {
            local: Vec::new(),
            local_names: Vec::new(),
            remote: Vec::new(),
        };
        match place {
            Place::Loopback => {
                c.local.push(Client::spawn(exe, tmp, config)?);
                c.local_names.push("loadgen".into());
            }
            Place::Namespaces(t) => {
                for (i, fd) in t.client_fds().into_iter().enumerate() {
                    let dir = tmp.join(format!("host{}", i + 1));
                    std::fs::create_dir_all(&dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                    c.local.push(Client::spawn_in(exe, &dir, config, Some(fd))?);
                    c.local_names.push(format!("client host {}", i + 1));
                }
            }
            Place::Ssh(run) => {
                let share = ssh_share(config, run.hosts.len());
                for (i, f) in run.hosts.iter().enumerate() {
                    // A host that cannot start fails the run; the ones started are
                    // stopped when `c` drops.
                    c.remote.push(super::ssh::RemoteClient::start(
                        &run.settings,
                        f,
                        &share,
                        tmp,
                        i + 1,
                    )?);
                }
                for r in &mut c.remote {
                    r.go()?;
                }
            }
        }
        Ok(c)
    }

    /// True once every child has exited.
    pub fn has_exited(&mut self) -> bool {
        self.local.iter_mut().all(Client::has_exited)
            && self
                .remote
                .iter_mut()
                .all(super::ssh::RemoteClient::has_exited)
    }

    /// The children that have not ended yet, by name (`loadgen`, `client host 2`,
    /// `client host user@10.0.0.3`): a run that hangs names who hangs.
    pub fn still_running(&mut self) -> Vec<String> {
        let local = self
            .local
            .iter_mut()
            .zip(&self.local_names)
            .filter_map(|(c, name)| (!c.has_exited()).then(|| name.clone()));
        let remote = self
            .remote
            .iter_mut()
            .filter_map(|r| (!r.has_exited()).then(|| format!("client host {}", r.label())));
        local.chain(remote).collect()
    }

    /// Asks every child to stop early, once.
    pub fn interrupt(&mut self) {
        self.local.iter_mut().for_each(Client::interrupt);
        self.remote
            .iter_mut()
            .for_each(super::ssh::RemoteClient::interrupt);
    }

    /// Waits for every child (see [`Client::finish`], [`super::ssh::RemoteClient::finish`])
    /// and merges what they left: the records of all of them, and one report with the
    /// counts and CPU summed. Every child is finished even when one fails (no loadgen
    /// is left running anywhere); the error names every host that failed.
    pub fn finish(self, limit: Duration) -> anyhow::Result<ClientResult> {
        let mut merged: Option<ClientResult> = None;
        let mut errors = Vec::new();
        let mut add = |r: ClientResult| {
            merged = Some(match merged.take() {
                None => r,
                Some(m) => merge(m, r),
            });
        };
        for (i, c) in self.local.into_iter().enumerate() {
            match c.finish(limit) {
                Ok(r) => add(r),
                Err(e) => errors.push(format!("{}: {e:#}", self.local_names[i])),
            }
        }
        for r in self.remote {
            match r.finish(limit) {
                Ok(res) => add(res),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        merged.context("no loadgen was started")
    }
}

/// Each ssh host's configuration: an open loop's rate split between the `k` hosts; a
/// closed loop as configured on every host (k times the connectors).
fn ssh_share(config: &loadgen::Config, k: usize) -> loadgen::Config {
    let mut c = config.clone();
    if let loadgen::Mode::Rate { rate_per_s } = c.mode {
        c.mode = loadgen::Mode::Rate {
            rate_per_s: rate_per_s / k.max(1) as f64,
        };
    }
    c
}

fn merge(mut a: ClientResult, b: ClientResult) -> ClientResult {
    let (x, y) = (&mut a.report, &b.report);
    x.attempted += y.attempted;
    x.established += y.established;
    x.pending += y.pending;
    x.warmup_attempted += y.warmup_attempted;
    x.wait_close_timeouts += y.wait_close_timeouts;
    x.errors.refused += y.errors.refused;
    x.errors.reset += y.errors.reset;
    x.errors.timeout += y.errors.timeout;
    x.errors.addr_unavailable += y.errors.addr_unavailable;
    x.errors.other += y.errors.other;
    for (e, n) in &y.errors.other_errnos {
        *x.errors.other_errnos.entry(*e).or_insert(0) += n;
    }
    x.conns_per_s += y.conns_per_s;
    x.cpu_user_s += y.cpu_user_s;
    x.cpu_sys_s += y.cpu_sys_s;
    x.duration_s = x.duration_s.max(y.duration_s);
    x.interrupted |= y.interrupted;
    a.records.extend(b.records);
    a.hosts.extend(b.hosts);
    a
}
