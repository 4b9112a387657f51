//! `sweep --server NAME=COMMAND`: external servers as engines, through the real binary.
//! Bad input exits 2 naming the fix; as root, the seed's Python server and
//! `acceptbench listen` (checked against its own count) are measured beside std, and
//! nothing they started is left running.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn acceptbench() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
}

/// Runs `acceptbench ARGS`; returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let out = acceptbench().args(args).output().expect("run acceptbench");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn seed_server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed_server.py")
}

#[test]
fn bad_server_input_exits_2_naming_the_fix() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--server", "seed=srv {port} {bakclog}", "--engines", "std,seed"],
            "unknown placeholder {bakclog}",
        ),
        (
            &["--server", "std=srv {port}", "--engines", "std"],
            "std is a built-in engine; give your server another name",
        ),
        (
            &["--server", "seed=srv {port}", "--engines", "std"],
            "it is not in --engines; add it there (e.g. --engines std,seed)",
        ),
        (
            &["--server", "seed=srv {port}"],
            "it is not in --engines",
        ),
        (
            &["--engines", "std,nginx"],
            "neither a built-in engine (std, uring, multishot, uring-linked, tokio-uring, tokio, compio) nor a server given with --server nginx='COMMAND'",
        ),
        (
            &["--server", "seed=srv --port 80", "--engines", "seed"],
            "has no {port}",
        ),
        (
            &["--server", "seed=srv {port}", "--engines", "std,seed", "--modes", "overload"],
            "cannot slow someone else's server",
        ),
        (
            &["--server-request", "nginx=GET /", "--engines", "std"],
            "there is no --server nginx=…",
        ),
        (
            &["--server", "seed=srv {port}", "--server-request", r"seed=a\q", "--engines", "seed"],
            r"unknown escape \q",
        ),
        (
            &["--server", "seed", "--engines", "seed"],
            "give NAME=COMMAND",
        ),
        (
            &["--server", "seed=srv {port}", "--engines", "seed", "--modes", "stall", "--stall-mu", "nginx=9000"],
            "there is no --server nginx=…; name one of the servers",
        ),
        (
            &["--server", "seed=srv {port}", "--engines", "seed", "--modes", "stall", "--stall-mu", "seed=0"],
            "must be a positive number of connections per second, e.g. seed=9000",
        ),
        (
            &["--server", "seed=srv {port}", "--engines", "seed", "--modes", "stall", "--stall-mu", "seed"],
            "give NAME=RATE",
        ),
        (
            &["--server", "seed=srv {port}", "--engines", "seed", "--modes", "closed", "--stall-mu", "seed=9000"],
            "add stall to --modes",
        ),
        (
            &["--attach", "web=127.0.0.1:8080", "--engines", "web", "--modes", "closed,burst"],
            "mode burst stops the server with SIGSTOP, which needs its PID: give --attach web=127.0.0.1:8080,pid=PID, or drop burst from --modes",
        ),
        (
            &["--attach", "web=nowhere", "--engines", "web", "--modes", "closed"],
            "is not ADDR:PORT",
        ),
        (
            &["--attach", "web=0.0.0.0:8080", "--engines", "web", "--modes", "closed"],
            "is not an address to connect to; give one it listens on, e.g. 127.0.0.1:8080",
        ),
        (
            &["--attach", "web=127.0.0.1:8080,pod=3", "--engines", "web", "--modes", "closed"],
            "unknown option \"pod=3\": the only one is pid=PID",
        ),
        (
            &["--attach", "std=127.0.0.1:8080", "--engines", "std", "--modes", "closed"],
            "std is a built-in engine",
        ),
        (
            &["--attach", "web=127.0.0.1:8080", "--engines", "std", "--modes", "closed"],
            "it is not in --engines",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["sweep", "--out", "/nonexistent/never-written"];
        a.extend_from_slice(args);
        let (code, err) = run(&a);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_server_that_exits_at_once_is_refused_before_the_sweep() {
    let out = std::env::temp_dir().join(format!("acceptbench-ext-exit-{}", std::process::id()));
    let (code, err) = run(&[
        "sweep",
        "--server",
        "broken=echo 'config error: no such file' >&2; exit 1 # {port}",
        "--engines",
        "std,broken",
        "--modes",
        "closed",
        "--out",
        out.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--server broken: server broken exited before listening"),
        "{err}"
    );
    assert!(
        err.contains("exit 1") && err.contains("config error: no such file"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "no results directory for a sweep that never started"
    );
}

#[test]
fn a_server_on_another_port_is_refused_naming_the_port() {
    require_root!();
    let cmd = format!(
        "exec python3 {} 18099 8 # ignores {{port}}",
        seed_server().display()
    );
    let (code, err) = run(&[
        "sweep",
        "--server",
        &format!("astray={cmd}"),
        "--engines",
        "astray",
        "--modes",
        "closed",
        "--out",
        "/nonexistent/never-written",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("but it listens on 127.0.0.1:18099"), "{err}");
    assert!(err.contains("{port}"), "{err}");
}

/// PIDs of processes whose environment holds `marker`.
fn marked(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// summary.csv of `dir` as (header → value) maps.
fn rows(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(dir.join("summary.csv")).expect("summary.csv");
    let head = r.headers().expect("header").clone();
    r.records()
        .map(|rec| {
            let rec = rec.expect("row");
            head.iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn the_seed_server_and_acceptbench_listen_are_measured_beside_std() {
    require_root!();
    let marker = format!("ABTEST_EXT={}", std::process::id());
    let seed = format!(
        "seed={marker} exec python3 {} {{port}} {{backlog}}",
        seed_server().display()
    );
    let bin = assert_cmd::cargo::cargo_bin("acceptbench");
    let listen = format!(
        "ab={marker} exec {} listen --engine std --addr {{addr}}:{{port}} --backlog {{backlog}} --json",
        bin.display()
    );
    let dir = support::sweep_into(
        "ext-sweep",
        &[
            "--server",
            &seed,
            "--server",
            &listen,
            "--engines",
            "std,seed,ab",
            "--modes",
            "closed,rate,burst,drain",
            // A rate both servers keep up with (the Python one overflows a 64-deep
            // queue at the default 5000/s on 2 vCPUs).
            "--rate",
            "1000",
            // Above the closed loop's connects in flight: no overflow, so every
            // established connection must be served.
            "--backlogs",
            "64",
            "--duration",
            "1s",
            "--repeat",
            "1",
            "--burst-size",
            "100",
            "--no-plots",
        ],
    );
    let rows = rows(&dir);
    let get = |engine: &str, mode: &str| {
        rows.iter()
            .find(|r| r["engine"] == engine && r["mode"] == mode)
            .unwrap_or_else(|| panic!("no {engine} {mode} row"))
    };
    for engine in ["seed", "ab"] {
        let closed = get(engine, "closed");
        assert_eq!(closed["status"], "ok", "{closed:?}");
        assert_eq!(
            closed["established"], closed["accepted"],
            "served = established: {closed:?}"
        );
        assert!(closed["accepted"].parse::<u64>().unwrap() > 0);
        assert_eq!(closed["backlog_effective"], "64");
        assert!(
            closed["acceptor_cpu_s"].parse::<f64>().unwrap() > 0.0,
            "{closed:?}"
        );
        let rate = get(engine, "rate");
        assert_eq!(rate["status"], "ok", "{rate:?}");
        assert_eq!(
            rate["established"], rate["accepted"],
            "served = established: {rate:?}"
        );
        let burst = get(engine, "burst");
        assert_eq!(burst["status"], "ok", "{burst:?}");
        assert_eq!(
            burst["queue_max"], "65",
            "a stopped server holds backlog + 1: {burst:?}"
        );
        let drain = get(engine, "drain");
        assert_eq!(drain["status"], "ok", "{drain:?}");
        assert!(drain["accepted"].parse::<u64>().unwrap() >= 65, "{drain:?}");
        assert!(
            drain["accepts_per_s"].parse::<f64>().unwrap() > 0.0,
            "{drain:?}"
        );
        assert!(dir
            .join(format!("hgrm/{engine}-b64-closed-served.hgrm"))
            .exists());
        assert!(dir
            .join(format!("servers/{engine}-b64-closed-r1.stderr"))
            .exists());
    }
    // acceptbench listen's own count (its --json summary on SIGTERM) = served.
    let out = std::fs::read_to_string(dir.join("servers/ab-b64-closed-r1.stdout")).expect("log");
    let summary: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("a summary line")).expect("json");
    assert_eq!(
        summary["accepted"].as_u64().map(|n| n.to_string()),
        Some(get("ab", "closed")["accepted"].clone()),
        "served = what the server itself accepted"
    );
    assert!(
        marked(&marker).is_empty(),
        "left running: {:?}",
        marked(&marker)
    );
    support::remove_run(&dir);
}

#[test]
fn a_burst_counts_what_the_stopped_seed_server_served_once_continued() {
    require_root!();
    let seed = format!(
        "seed=exec python3 {} {{port}} {{backlog}}",
        seed_server().display()
    );
    let dir = support::sweep_into(
        "ext-burst",
        &[
            "--server",
            &seed,
            "--engines",
            "seed",
            "--modes",
            "burst",
            "--backlogs",
            "8",
            "--burst-size",
            "40",
            "--repeat",
            "1",
            "--no-plots",
        ],
    );
    let rows = rows(&dir);
    let r = &rows[0];
    let n = |c: &str| -> u64 { r[c].parse().unwrap_or_else(|_| panic!("{c}: {r:?}")) };
    assert_eq!(r["status"], "ok", "{r:?}");
    assert_eq!(r["queue_max"], "9", "stopped: backlog + 1 held: {r:?}");
    // Served: the 9 queued, and whatever else it took once continued (the dropped
    // final ACKs come back with the SYN-ACK retransmits); client-only the rest.
    assert!(n("accepted") >= 9, "served at least the queue: {r:?}");
    assert_eq!(
        n("established"),
        n("accepted") + n("unmatched_client"),
        "established = served + client-only: {r:?}"
    );
    assert!(
        r["note"].contains(&format!(
            "served {} of {} established",
            n("accepted"),
            n("established")
        )),
        "{r:?}"
    );
    assert!(dir.join("hgrm/seed-b8-burst-served.hgrm").exists());
    support::remove_run(&dir);
}

#[test]
fn a_stalled_seed_server_leaves_client_only_connections_the_model_predicts() {
    require_root!();
    let seed = format!(
        "seed=exec python3 {} {{port}} {{backlog}}",
        seed_server().display()
    );
    let dir = support::sweep_into(
        "ext-stall",
        &[
            "--server",
            &seed,
            "--engines",
            "seed",
            "--modes",
            "drain,stall",
            "--stall",
            "2s",
            "--stall-load",
            "rate:1000",
            "--backlogs",
            "8",
            "--repeat",
            "1",
            "--no-plots",
        ],
    );
    let mut r = csv::Reader::from_path(dir.join("stall.csv")).expect("stall.csv");
    let head = r.headers().expect("header").clone();
    let col = |name: &str| head.iter().position(|h| h == name).expect(name);
    let row = r.records().next().expect("a stall row").expect("row");
    assert_eq!(&row[col("status")], "ok", "{row:?}");
    // The model's μ is the server's own drain rate, measured before in the sweep.
    assert!(
        row[col("mu_source")]
            .starts_with("drain: the server's own drain rate, median of 1 drain run"),
        "{row:?}"
    );
    let mu: f64 = row[col("accept_per_s")].parse().expect("accept_per_s");
    let drain = rows(&dir)
        .into_iter()
        .find(|r| r["mode"] == "drain")
        .expect("a drain row");
    assert_eq!(
        drain["accepts_per_s"].parse::<f64>().ok(),
        Some(mu),
        "{drain:?}"
    );
    let measured: f64 = row[col("client_only")].parse().expect("client_only");
    let predicted: f64 = row[col("client_only_pred")]
        .parse()
        .expect("client_only_pred");
    // The model's server empties its queue at once after the resume (it took the
    // Python server 1 to 2 ms on an idle 2-vCPU VM) and its clients keep their rate:
    // on a machine too busy for either, the comparison says nothing.
    let empty_ms: f64 = row[col("empty_after_resume_ms")]
        .parse()
        .unwrap_or(f64::MAX);
    let retries: u64 = row[col("prestall_retries")].parse().unwrap_or(u64::MAX);
    if empty_ms > 100.0 || retries > 5 {
        common::testskip::skip_part(
            common::testskip::Lack::Host,
            &format!("the machine was too busy for the stall model (the server took {empty_ms} ms to empty its queue after the resume, {retries} connects retried before the stall); client-only {measured}, model {predicted}"),
        );
        support::remove_run(&dir);
        return;
    }
    // 2 s × 1000/s into a queue of 9: about 1700 final ACKs dropped. Measured on a
    // 2-vCPU VM, Linux 6.18: 1348 to 1683 for this server, 1311 and 1384 for std,
    // beside 1703 to 1709 predicted. The model lets the acceptor act only between
    // batches of retransmits; a server on its own CPU also takes connections during a
    // batch, so fewer final ACKs meet a full queue (the verdict says so): up to 23%
    // fewer for std, hence 25%.
    assert!(predicted > 1000.0, "{row:?}");
    assert!(
        (measured - predicted).abs() <= 0.25 * predicted,
        "client-only {measured} vs the model's {predicted}"
    );
    support::remove_run(&dir);
}

/// A stall row of a short stall of the seed server with `extra` flags.
fn short_stall_row(name: &str, extra: &[&str]) -> std::collections::HashMap<String, String> {
    let seed = format!(
        "seed=exec python3 {} {{port}} {{backlog}}",
        seed_server().display()
    );
    let mut args = vec![
        "--server",
        &seed,
        "--engines",
        "seed",
        "--modes",
        "stall",
        "--stall",
        "300ms",
        "--stall-load",
        "rate:200",
        "--stall-after",
        "1s",
        "--backlogs",
        "8",
        "--repeat",
        "1",
        "--no-plots",
    ];
    args.extend_from_slice(extra);
    let dir = support::sweep_into(name, &args);
    let mut r = csv::Reader::from_path(dir.join("stall.csv")).expect("stall.csv");
    let head = r.headers().expect("header").clone();
    let row = r.records().next().expect("a stall row").expect("row");
    let out = head
        .iter()
        .zip(row.iter())
        .map(|(h, v)| (h.to_string(), v.to_string()))
        .collect();
    support::remove_run(&dir);
    out
}

#[test]
fn a_stall_without_a_drain_rate_takes_stall_mu_or_has_no_model() {
    require_root!();
    let given = short_stall_row("ext-stall-mu", &["--stall-mu", "seed=9000"]);
    assert_eq!(given["status"], "ok", "{given:?}");
    assert_eq!(given["mu_source"], "--stall-mu", "{given:?}");
    assert_eq!(
        given["accept_per_s"].parse::<f64>().ok(),
        Some(9000.0),
        "{given:?}"
    );
    assert!(!given["client_only_pred"].is_empty(), "{given:?}");
    let none = short_stall_row("ext-stall-nomu", &[]);
    assert_eq!(none["status"], "ok", "{none:?}");
    assert!(
        none["mu_source"]
            .starts_with("absent: no drain run of this server at this backlog and no --stall-mu"),
        "{none:?}"
    );
    // No model: its columns are empty, not zero.
    for c in [
        "accept_per_s",
        "client_only_pred",
        "held_pred",
        "recovered_pred",
        "lag_p99_ms_pred",
    ] {
        assert_eq!(none[c], "", "{c}: {none:?}");
    }
    assert!(none["verdict"].starts_with("no model"), "{none:?}");
    assert!(
        !none["client_only"].is_empty(),
        "measured all the same: {none:?}"
    );
}

#[test]
fn nginx_holds_backlog_plus_one_when_stopped_and_serves_every_request() {
    require_root!();
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        common::testskip::skip(
            common::testskip::Lack::Program,
            "nginx is not installed (apt-get install nginx-light, or nginx)",
        );
        return;
    };
    let run_sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nginx/run.sh");
    let dir = support::sweep_into(
        "ext-nginx",
        &[
            "--server",
            &format!("nginx={} {{addr}} {{port}} {{backlog}}", run_sh.display()),
            "--server-request",
            r"nginx=GET / HTTP/1.0\r\n\r\n",
            "--engines",
            "nginx",
            "--modes",
            "closed,burst",
            "--backlogs",
            "16",
            "--duration",
            "1s",
            "--repeat",
            "1",
            "--burst-size",
            "60",
            "--no-plots",
        ],
    );
    let rows = rows(&dir);
    let get = |mode: &str| {
        rows.iter()
            .find(|r| r["mode"] == mode)
            .unwrap_or_else(|| panic!("no {mode} row ({nginx})"))
    };
    let closed = get("closed");
    assert_eq!(closed["status"], "ok", "{closed:?}");
    assert_eq!(closed["established"], closed["accepted"], "{closed:?}");
    assert_eq!(closed["backlog_effective"], "16");
    let burst = get("burst");
    assert_eq!(burst["queue_max"], "17", "{burst:?}");
    // nginx's temporary directory went with it.
    let log = std::fs::read_to_string(dir.join("servers/nginx-b16-closed-r1.stdout")).expect("log");
    let tmp = log
        .lines()
        .find_map(|l| l.strip_prefix("nginx: config and pid in "))
        .expect("run.sh names its directory");
    assert!(!Path::new(tmp).exists(), "{tmp} left behind");
    support::remove_run(&dir);
}

/// A seed server this test started itself on 127.0.0.1:`port`, leading its own process
/// group; killed by PID when dropped.
struct OwnSeed(std::process::Child);

impl OwnSeed {
    fn start(port: u16, backlog: u32) -> OwnSeed {
        use std::os::unix::process::CommandExt;
        let child = Command::new("python3")
            .arg(seed_server())
            .args([port.to_string(), backlog.to_string()])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("python3");
        let mut diag = acceptbench::kernel::sockdiag::ListenerDiag::open().expect("sock_diag");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while diag.listening(port).expect("dump").is_empty() {
            assert!(
                std::time::Instant::now() < end,
                "the seed server never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        OwnSeed(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for OwnSeed {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process this test started (continued first, in case).
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGCONT);
            libc::kill(self.0.id() as i32, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[test]
fn an_attached_seed_server_is_measured_and_paused_only_with_its_pid() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let seed = OwnSeed::start(port, 8);
    let at = format!("seed=127.0.0.1:{port}");
    // Without its PID: closed runs; its row says where it ran.
    let dir = support::sweep_into(
        "ext-attach",
        &[
            "--attach",
            &at,
            "--engines",
            "std,seed",
            "--modes",
            "closed",
            "--backlogs",
            "8",
            "--duration",
            "1s",
            "--repeat",
            "1",
            "--no-plots",
        ],
    );
    let rows1 = rows(&dir);
    let closed = rows1
        .iter()
        .find(|r| r["engine"] == "seed")
        .expect("a seed row");
    assert_eq!(closed["status"], "ok", "{closed:?}");
    assert!(closed["accepted"].parse::<u64>().unwrap() > 0, "{closed:?}");
    assert_eq!(closed["established"], closed["accepted"], "{closed:?}");
    assert_eq!(closed["backlog_effective"], "8", "{closed:?}");
    assert_eq!(closed["netns"], "host", "{closed:?}");
    assert!(
        closed["note"].contains("may include other traffic"),
        "{closed:?}"
    );
    // Its CPU is not read without its PID: absent, not 0.
    assert_eq!(closed["acceptor_cpu_s"], "", "{closed:?}");
    assert_eq!(closed["acceptor_cpu_us_per_accept"], "", "{closed:?}");
    support::remove_run(&dir);
    // A pausing mode without its PID is refused, naming the fix.
    let (code, err) = run(&[
        "sweep",
        "--attach",
        &at,
        "--engines",
        "seed",
        "--modes",
        "burst",
        "--backlogs",
        "8",
        "--out",
        "/nonexistent/never-written",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("give --attach {at},pid=PID")),
        "{err}"
    );
    // Its backlog is its listener's: another --backlogs is refused, naming it.
    let (code, err) = run(&[
        "sweep",
        "--attach",
        &at,
        "--engines",
        "seed",
        "--modes",
        "closed",
        "--backlogs",
        "16",
        "--out",
        "/nonexistent/never-written",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("with backlog 8 (read with sock_diag)") && err.contains("--backlogs 8"),
        "{err}"
    );
    // A PID that does not hold the listener is refused, naming it.
    let mut other = Command::new("sleep").arg("30").spawn().expect("sleep");
    let (code, err) = run(&[
        "sweep",
        "--attach",
        &format!("{at},pid={}", other.id()),
        "--engines",
        "seed",
        "--modes",
        "closed",
        "--backlogs",
        "8",
        "--out",
        "/nonexistent/never-written",
    ]);
    let _ = other.kill();
    let _ = other.wait();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("hold no listener on 127.0.0.1:"), "{err}");
    // With its PID (it leads its process group): a burst holds backlog + 1.
    let with_pid = format!("{at},pid={}", seed.pid());
    let dir = support::sweep_into(
        "ext-attach-burst",
        &[
            "--attach",
            &with_pid,
            "--engines",
            "seed",
            "--modes",
            "burst",
            "--backlogs",
            "8",
            "--burst-size",
            "40",
            "--repeat",
            "1",
            "--no-plots",
        ],
    );
    let rows2 = rows(&dir);
    let burst = &rows2[0];
    assert_eq!(burst["status"], "ok", "{burst:?}");
    assert_eq!(burst["queue_max"], "9", "stopped: backlog + 1: {burst:?}");
    assert!(
        burst["note"].contains(&format!("pauses go to process group {}", seed.pid())),
        "{burst:?}"
    );
    support::remove_run(&dir);
    // Left running, and still serving.
    assert!(std::path::Path::new(&format!("/proc/{}", seed.pid())).exists());
    drop(seed);
    // Nothing listens there now: a clear failure.
    let (code, err) = run(&[
        "sweep",
        "--attach",
        &at,
        "--engines",
        "seed",
        "--modes",
        "closed",
        "--backlogs",
        "8",
        "--out",
        "/nonexistent/never-written",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("nothing listens on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// `/proc/PID/stat`'s state letter (`T`: stopped).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// An attached server is someone else's: a sweep SIGKILLed while it holds it stopped
/// must not leave it stopped (its pause guard continues it).
#[test]
fn a_killed_sweep_never_leaves_an_attached_server_stopped() {
    if !support::is_root() {
        common::testskip::skip(
            common::testskip::Lack::Root,
            "a stall runs in the host's namespace only as root",
        );
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let seed = OwnSeed::start(port, 8);
    let out = std::env::temp_dir().join(format!("ab-attach-kill-{}", std::process::id()));
    let mut sweep = acceptbench()
        .args(["sweep", "--attach"])
        .arg(format!("seed=127.0.0.1:{port},pid={}", seed.pid()))
        .args(["--engines", "seed", "--modes", "stall", "--backlogs", "8"])
        .args([
            "--stall",
            "20s",
            "--stall-after",
            "1s",
            "--stall-mu",
            "seed=5000",
        ])
        .args([
            "--stall-load",
            "rate:100",
            "--repeat",
            "1",
            "--no-plots",
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sweep");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while proc_state(seed.pid()) != Some('T') {
        assert!(
            std::time::Instant::now() < end,
            "the sweep never stopped the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    sweep.kill().expect("SIGKILL the sweep");
    sweep.wait().expect("reap");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while proc_state(seed.pid()) == Some('T') {
        assert!(
            std::time::Instant::now() < end,
            "the attached server is still stopped 3 s after the sweep was SIGKILLed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir_all(&out);
}
