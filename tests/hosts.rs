//! Several client "hosts" on one machine: scripts/hosts/netns-join.sh builds one server
//! and three client network namespaces on a bridge, runs `acceptbench listen --records`
//! and `loadgen --records --hlog` in them, and `acceptbench join`s the records. Then the
//! join is checked (exact accounting per host, merged .hlog agrees on counts) and the
//! real record files are corrupted on purpose to check join's refusals.
//!
//! Needs root and iproute2; skipped (with the reason printed) otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

use common::testskip::Lack;

use acceptbench::hostjoin::output::read_hosts_csv;
use acceptbench::report::{csv, hgrm};

const CONNS: u64 = 2000;
const K: usize = 3;

fn skip_reason() -> Option<(Lack, String)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some((Lack::Root, "not root: ip netns needs CAP_SYS_ADMIN".into()));
    }
    let ip = Command::new("ip").args(["netns", "list"]).output();
    match ip {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some((
            Lack::Host,
            format!(
                "`ip netns list` fails here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        )),
        Err(e) => Some((
            Lack::Program,
            format!("no iproute2 (`ip`: {e}): apt-get install iproute2"),
        )),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_acceptbench")
}

/// Runs the topology; returns the run directory and where the raw records were kept.
fn run_topology(tmp: &Path) -> (PathBuf, PathBuf) {
    let keep = tmp.join("records");
    let out = Command::new("timeout")
        .arg("120")
        .arg(repo().join("scripts/hosts/netns-join.sh"))
        .env("ACCEPTBENCH", bin())
        .env("K", K.to_string())
        .env("CONNS", CONNS.to_string())
        .env("OUT", tmp.join("results"))
        .env("KEEP", &keep)
        .output()
        .expect("run scripts/hosts/netns-join.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "netns-join.sh failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let run = stdout.lines().last().expect("the run directory").trim();
    (PathBuf::from(run), keep)
}

fn join(server: &Path, clients: &[&Path], out: &Path) -> (bool, String) {
    let o = Command::new(bin())
        .arg("join")
        .arg("--server")
        .arg(server)
        .arg("--client")
        .args(clients)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run acceptbench join");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A copy of `src` with `edit` applied to its bytes.
fn patched(src: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut b = std::fs::read(src).expect("read records");
    edit(&mut b);
    let p = src.with_file_name(name);
    std::fs::write(&p, b).expect("write patched records");
    p
}

#[test]
fn three_client_namespaces_join_exactly_and_bad_files_are_refused() {
    if let Some((lack, why)) = skip_reason() {
        common::testskip::skip(lack, &why);
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp dir");
    let (run, keep) = run_topology(tmp.path());

    // Exact accounting, per client host and overall.
    let hosts = read_hosts_csv(&run.join("hosts.csv")).expect("hosts.csv");
    assert_eq!(hosts.len(), K);
    for h in &hosts {
        assert_eq!(
            (h.established, h.accepted, h.matched),
            (CONNS, CONNS, CONNS),
            "{h:?}"
        );
        assert_eq!((h.unmatched_client, h.unmatched_server), (0, 0), "{h:?}");
        assert_eq!(h.clock, "monotonic", "namespaces share the host's clock");
    }
    let rows = csv::read(&run.join("summary.csv")).expect("summary.csv");
    assert_eq!(rows.len(), 1);
    let total = CONNS * K as u64;
    assert_eq!(
        (
            rows[0].established,
            rows[0].accepted,
            rows[0].matched,
            rows[0].unmatched
        ),
        (total, total, total, 0)
    );

    // The merged .hlog of the clients, the join's connect histogram and the per-host
    // ones agree on counts.
    let dist = |name: &str| {
        hgrm::parse_file(&run.join("hgrm").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .total_count
    };
    let merged = dist("merged-clients-connect.hgrm");
    let per_host: u64 = hosts
        .iter()
        .map(|h| {
            dist(&format!(
                "std-b4096-closed-connect-{}.hgrm",
                h.host.replace('/', "_")
            ))
        })
        .sum();
    assert_eq!(merged, total);
    assert_eq!(per_host, total);
    assert_eq!(dist("std-b4096-closed-connect.hgrm"), total);
    assert_eq!(dist("std-b4096-closed-peer.hgrm"), total);

    // Refusals, on the real files.
    let server = keep.join("server.rec");
    let c1 = keep.join("c1.rec");
    let out = tmp.path().join("bad");
    let (c2, c3) = (keep.join("c2.rec"), keep.join("c3.rec"));
    let (ok, e) = join(&server, &[&c1, &c2, &c3], &out);
    assert!(ok, "the untouched client files join: {e}");

    let wrong_port = patched(&c1, "wrong-port.rec", |b| {
        b[58..60].copy_from_slice(&9001u16.to_le_bytes())
    });
    let (ok, e) = join(&server, &[&c1, &wrong_port], &out);
    assert!(
        !ok && e.contains("wrong-port.rec") && e.contains("another server"),
        "{e}"
    );

    // Another host (boot id) whose wall clock says it ran an hour later.
    let late = patched(&c1, "late.rec", |b| {
        let real = u64::from_le_bytes(b[32..40].try_into().unwrap()) + 3_600_000_000_000;
        b[32..40].copy_from_slice(&real.to_le_bytes());
        b[40] ^= 0xff;
    });
    let (ok, e) = join(&server, &[&late], &out);
    assert!(
        !ok && e.contains("late.rec") && e.contains("do not overlap"),
        "{e}"
    );

    let truncated = patched(&c1, "cut.rec", |b| b.truncate(b.len() - 30));
    let (ok, e) = join(&server, &[&truncated], &out);
    assert!(
        !ok && e.contains("cut.rec") && e.contains("truncated"),
        "{e}"
    );

    let future = patched(&c1, "v9.rec", |b| {
        b[8..12].copy_from_slice(&9u32.to_le_bytes())
    });
    let (ok, e) = join(&server, &[&future], &out);
    assert!(
        !ok && e.contains("v9.rec") && e.contains("version 9"),
        "{e}"
    );

    let cut_server = patched(&server, "cut-server.rec", |b| b.truncate(100));
    let (ok, e) = join(&cut_server, &[&c1], &out);
    assert!(
        !ok && e.contains("cut-server.rec") && e.contains("truncated"),
        "{e}"
    );

    let (ok, e) = join(&c1, &[&c1], &out);
    assert!(!ok && e.contains("loadgen's records"), "{e}");
}

/// `sweep --client-hosts 2`: closed-loop runs across veth namespaces, rows marked
/// netns=veth, every connection matched; the namespaces are gone afterwards.
#[test]
fn sweep_with_client_hosts_runs_across_veth() {
    if let Some((lack, why)) = skip_reason() {
        common::testskip::skip(lack, &why);
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp dir");
    let child = Command::new(bin())
        .args([
            "sweep",
            "--engines",
            "std",
            "--backlogs",
            "1024",
            "--modes",
            "closed",
        ])
        .args([
            "--duration",
            "150ms",
            "--repeat",
            "1",
            "--client-hosts",
            "2",
        ])
        .args(["--no-plots", "--quiet", "--out"])
        .arg(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the sweep");
    let prefix = format!("abs{}-", child.id());
    let o = child.wait_with_output().expect("run the sweep");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let run = std::fs::read_dir(tmp.path())
        .unwrap()
        .next()
        .expect("a run directory")
        .unwrap()
        .path();
    let rows = csv::read(&run.join("summary.csv")).expect("summary.csv");
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.netns, "veth");
    assert!(r.established > 0, "{r:?}");
    assert_eq!(
        (r.accepted, r.matched, r.unmatched),
        (r.established, r.established, 0)
    );
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.lines().any(|l| l.starts_with(&prefix)),
        "namespaces left behind: {left}"
    );

    // Modes that need one client on the host are refused by name.
    let o = Command::new(bin())
        .args(["sweep", "--modes", "drain", "--client-hosts", "2", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--client-hosts runs modes closed and rate"),
        "{err}"
    );
}

/// join's refusals through the real binary, on files written by the library (no root
/// needed): another server's client file, a file from another time, a missing file.
#[test]
fn join_names_what_is_wrong_with_a_client_file() {
    use acceptbench::record::PeerRecord;
    use loadgen::{ConnRecord, Outcome, RecordMeta};
    let tmp = tempfile::tempdir().expect("tmp dir");
    let listen: std::net::SocketAddr = "127.0.0.1:9000".parse().unwrap();
    let server_meta = RecordMeta::here(Some(listen), "t");
    let now = common::clock::mono_ns();
    let server = tmp.path().join("server.rec");
    let peer: std::net::SocketAddr = "127.0.0.2:40000".parse().unwrap();
    acceptbench::serverrec::write(
        &server,
        &server_meta,
        &[PeerRecord {
            peer,
            accepted_ns: now + 1000,
            decoded_ns: now + 1100,
        }],
    )
    .unwrap();
    let conn = ConnRecord {
        local: peer,
        intended_ns: now,
        connect_start_ns: now,
        done_ns: now + 500,
        outcome: Outcome::Established,
        warmup: false,
        round: 0,
        serve: Default::default(),
    };
    let client = |name: &str, meta: &RecordMeta| {
        let p = tmp.path().join(name);
        loadgen::write_records(&p, meta, &[conn]).unwrap();
        p
    };
    let good = client("good.rec", &RecordMeta::here(Some(listen), "t"));
    let out = tmp.path().join("out");
    let (ok, e) = join(&server, &[&good], &out);
    assert!(ok, "{e}");

    let other = client(
        "other.rec",
        &RecordMeta::here(Some("127.0.0.1:9001".parse().unwrap()), "t"),
    );
    let (ok, e) = join(&server, &[&other], &out);
    assert!(
        !ok && e.contains("other.rec")
            && e.contains("127.0.0.1:9001")
            && e.contains("another server"),
        "{e}"
    );

    let mut late_meta = RecordMeta::here(Some(listen), "t");
    late_meta.boot_id = [7; 16];
    late_meta.anchor_realtime_ns += 3_600_000_000_000;
    let late = client("late.rec", &late_meta);
    let (ok, e) = join(&server, &[&late], &out);
    assert!(
        !ok && e.contains("late.rec") && e.contains("do not overlap"),
        "{e}"
    );

    let run = client("run.rec", &RecordMeta::here(Some(listen), "other-run"));
    let (ok, e) = join(&server, &[&run], &out);
    assert!(
        !ok && e.contains("run.rec") && e.contains("another run"),
        "{e}"
    );

    let (ok, e) = join(&tmp.path().join("missing.rec"), &[&good], &out);
    assert!(!ok && e.contains("missing.rec"), "{e}");
}
