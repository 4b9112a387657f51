//! Bad input through the real binary: one clear line on stderr, non-zero exit.

mod common;

use assert_cmd::Command;

fn loadgen(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("loadgen")
        .expect("binary")
        .args(args)
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], code: i32, needle: &str) {
    let (c, _out, err) = loadgen(args);
    assert_eq!(c, code, "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("loadgen: error: "), "{err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
}

#[test]
fn malformed_target() {
    assert_one_line_error(&["--target", "127.0.0.1"], 2, "IP:PORT");
    assert_one_line_error(&["--target", "127.0.0.1:0"], 2, "port 0");
    assert_one_line_error(&["--target", "no such host:80"], 2, "--target");
}

#[test]
fn unreachable_target() {
    let dead = common::dead_port().to_string();
    assert_one_line_error(
        &["--target", &dead, "--connections", "5", "--quiet"],
        1,
        "is anything listening",
    );
}

#[test]
fn rate_zero() {
    assert_one_line_error(
        &["--target", "127.0.0.1:9", "--mode", "rate", "--rate", "0"],
        2,
        "--rate 0",
    );
}

#[test]
fn reversed_sources() {
    assert_one_line_error(
        &[
            "--target",
            "127.0.0.1:9",
            "--sources",
            "127.0.0.9-127.0.0.2",
        ],
        2,
        "reversed",
    );
}

#[test]
fn more_connections_than_ports() {
    assert_one_line_error(
        &[
            "--target",
            "127.0.0.1:9",
            "--mode",
            "burst",
            "--connections",
            "1000000",
            "--sources",
            "127.0.0.2-127.0.0.3",
        ],
        2,
        "local ports",
    );
}

#[test]
fn unknown_flag_and_bad_duration() {
    assert_one_line_error(&["--target", "127.0.0.1:9", "--bogus"], 2, "--bogus");
    assert_one_line_error(&["--target", "127.0.0.1:9", "--duration", "ten"], 2, "ten");
}

#[test]
fn json_is_the_last_stdout_line() {
    let server = common::AcceptLoop::start();
    let (c, out, err) = loadgen(&[
        "--target",
        &server.addr.to_string(),
        "--connections",
        "20",
        "--json",
    ]);
    assert_eq!(c, 0, "{err}");
    let last = out.lines().last().expect("output");
    let r: loadgen::Report = serde_json::from_str(last).expect("json");
    assert_eq!(r.established, 20);
    assert!(r.counts_add_up());
}

#[test]
fn ring_options_need_io_uring() {
    assert_one_line_error(
        &[
            "--target",
            "127.0.0.1:9",
            "--socket-ops",
            "ring",
            "--method",
            "epoll",
        ],
        2,
        "use --method uring",
    );
    assert_one_line_error(
        &[
            "--target",
            "127.0.0.1:9",
            "--ring-setup",
            "defer",
            "--method",
            "blocking",
        ],
        2,
        "use --method uring",
    );
    assert_one_line_error(
        &["--target", "127.0.0.1:9", "--ring-setup", "fast"],
        2,
        "default, coop, defer",
    );
}

#[test]
fn a_burst_that_waits_for_the_server_cannot_also_close_early() {
    assert_one_line_error(
        &[
            "--target",
            "127.0.0.1:9",
            "--mode",
            "burst",
            "--connections",
            "4",
            "--wait-close",
            "--close-early",
        ],
        2,
        "--close-early resets each round's connections, --wait-close waits",
    );
}
