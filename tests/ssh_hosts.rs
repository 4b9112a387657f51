//! `sweep --client-hosts ssh://…` end to end over the real ssh path: client network
//! namespaces, each with its own sshd (scripts/hosts/ssh-bed.sh), the sweep in the
//! server namespace. Needs root, iproute2 and openssh-server (CI installs them);
//! elsewhere every test skips and says why.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use acceptbench::hostjoin::output::read_hosts_csv;
use acceptbench::report::csv;
use common::testskip::Lack;

const BED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/hosts/ssh-bed.sh");
const BIN: &str = env!("CARGO_BIN_EXE_acceptbench");

/// Why these tests cannot run here, if they cannot.
fn missing() -> Option<(Lack, &'static str)> {
    if !support::is_root() {
        return Some((Lack::Root, "needs root (network namespaces, sshd)"));
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some((
            Lack::Program,
            "needs openssh-server (apt-get install openssh-server)",
        ));
    }
    if Command::new("ssh").arg("-V").output().is_err() {
        return Some((Lack::Program, "needs ssh (apt-get install openssh-client)"));
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some((Lack::Program, "needs iproute2"));
    }
    None
}

macro_rules! require_ssh_bed {
    () => {
        if let Some((lack, why)) = missing() {
            common::testskip::skip(lack, why);
            return;
        }
    };
}

/// One test bed: K client namespaces with sshd; torn down on drop. One at a time: every
/// bed uses 10.77.0.0/24 inside its own namespaces, which is fine, but their acceptors
/// and loadgens share this machine's two CPUs.
struct Bed {
    dir: PathBuf,
    srv: String,
    hosts: Vec<String>,
    _one: std::sync::MutexGuard<'static, ()>,
}

impl Bed {
    fn up(name: &str, k: u32) -> Bed {
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("ab-sshbed-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(BED)
            .args(["up", dir.to_str().unwrap(), &k.to_string()])
            .env("ACCEPTBENCH", BIN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-bed up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.join("env")).unwrap();
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_string()
        };
        Bed {
            srv: get("SRV"),
            hosts: get("HOSTS").split(',').map(str::to_string).collect(),
            dir,
            _one: one,
        }
    }

    /// `acceptbench sweep ARGS` in the server namespace against the bed's hosts.
    fn sweep(&self, hosts: &str, out: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.srv, BIN, "sweep"])
            .args(["--client-hosts", hosts, "--server-addr", "10.77.0.1"])
            .arg("--ssh-config")
            .arg(self.dir.join("ssh_config"))
            .args(["--no-plots", "--quiet", "--out"])
            .arg(out)
            .args(args);
        c
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = Command::new(BED)
            .args(["down", self.dir.to_str().unwrap()])
            .status();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn three_ssh_hosts_account_for_every_connection_per_host_and_in_total() {
    require_ssh_bed!();
    let bed = Bed::up("three", 3);
    let out = bed.dir.join("out");
    let o = bed
        .sweep(
            &bed.hosts.join(","),
            &out,
            &[
                "--engines",
                "std,multishot",
                "--backlogs",
                "4096",
                "--modes",
                "closed,rate",
                "--rate",
                "3000",
                "--duration",
                "400ms",
                "--repeat",
                "1",
            ],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let dir = support::run_dir(&out);
    let rows = csv::read(&dir.join("summary.csv")).unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert!(r.is_ok(), "{r:?}");
        assert!(r.established > 100, "{r:?}");
        assert_eq!(
            (r.accepted, r.matched),
            (r.established, r.established),
            "{r:?}"
        );
        assert_eq!(r.unmatched, 0);
        assert_eq!(r.netns, "ssh");
        assert_eq!(r.client_hosts.split(',').count(), 3, "{r:?}");
        assert!(r.host_start_spread_ms.is_some_and(|s| s < 1000.0), "{r:?}");
        let per: Vec<&str> = r.per_host.split(';').collect();
        assert_eq!(per.len(), 3, "{}", r.per_host);
        let hosts_file = dir
            .join("hosts")
            .join(format!("{}-b4096-{}.csv", r.engine, r.mode));
        let hosts = read_hosts_csv(&hosts_file).unwrap();
        assert_eq!(hosts.len(), 3);
        let mut total = 0;
        for h in &hosts {
            assert!(h.established > 0, "{h:?}");
            assert_eq!(
                (h.accepted, h.matched),
                (h.established, h.established),
                "{h:?}"
            );
            assert_eq!(h.clock, "monotonic", "one machine, one boot");
            total += h.matched;
        }
        assert_eq!(total, r.matched);
    }
    // The rate was split between the hosts: 3000/s in all over 400 ms.
    let rate = rows.iter().find(|r| r.mode == "rate").unwrap();
    assert!(
        (900..=1300).contains(&rate.established),
        "{} connections at 3000/s for 0.4 s",
        rate.established
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("a test connection to 10.77.0.1 accepted"),
        "{readme}"
    );
}

#[test]
fn a_host_whose_sshd_stops_fails_its_runs_by_name_and_the_sweep_goes_on() {
    require_ssh_bed!();
    let bed = Bed::up("stop", 2);
    let out = bed.dir.join("out");
    let child = bed
        .sweep(
            &bed.hosts.join(","),
            &out,
            &[
                "--engines",
                "std",
                "--backlogs",
                "4096",
                "--modes",
                "closed",
                "--duration",
                "300ms",
                "--repeat",
                "4",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first run is written, client 2's sshd goes away (its open sessions stay).
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let first = std::fs::read_dir(&out)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| csv::read(&e.path().join("summary.csv")).ok())
            .is_some_and(|rows| !rows.is_empty());
        if first {
            break;
        }
        assert!(Instant::now() < give_up, "no first run within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = Command::new(BED)
        .args(["stop-sshd", bed.dir.to_str().unwrap(), "2"])
        .status()
        .unwrap();
    assert!(stopped.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "some runs failed: {}", text(&o));
    let rows = csv::read(&support::run_dir(&out).join("summary.csv")).unwrap();
    assert_eq!(rows.len(), 4, "the sweep went on to its last run");
    assert!(rows[0].is_ok(), "{:?}", rows[0]);
    let failed: Vec<_> = rows.iter().filter(|r| !r.is_ok()).collect();
    assert!(!failed.is_empty());
    for r in failed {
        assert!(r.note.contains("10.77.0.3"), "names the host: {}", r.note);
    }
}

#[test]
fn a_version_mismatch_is_refused_at_preflight_and_client_binary_copies_ours() {
    require_ssh_bed!();
    let bed = Bed::up("version", 1);
    // An "acceptbench" of another version on the client host.
    let fake = bed.dir.join("old-acceptbench");
    std::fs::write(
        &fake,
        "#!/bin/sh\n[ \"$1\" = host-info ] || exit 3\necho '{\"acceptbench_version\":\"0.0.1\",\"format_version\":2,\"records_version\":2,\"host\":\"old\",\"realtime_ns\":1}'\nwhile read l; do date +%s%N; done\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&fake)
        .status()
        .unwrap();
    let host = format!("ssh://root@10.77.0.2{}", fake.display());
    let out = bed.dir.join("out");
    let args = [
        "--engines",
        "std",
        "--backlogs",
        "4096",
        "--modes",
        "closed",
        "--duration",
        "200ms",
        "--repeat",
        "1",
    ];
    let o = bed.sweep(&host, &out, &args).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("client host root@10.77.0.2 runs acceptbench 0.0.1 (results format 2"),
        "{err}"
    );
    assert!(err.contains("--client-binary"), "{err}");
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "no results made"
    );
    // The same host, with this binary copied over.
    let mut c = bed.sweep(&host, &out, &args);
    c.arg("--client-binary").arg(BIN);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let readme = std::fs::read_to_string(support::run_dir(&out).join("README.md")).unwrap();
    assert!(readme.contains("(copied there with scp)"), "{readme}");
    // The copy is gone again.
    let left = Command::new("sh")
        .args(["-c", "ls /tmp/acceptbench-bin.* 2>/dev/null | wc -l"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&left.stdout).trim(), "0");
}

/// PIDs of remote loadgens of the bed (their command line names its server).
fn remote_loadgens() -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        // The loadgens themselves and the remote shells that started them.
        if cmd.contains(" loadgen ") && cmd.contains("--remote") && cmd.contains("10.77.0.1:") {
            v.push(pid);
        }
    }
    v
}

#[test]
fn no_remote_loadgen_survives_a_killed_sweep() {
    require_ssh_bed!();
    let bed = Bed::up("kill", 2);
    let out = bed.dir.join("out");
    // Its own TMPDIR: what the killed sweep leaves there is removed below, and nothing
    // of any other sweep running on this machine.
    let tmp = bed.dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = bed
        .sweep(
            &bed.hosts.join(","),
            &out,
            &[
                "--engines",
                "std",
                "--backlogs",
                "4096",
                "--modes",
                "rate",
                "--rate",
                "2000",
                "--duration",
                "30s",
                "--repeat",
                "1",
            ],
        )
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(30);
    // Both hosts' loadgens (and their shells) running.
    while remote_loadgens().len() < 4 {
        assert!(
            Instant::now() < give_up,
            "the remote loadgens never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL: the sweep cannot stop anything itself. (Its own temporary directory on
    // this machine stays behind, as any SIGKILLed program's: removed below.)
    child.kill().unwrap();
    child.wait().unwrap();
    let give_up = Instant::now() + Duration::from_secs(15);
    while !remote_loadgens().is_empty() {
        assert!(
            Instant::now() < give_up,
            "remote loadgens still running 15 s after the sweep was killed: {:?}",
            remote_loadgens()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nobody will fetch their records: they wrote none, and their directories are gone.
    let dirs = remote_dirs();
    assert!(dirs.is_empty(), "left behind: {dirs:?}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Record directories of remote loadgens left in /tmp by this bed's sweeps.
fn remote_dirs() -> Vec<PathBuf> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("acceptbench."))
        })
        .collect()
}
