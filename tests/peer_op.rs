//! Engine `uring-linked`'s in-ring peer read (`--peer-op`): getsockopt(SO_PEERNAME)
//! (6.7) and getsockname with the peer flag (6.19) each accept every queued
//! connection exactly once with its peer; `auto` takes what the probe found and the
//! sweep's row says which ran; getsockname is refused, naming Linux 6.19, where the
//! kernel lacks it, and `--peer-op` is refused for other engines. An op the kernel
//! lacks is skipped with the probe's reason. Loopback only; every run is bounded by a
//! count and a deadline.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use acceptbench::engine::{self, EngineKind, EngineOptions, Limits, PeerOp, StopFlag};
use acceptbench::kernel::probe;
use acceptbench::listener::{Listener, ListenerSpec};
use acceptbench::record::Recorder;
use assert_cmd::Command;
use common::testskip::{skip_part, Lack};

fn runnable(op: PeerOp, direct: bool) -> bool {
    let p = probe::probe_uring_cached();
    let s = engine::engine_support(EngineKind::UringLinked, p);
    if !s.supported {
        skip_part(Lack::Kernel, &format!("engine uring-linked: {}", s.reason));
        return false;
    }
    if direct && !p.direct_descriptors {
        skip_part(Lack::Kernel, "--direct needs Linux 5.19");
        return false;
    }
    if let Some(why) = (op == PeerOp::Getsockname)
        .then(|| engine::getsockname_unsupported(p))
        .flatten()
    {
        skip_part(Lack::Kernel, &format!("--peer-op getsockname: {why}"));
        return false;
    }
    true
}

fn listener() -> Listener {
    Listener::bind(&ListenerSpec {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        backlog: 256,
        reuse_port: false,
        dual_stack: false,
    })
    .expect("listen on loopback")
}

#[test]
fn each_peer_op_drains_a_full_queue_with_exact_peers() {
    const N: usize = 100;
    for op in [PeerOp::Getsockopt, PeerOp::Getsockname] {
        for direct in [false, true] {
            if !runnable(op, direct) {
                continue;
            }
            let at = format!("{op} direct={direct}");
            let l = listener();
            let clients: Vec<TcpStream> = (0..N)
                .map(|_| TcpStream::connect(l.local_addr).expect("connect"))
                .collect();
            let want: BTreeSet<SocketAddr> =
                clients.iter().map(|c| c.local_addr().unwrap()).collect();
            let o = EngineOptions {
                peer_op: op,
                direct,
                ..EngineOptions::default()
            };
            let mut a = engine::build(EngineKind::UringLinked, &o).expect("supported engine");
            let mut rec = Recorder::new(true);
            let limits = Limits {
                count: Some(N as u64),
                deadline: Some(Instant::now() + Duration::from_secs(10)),
                stop: StopFlag::new(),
            };
            a.run(&l, &limits, &mut rec).expect("engine run");
            let got: BTreeSet<SocketAddr> = rec.peers.iter().map(|p| p.peer).collect();
            assert_eq!(rec.accepted, N as u64, "{at}: {:?}", rec.errors);
            assert_eq!(rec.error_total(), 0, "{at}: {:?}", rec.errors);
            assert_eq!(got, want, "{at}: exact peers");
            assert_eq!(rec.closed, N as u64, "{at}");
            let c = a.counters();
            assert_eq!(c.peer_op_errors, 0, "{at}: the in-ring read never failed");
            assert_eq!(c.peer_syscall_fallbacks, 0, "{at}: {c:?}");
        }
    }
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("acceptbench-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A sweep with the default `--peer-op auto`: the row's peer_op is what the probe
/// found (getsockopt on a kernel before 6.19) and the label says so.
#[test]
fn auto_runs_what_the_probe_found_and_the_row_says_which() {
    if !runnable(PeerOp::Getsockopt, false) {
        return;
    }
    let out = out_dir("peer-op-auto");
    let run = Command::cargo_bin("acceptbench")
        .unwrap()
        .args([
            "sweep",
            "--engines",
            "std,uring-linked",
            "--backlogs",
            "16",
            "--modes",
            "drain",
            "--repeat",
            "1",
            "--no-plots",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{err}");
    let dir = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a run directory");
    let rows = acceptbench::report::csv::read(&dir.join("summary.csv")).unwrap();
    let want = if probe::probe_uring_cached().uring_cmd_getsockname {
        "getsockname"
    } else {
        "getsockopt"
    };
    let linked: Vec<_> = rows.iter().filter(|r| r.engine == "uring-linked").collect();
    assert_eq!(linked.len(), 1, "{rows:?}");
    assert_eq!(linked[0].peer_op, want);
    assert!(linked[0].is_ok(), "{:?}", linked[0]);
    let std_row = rows.iter().find(|r| r.engine == "std").expect("std row");
    assert_eq!(std_row.peer_op, "", "only uring-linked has a peer op");
    let label = acceptbench::sweep::sink::series_of(linked[0]);
    let want_label = if want == "getsockname" {
        "uring-linked.gsn"
    } else {
        "uring-linked"
    };
    assert_eq!(label, want_label);
    let cells = std::fs::read_to_string(dir.join("cells.csv")).unwrap();
    assert!(cells.lines().next().unwrap().contains("peer_op"), "{cells}");
    let _ = std::fs::remove_dir_all(&out);
}

fn acceptbench(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::cargo_bin("acceptbench")
        .unwrap()
        .args(args)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Where the kernel lacks the in-ring getsockname, asking for it is a command-line
/// error (exit 2) naming the version it needs and the way out.
#[test]
fn getsockname_where_the_kernel_lacks_it_is_refused_naming_linux_6_19() {
    if probe::probe_uring_cached().uring_cmd_getsockname {
        skip_part(
            Lack::Kernel,
            "this kernel has the in-ring getsockname: nothing to refuse",
        );
        return;
    }
    for args in [
        &[
            "listen",
            "--engine",
            "uring-linked",
            "--peer-op",
            "getsockname",
            "--count",
            "1",
        ][..],
        &[
            "sweep",
            "--engines",
            "std,uring-linked",
            "--peer-op",
            "getsockname,getsockopt",
        ][..],
    ] {
        let (code, err) = acceptbench(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--peer-op") && err.contains("needs Linux 6.19"),
            "{args:?}: {err}"
        );
        assert!(err.contains("use --peer-op getsockopt or auto"), "{err}");
    }
    let e = engine::build(
        EngineKind::UringLinked,
        &EngineOptions {
            peer_op: PeerOp::Getsockname,
            ..EngineOptions::default()
        },
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("needs Linux 6.19"), "{e}");
}

#[test]
fn peer_op_is_refused_for_other_engines_by_name() {
    let e = engine::build(
        EngineKind::Multishot,
        &EngineOptions {
            peer_op: PeerOp::Getsockopt,
            ..EngineOptions::default()
        },
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("applies to engine uring-linked only"), "{e}");
    let (code, err) = acceptbench(&["listen", "--engine", "std", "--peer-op", "getsockopt"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("give --engine uring-linked"), "{err}");
    let (code, err) = acceptbench(&["sweep", "--engines", "std", "--peer-op", "getsockopt"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("add uring-linked to --engines"), "{err}");
    let (code, err) = acceptbench(&["listen", "--engine", "uring-linked", "--peer-op", "peer"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("auto, getsockname or getsockopt"), "{err}");
}
