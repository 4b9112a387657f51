//! Helpers several integration tests share: a seccomp filter that makes chosen system
//! calls fail (to stand in for a kernel, container or LSM that refuses them), and
//! finding a sweep's loadgen children.
#![allow(dead_code)]

/// A seccomp filter that makes chosen system calls fail, built before it is installed
/// (so that installing it in a forked child allocates nothing). x86_64 only; other
/// architectures are let through unfiltered.
pub struct Deny(Vec<libc::sock_filter>);

impl Deny {
    /// Makes the system calls `nrs` fail with `errno`.
    pub fn syscalls(nrs: &[u32], errno: i32) -> Deny {
        const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
        let stmt = |code: u16, k: u32| libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        let jeq = |k: u32, jt: u8| libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt,
            jf: 0,
            k,
        };
        let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
        let ret = (libc::BPF_RET | libc::BPF_K) as u16;
        let mut f = vec![
            stmt(ld, 4), // seccomp_data.arch
            jeq(AUDIT_ARCH_X86_64, 1),
            stmt(ret, libc::SECCOMP_RET_ALLOW),
            stmt(ld, 0), // seccomp_data.nr
        ];
        let n = nrs.len();
        // A match jumps over the remaining checks and the "allow" to the "deny".
        f.extend(
            nrs.iter()
                .enumerate()
                .map(|(i, &nr)| jeq(nr, (n - i) as u8)),
        );
        f.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
        f.push(stmt(ret, libc::SECCOMP_RET_ERRNO | errno as u32));
        Deny(f)
    }

    /// Installs the filter on the calling thread only (no TSYNC) — or, called from
    /// `pre_exec`, on the child process. Only prctl calls: fine after fork.
    pub fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.0.len() as u16,
            filter: self.0.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prctl reads `prog` and the filter, both alive during the calls.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// PIDs of the running `acceptbench loadgen` children of process `parent`.
pub fn loadgen_children(parent: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{parent}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmd.split(|&b| b == 0).any(|a| a == b"loadgen") {
                out.push(pid);
            }
        }
    }
    out
}

/// Runs `acceptbench sweep ARGS --out <a fresh temporary directory named by `name`>`,
/// asserts it succeeded, and returns the run directory it made (remove it with
/// [`remove_run`]).
pub fn sweep_into(name: &str, args: &[&str]) -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!("acceptbench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = std::process::Command::new(assert_cmd::cargo::cargo_bin("acceptbench"))
        .arg("sweep")
        .args(args)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "{args:?}: {status}");
    run_dir(&out)
}

/// The one run directory a sweep made in `out`.
pub fn run_dir(out: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .next()
        .expect("a run directory")
        .unwrap()
        .path()
}

/// Removes what [`sweep_into`] made.
pub fn remove_run(dir: &std::path::Path) {
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir_all(parent);
    }
}

/// True when running as root (network namespaces and sysctls need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns from the calling test, saying why, unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !support::is_root() {
            common::testskip::skip(
                common::testskip::Lack::Root,
                "needs root for a private network namespace (unshare CLONE_NEWNET)",
            );
            return;
        }
    };
}
