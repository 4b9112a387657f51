//! Result files: the run directory, summary.csv rows, .hgrm distributions,
//! meta.json and the run's README. Reporters read plain data; they never measure.

pub mod cells;
pub mod csv;
pub mod hgrm;
pub mod meta;
pub mod per_acceptor;
pub mod readme;
pub mod row;
pub mod stall;
pub mod table;
pub mod verdict;

use std::io;
use std::path::{Path, PathBuf};

/// A results directory `<out>/<UTC date-time>-<kernel release>-<host>/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a
/// rename, so a crash or a full disk never leaves a truncated file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(with_path)
}

impl RunDir {
    /// Creates a new run directory (and its `hgrm/`) under `out`. The directory is
    /// created exclusively: when another sweep took the same name in the same second,
    /// this one gets a suffix (`-2`, `-3`, …) instead of sharing its files.
    pub fn create(out: &Path, kernel_release: &str, host: &str) -> io::Result<RunDir> {
        let stamp = meta::now_utc().replace([':', '-'], "");
        let clean = |s: &str| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        };
        let name = format!("{stamp}-{}-{}", clean(kernel_release), clean(host));
        let cannot = |path: &Path, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create the results directory {}: {e} (choose a writable place with --out DIR)",
                    path.display()
                ),
            )
        };
        std::fs::create_dir_all(out).map_err(|e| cannot(out, e))?;
        for n in 1..1000 {
            let path = if n == 1 {
                out.join(&name)
            } else {
                out.join(format!("{name}-{n}"))
            };
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    std::fs::create_dir(path.join("hgrm")).map_err(|e| cannot(&path, e))?;
                    return Ok(RunDir { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(cannot(&path, e)),
            }
        }
        Err(cannot(
            &out.join(&name),
            io::Error::new(io::ErrorKind::AlreadyExists, "999 runs of that name exist"),
        ))
    }

    /// `summary.csv`.
    pub fn summary_csv(&self) -> PathBuf {
        self.path.join("summary.csv")
    }
    /// `cells.csv`.
    pub fn cells_csv(&self) -> PathBuf {
        self.path.join("cells.csv")
    }
    /// `meta.json`.
    pub fn meta_json(&self) -> PathBuf {
        self.path.join("meta.json")
    }
    /// `README.md`.
    pub fn readme(&self) -> PathBuf {
        self.path.join("README.md")
    }
    /// `queue/<engine>-b<backlog>-<mode>[-r<rep>].csv` (creates `queue/`).
    pub fn queue_csv(
        &self,
        engine: &str,
        backlog: u32,
        mode: &str,
        rep: u32,
    ) -> io::Result<PathBuf> {
        self.run_file("queue", engine, backlog, mode, &rep_suffix(rep), ".csv")
    }
    /// `kernel/<series>-b<backlog>-<mode>[-r<rep>]-split.csv` (creates `kernel/`): a
    /// traced run's latency split, one line per connection.
    pub fn kernel_split_csv(
        &self,
        series: &str,
        backlog: u32,
        mode: &str,
        rep: u32,
    ) -> io::Result<PathBuf> {
        self.run_file(
            "kernel",
            series,
            backlog,
            mode,
            &rep_suffix(rep),
            "-split.csv",
        )
    }
    /// `kernel/<series>-b<backlog>-<mode>-timeline.csv` (creates `kernel/`): the
    /// kernel's per-connection timeline of one traced run per (backlog, mode).
    pub fn kernel_timeline_csv(
        &self,
        series: &str,
        backlog: u32,
        mode: &str,
    ) -> io::Result<PathBuf> {
        self.run_file("kernel", series, backlog, mode, "", "-timeline.csv")
    }
    /// `<dir>/<series>-b<backlog>-<mode><rep><ending>` (creates `<dir>/`): a per-run file.
    fn run_file(
        &self,
        dir: &str,
        series: &str,
        backlog: u32,
        mode: &str,
        rep: &str,
        ending: &str,
    ) -> io::Result<PathBuf> {
        let dir = self.path.join(dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir.join(format!("{series}-b{backlog}-{mode}{rep}{ending}")))
    }
    /// `stall.csv`.
    pub fn stall_csv(&self) -> PathBuf {
        self.path.join("stall.csv")
    }
    /// `hosts/<series>-b<backlog>-<mode>[-r<rep>].csv` (creates `hosts/`): a run's ssh
    /// client hosts, one row each (the columns of `acceptbench join`'s hosts.csv).
    pub fn hosts_csv(
        &self,
        series: &str,
        backlog: u32,
        mode: &str,
        rep: u32,
    ) -> io::Result<PathBuf> {
        self.run_file("hosts", series, backlog, mode, &rep_suffix(rep), ".csv")
    }
    /// `stall/` (created).
    pub fn stall_dir(&self) -> io::Result<PathBuf> {
        let dir = self.path.join("stall");
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
    /// `hgrm/<engine>-b<backlog>-<mode>[-r<rep>]-<metric>.hgrm`.
    pub fn hgrm(&self, engine: &str, backlog: u32, mode: &str, rep: u32, metric: &str) -> PathBuf {
        let rep = rep_suffix(rep);
        self.path
            .join("hgrm")
            .join(format!("{engine}-b{backlog}-{mode}{rep}-{metric}.hgrm"))
    }
}

/// `-r<rep>` for rounds after the first, as every per-run file name carries it.
fn rep_suffix(rep: u32) -> String {
    if rep > 1 {
        format!("-r{rep}")
    } else {
        String::new()
    }
}

/// The mode as a run's file names carry it: the mode, and for a stall run its load and
/// stall (`stall-rate1000-500ms`), so that runs of one (engine, backlog) differing only
/// in those keep files of their own.
pub fn mode_label(r: &row::SummaryRow) -> String {
    match r.stall_ms {
        Some(ms) if r.mode == "stall" => {
            format!("stall-{}-{}ms", r.stall_load.replace(':', ""), ms.round())
        }
        _ => r.mode.clone(),
    }
}

/// The name a run's files and report lines go under: the engine, plus `.q<N>` for
/// `uring` with N accepts in flight, plus its accept flags' suffix (`.pf` poll-first,
/// `.dw` dontwait, `.ne` the nonempty hint; nothing for none or an empty column), plus
/// its peer op's (`.gsn` for uring-linked's in-ring getsockname, nothing for
/// getsockopt or an empty column), plus `.a<N>.<sharing>` when the run had several acceptors or SO_REUSEPORT listeners (so
/// runs that differ only there do not share a name), e.g. `uring.q8`, `uring.q1.ne`,
/// `multishot.a2.reuseport`.
pub fn series(
    engine: &str,
    inflight: Option<u32>,
    accept_flags: &str,
    peer_op: &str,
    acceptors: u32,
    sharing: &str,
) -> String {
    let flags = crate::engine::AcceptFlags::label_of(accept_flags);
    let flags = format!("{flags}{}", crate::engine::PeerOp::label_of(peer_op));
    let engine = match inflight {
        Some(q) => format!("{engine}.q{q}{flags}"),
        None => format!("{engine}{flags}"),
    };
    if acceptors <= 1 && (sharing.is_empty() || sharing == "shared") {
        engine
    } else {
        format!("{engine}.a{acceptors}.{sharing}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_names_depth_accept_flags_and_sharing() {
        assert_eq!(series("uring", Some(8), "", "", 1, "shared"), "uring.q8");
        assert_eq!(
            series("uring", Some(8), "none", "", 1, "shared"),
            "uring.q8"
        );
        assert_eq!(
            series("uring", Some(1), "poll-first", "", 1, ""),
            "uring.q1.pf"
        );
        assert_eq!(
            series("uring", Some(1), "dontwait", "", 1, ""),
            "uring.q1.dw"
        );
        assert_eq!(
            series("uring", Some(1), "nonempty", "", 2, "reuseport"),
            "uring.q1.ne.a2.reuseport"
        );
        assert_eq!(series("std", None, "", "", 1, "shared"), "std");
        let linked = |op| series("uring-linked", None, "", op, 1, "shared");
        assert_eq!(linked("getsockname"), "uring-linked.gsn");
        assert_eq!(linked("getsockopt"), "uring-linked");
        assert_eq!(linked(""), "uring-linked");
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = write_atomic(&dir.path().join("no/such/dir/x"), b"x").unwrap_err();
        assert!(e.to_string().contains("no/such/dir/x"), "{e}");
    }

    #[test]
    fn two_runs_in_the_same_second_get_their_own_directories() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunDir::create(dir.path(), "6.18", "host").unwrap();
        let b = RunDir::create(dir.path(), "6.18", "host").unwrap();
        assert_ne!(a.path, b.path);
        assert!(a.path.join("hgrm").is_dir() && b.path.join("hgrm").is_dir());
    }
}
