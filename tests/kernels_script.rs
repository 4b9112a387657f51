//! The parts of scripts/kernels/ that need no emulator, network or root: choosing a
//! Debian cloud kernel package from `apt-cache` output in both packagings, finding the
//! image in an unpacked package in both layouts, and the private apt configuration.
//! Each test runs a function of scripts/kernels/lib.sh with bash on fixture text or a
//! fixture tree in a directory of its own under the system temp dir.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn lib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kernels/lib.sh")
}

/// Runs `. lib.sh; <script>` with `stdin`; returns (success, stdout).
fn bash(script: &str, stdin: &str) -> (bool, String) {
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(". \"$1\"; {script}"))
        .arg("bash")
        .arg(lib())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bash runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("bash ends");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
    )
}

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("acceptbench-kernels-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `apt-cache search --names-only -- -cloud-amd64` as the private configuration saw
/// it (bullseye, bookworm, trixie-backports, sid), abridged and shuffled.
const APT_CACHE: &str = "\
linux-image-6.12.117+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
linux-image-5.10.0-46-cloud-amd64-unsigned - Linux 5.10 for x86-64 cloud
linux-image-5.10.0-9-cloud-amd64-unsigned - Linux 5.10 for x86-64 cloud
linux-image-7.3.4+deb13-cloud-amd64 - Linux 7.3 for x86-64 cloud (meta-package)
linux-binary-unsigned-7.3.4+deb13-cloud-amd64 - Linux 7.3 for x86-64 cloud
linux-binary-7.3.4+deb13-cloud-amd64 - Linux 7.3 for x86-64 cloud (signed)
linux-binary-unsigned-7.2.13+deb14-cloud-amd64 - Linux 7.2 for x86-64 cloud
linux-binary-unsigned-7.2.9+deb13-cloud-amd64 - Linux 7.2 for x86-64 cloud
linux-image-6.1.0-0.deb11.52-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-56-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-9-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.12.9+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
linux-image-6.1.0-56-cloud-amd64-unsigned-dbg - debug symbols
linux-image-cloud-amd64 - Linux for x86-64 cloud (meta-package)
linux-headers-6.1.0-56-cloud-amd64 - Header files
";

#[test]
fn picks_the_newest_package_of_a_series_in_both_packagings() {
    let pick = |series: &str| bash(&format!("kernels_pick_package '{series}'"), APT_CACHE).1;
    assert_eq!(pick("5.10"), "linux-image-5.10.0-46-cloud-amd64-unsigned");
    // 6.1 is not 6.12, and Debian 12's 6.1.0-56 is newer than bullseye's 6.1.0-0.deb11.52.
    assert_eq!(pick("6.1"), "linux-image-6.1.0-56-cloud-amd64-unsigned");
    assert_eq!(
        pick("6.12"),
        "linux-image-6.12.117+deb12-cloud-amd64-unsigned"
    );
    // The new packaging: the unsigned binary package, not the signed one or the metapackage.
    assert_eq!(pick("7"), "linux-binary-unsigned-7.3.4+deb13-cloud-amd64");
    assert_eq!(
        pick("7.2"),
        "linux-binary-unsigned-7.2.13+deb14-cloud-amd64"
    );
    assert_eq!(
        pick("newest"),
        "linux-binary-unsigned-7.3.4+deb13-cloud-amd64"
    );
    assert_eq!(pick("4.19"), "");
    // An exact name is taken as it is.
    assert_eq!(
        pick("linux-image-6.1.0-9-cloud-amd64-unsigned"),
        "linux-image-6.1.0-9-cloud-amd64-unsigned"
    );
}

#[test]
fn candidates_come_newest_first_for_falling_back() {
    let (ok, out) = bash("kernels_candidates 5.10", APT_CACHE);
    assert!(ok);
    assert_eq!(
        out,
        "linux-image-5.10.0-46-cloud-amd64-unsigned\nlinux-image-5.10.0-9-cloud-amd64-unsigned"
    );
    let (_, out) = bash("kernels_candidates 7", APT_CACHE);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(
        bash(
            "kernels_version_of linux-binary-unsigned-7.3.4+deb13-cloud-amd64",
            ""
        )
        .1,
        "7.3.4+deb13"
    );
    assert_eq!(
        bash(
            "kernels_version_of linux-image-5.10.0-46-cloud-amd64-unsigned",
            ""
        )
        .1,
        "5.10.0-46"
    );
    assert!(!bash("kernels_version_of linux-image-cloud-amd64", "").0);
}

#[test]
fn finds_the_image_in_both_layouts() {
    let t = TempDir::new("image");
    let old = t.0.join("old");
    fs::create_dir_all(old.join("boot")).unwrap();
    fs::create_dir_all(old.join("usr/lib/modules/5.10.0-46-cloud-amd64/kernel")).unwrap();
    fs::write(old.join("boot/vmlinuz-5.10.0-46-cloud-amd64"), b"MZ").unwrap();
    fs::write(old.join("boot/config-5.10.0-46-cloud-amd64"), b"#").unwrap();
    let new = t.0.join("new");
    let modules = new.join("usr/lib/modules/7.3.4+deb13-cloud-amd64");
    fs::create_dir_all(&modules).unwrap();
    fs::write(modules.join("vmlinuz.unsigned"), b"MZ").unwrap();
    fs::write(modules.join("modules.order"), b"").unwrap();
    let empty = t.0.join("metapackage");
    fs::create_dir_all(empty.join("usr/share/doc/linux-image-7.3.4+deb13-cloud-amd64")).unwrap();

    let find = |d: &Path| bash(&format!("kernels_find_image '{}'", d.display()), "");
    assert_eq!(
        find(&old),
        (
            true,
            format!("{}/boot/vmlinuz-5.10.0-46-cloud-amd64", old.display())
        )
    );
    assert_eq!(
        find(&new),
        (true, format!("{}/vmlinuz.unsigned", modules.display()))
    );
    assert_eq!(find(&empty), (false, String::new()));
}

#[test]
fn private_apt_configuration_stays_in_its_directory() {
    let t = TempDir::new("apt");
    let dir = t.0.join("apt");
    let (ok, conf) = bash(&format!("kernels_write_apt_config '{}'", dir.display()), "");
    assert!(ok);
    assert_eq!(conf, format!("{}/apt.conf", dir.display()));
    let text = fs::read_to_string(&conf).unwrap();
    let d = dir.display().to_string();
    for line in [
        format!("Dir::State \"{d}\";"),
        format!("Dir::State::Lists \"{d}/lists\";"),
        format!("Dir::State::status \"{d}/status\";"),
        format!("Dir::Cache \"{d}\";"),
        format!("Dir::Cache::archives \"{d}/archives\";"),
        format!("Dir::Etc::sourcelist \"{d}/sources.list\";"),
        format!("Dir::Etc::sourceparts \"{d}/sources.list.d\";"),
        format!("Dir::Etc::preferencesparts \"{d}/preferences.d\";"),
    ] {
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    // Nothing of the host's apt state is named.
    assert!(!text.contains("/etc/apt"), "{text}");
    assert!(!text.contains("/var/lib/apt"), "{text}");
    for sub in [
        "lists/partial",
        "archives/partial",
        "sources.list.d",
        "preferences.d",
    ] {
        assert!(dir.join(sub).is_dir(), "{sub}");
    }
    assert_eq!(fs::read(dir.join("status")).unwrap(), b"");

    let sources = fs::read_to_string(dir.join("sources.list")).unwrap();
    assert_eq!(sources.lines().count(), 6, "{sources}");
    for suite in ["bullseye", "bookworm", "trixie-backports", "sid"] {
        assert!(
            sources
                .lines()
                .any(|l| l.starts_with("deb [arch=amd64 signed-by=")
                    && l.contains(&format!(" {suite} main"))),
            "{suite} missing from\n{sources}"
        );
    }

    // Other suites through KERNELS_SUITES; the config can be rewritten in place.
    let (ok, _) = bash(
        &format!(
            "KERNELS_SUITES='http://example.invalid/debian forky' kernels_write_apt_config '{}' >/dev/null",
            dir.display()
        ),
        "",
    );
    assert!(ok);
    assert_eq!(
        fs::read_to_string(dir.join("sources.list")).unwrap(),
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://example.invalid/debian forky main\n"
    );
}

/// A run directory as a guest leaves it, cut down to what report.py reads.
fn fixture_run(dir: &Path, release: &str, probe_io_uring: &str, engines: &str, summary: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("meta.json"),
        format!(
            r#"{{"kernel_release": "{release}", "virtualised": "tcg", "command": ["acceptbench", "sweep"],
               "sysctls": {{"net.core.somaxconn": "4096", "net.ipv4.tcp_max_syn_backlog": "128"}}}}"#
        ),
    )
    .unwrap();
    fs::write(
        dir.join("probe.json"),
        format!(r#"{{"io_uring": {probe_io_uring}, "engines": [{engines}]}}"#),
    )
    .unwrap();
    fs::write(dir.join("summary.csv"), summary).unwrap();
}

#[test]
fn report_matrix_and_behaviour_from_fixture_runs() {
    if Command::new("python3").arg("-V").output().is_err() {
        common::testskip::skip(
            common::testskip::Lack::Program,
            "python3 is not installed (scripts/kernels/report.py needs it)",
        );
        return;
    }
    let t = TempDir::new("report");
    let old = r#"{"accept": true, "accept_multishot": false, "ext_arg": true}"#;
    let new = r#"{"accept": true, "accept_multishot": true, "ext_arg": true, "uring_cmd_sockopt": true,
                  "direct_descriptors": true, "coop_taskrun": true, "defer_taskrun": true, "socket_op": true}"#;
    let std_ok = r#"{"name": "std", "supported": true, "reason": ""}"#;
    let ms_no = r#"{"name": "multishot", "supported": false, "reason": "needs Linux 5.19 (multishot accept); this kernel is 5.10"}"#;
    let ms_ok = r#"{"name": "multishot", "supported": true, "reason": ""}"#;
    let burst = "engine,backlog,mode,status,attempted,accepted,unmatched_client,queue_max,listen_overflows_paused,syn_retry_modes,tcp_syncookies,tcp_abort_on_overflow,reset,pending,timeout,overflow_outcome\n\
                 std,16,burst,ok,200,69,131,17,183,1.0s:183,1,0,0,0,0,syn-dropped+ack-dropped\n";
    let nocookies = "engine,backlog,mode,status,attempted,accepted,unmatched_client,queue_max,listen_overflows_paused,syn_retry_modes,tcp_syncookies,tcp_abort_on_overflow,reset,pending,timeout,overflow_outcome\n\
                     std,16,burst,ok,200,153,0,17,183,1.0s:51;3.0s:51;7.0s:17,0,0,0,47,0,syn-dropped\n";
    let runs = [t.0.join("a-5.10"), t.0.join("b-5.10"), t.0.join("c-6.12")];
    fixture_run(
        &runs[0],
        "5.10.0-43-cloud-amd64",
        old,
        &format!("{std_ok}, {ms_no}"),
        burst,
    );
    fixture_run(
        &runs[1],
        "5.10.0-43-cloud-amd64",
        old,
        &format!("{std_ok}, {ms_no}"),
        nocookies,
    );
    fixture_run(
        &runs[2],
        "6.12.117+deb12-cloud-amd64",
        new,
        &format!("{std_ok}, {ms_ok}"),
        burst,
    );
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kernels/report.py"))
        .args(&runs)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8_lossy(&out.stdout);
    // Capability matrix: one row per kernel, the refusal's reason as a footnote.
    assert!(
        md.contains("| 5.10.0-43-cloud-amd64 (TCG) | yes | — | no [1] |"),
        "{md}"
    );
    assert!(
        md.contains("[1] needs Linux 5.19 (multishot accept)"),
        "{md}"
    );
    assert!(
        md.contains("| 6.12.117+deb12-cloud-amd64 (TCG) | yes | — | yes |"),
        "{md}"
    );
    // A feature found below the version the code names is called out.
    assert!(
        md.contains("EXT_ARG (needs 5.11): **present before 5.11** on 5.10.0-43-cloud-amd64"),
        "{md}"
    );
    assert!(md.contains("multishot accept (needs 5.19): holds"), "{md}");
    // Behaviour: both bursts of 5.10 land in one row, the syncookies=0 one in its column.
    let row = md
        .lines()
        .find(|l| l.starts_with("| 5.10.0-43-cloud-amd64 (TCG) | 4096 | 128 | 16 | 17 / 17 |"))
        .unwrap_or_else(|| panic!("no behaviour row for 5.10 in\n{md}"));
    assert!(row.contains("183 in all 2 runs (expected 183)"), "{row}");
    assert!(
        row.contains("| 131 | 1.0s:183 | 1.0s:51;3.0s:51;7.0s:17<br>(153/0/0/47) |"),
        "{row}"
    );
}
