//! How a test that cannot run here says so: a skip is counted and shown, never passed
//! off as a pass. libtest has no runtime "skipped" outcome, so [`skip`] prints the
//! reason and appends it to a file in `$ACCEPTBENCH_SKIP_DIR` (set by `scripts/test`,
//! which counts those files and prints `N passed, N failed, N skipped` with the list).
//! Under CI (`CI=true`) a skip for something CI provides — root, a program `.ci/run`
//! installs — fails the test instead: CI is meant to run it.
//!
//! Test support only; nothing outside tests calls it.

use std::io::Write;

/// What the test lacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lack {
    /// Root (network namespaces, sysctls, sshd). CI runs as root.
    Root,
    /// A program `.ci/run` installs (ss, ip, sshd, ssh, nginx, python3).
    Program,
    /// A kernel feature this kernel does not have (an io_uring opcode, tracefs).
    Kernel,
    /// Something of this host that CI does not set up (an IPv6 loopback, a second CPU).
    Host,
}

impl Lack {
    /// Whether CI provides it (a skip for it is then a failure under `CI=true`).
    pub fn ci_provides(self) -> bool {
        matches!(self, Lack::Root | Lack::Program)
    }
}

/// The whole calling test cannot run here: say why, record it, and let the caller
/// return. Panics under `CI=true` when CI should have provided what is missing.
pub fn skip(lack: Lack, why: &str) {
    note("test", lack, why);
}

/// One case of the calling test cannot run here (an engine this kernel lacks, an IPv6
/// listener); the rest of the test runs. Recorded and shown like [`skip`].
pub fn skip_part(lack: Lack, why: &str) {
    note("part", lack, why);
}

fn note(what: &str, lack: Lack, why: &str) {
    let thread = std::thread::current();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let dir = std::env::var_os("ACCEPTBENCH_SKIP_DIR").map(std::path::PathBuf::from);
    let place = Place {
        binary: test_binary_name(&binary),
        test: thread.name().unwrap_or("?"),
    };
    record(&place, what, lack, why, ci, dir.as_deref());
}

/// Which test skipped: its test binary and its name.
struct Place<'a> {
    binary: &'a str,
    test: &'a str,
}

/// `engines-0123abcd` → `engines`: cargo's test binaries end in a hash.
fn test_binary_name(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    }
}

fn record(
    place: &Place,
    what: &str,
    lack: Lack,
    why: &str,
    ci: bool,
    dir: Option<&std::path::Path>,
) {
    let line = format!("{what} {}::{}: {why}", place.binary, place.test);
    if ci && lack.ci_provides() {
        panic!("CI is meant to run this, but it was skipped: {why}");
    }
    eprintln!("SKIPPED {line}");
    if let Some(dir) = dir {
        let name = format!("{}__{}.txt", place.binary, place.test.replace("::", "__"));
        let file = dir.join(name);
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .and_then(|mut f| writeln!(f, "{line}"))
        });
        if let Err(e) = written {
            panic!("cannot record the skip in {}: {e}", file.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACE: Place = Place {
        binary: "ring",
        test: "direct::fills",
    };

    #[test]
    fn a_skip_is_written_where_scripts_test_counts_it() {
        let dir = std::env::temp_dir().join(format!("testskip-{}", std::process::id()));
        record(
            &PLACE,
            "test",
            Lack::Kernel,
            "no uring_cmd",
            false,
            Some(&dir),
        );
        record(&PLACE, "part", Lack::Host, "no IPv6", true, Some(&dir));
        let text = std::fs::read_to_string(dir.join("ring__direct__fills.txt")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            text,
            "test ring::direct::fills: no uring_cmd\npart ring::direct::fills: no IPv6\n"
        );
        assert_eq!(test_binary_name("engines-0123456789abcdef"), "engines");
        assert_eq!(test_binary_name("ssh-bed"), "ssh-bed");
    }

    #[test]
    #[should_panic(expected = "CI is meant to run this")]
    fn in_ci_a_skip_for_root_fails() {
        record(&PLACE, "test", Lack::Root, "not root", true, None);
    }

    #[test]
    #[should_panic(expected = "CI is meant to run this")]
    fn in_ci_a_skip_for_an_installed_program_fails() {
        record(&PLACE, "part", Lack::Program, "no sshd", true, None);
    }
}
