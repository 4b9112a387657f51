//! Loading run directories (`meta.json` + `summary.csv`) and labelling them by
//! kernel release. Shared by `compare` and `plot`; it reads files, never measures.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::report::meta::Meta;
use crate::report::row::SummaryRow;

/// One loaded run directory.
#[derive(Debug, Clone)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// Its meta.json.
    pub meta: Meta,
    /// Its summary.csv rows, in file order.
    pub rows: Vec<SummaryRow>,
    /// The columns its summary.csv has (older formats lack some: those are absent, not zero).
    pub columns: Vec<String>,
    /// Column label: the kernel release, with the directory name when two runs share one.
    pub label: String,
}

impl Run {
    /// The directory's last component (the run id), for messages and labels.
    pub fn name(&self) -> String {
        dir_name(&self.dir)
    }
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// Loads `dir/meta.json` and `dir/summary.csv`; errors name the file (and line).
pub fn load_run(dir: &Path) -> anyhow::Result<Run> {
    let hint = || {
        format!(
            "{} is not a readable acceptbench run: a run directory holds meta.json and summary.csv \
             as written by `acceptbench sweep` (give results/<run-id>)",
            dir.display()
        )
    };
    if !dir.is_dir() {
        anyhow::bail!("{}: no such directory; {}", dir.display(), hint());
    }
    let meta = Meta::read(&dir.join("meta.json")).with_context(hint)?;
    let (mut rows, columns) =
        crate::report::csv::read_with_columns(&dir.join("summary.csv")).with_context(hint)?;
    // Runs with several acceptors or SO_REUSEPORT listeners are their own series
    // (`multishot.a2.reuseport`), in comparisons, charts and file names alike.
    for r in &mut rows {
        r.engine = crate::report::series(
            &r.engine,
            r.inflight,
            &r.accept_flags,
            &r.peer_op,
            r.acceptors,
            &r.sharing,
        );
    }
    let mut columns = columns;
    if meta.format_version < 3 {
        older_end_point(meta.format_version, &mut rows, &mut columns);
    }
    let label = meta.kernel_release.clone();
    Ok(Run {
        dir: dir.to_path_buf(),
        meta,
        rows,
        columns,
        label,
    })
}

/// Results format 2 timed every window to the last peer *held*, not to the last close,
/// and called that rate `accepts_per_s`: it is what format 3 calls `peers_held_per_s`,
/// and is read as that. Format 1 timed from the first completion the application saw:
/// neither. Either way their `accepts_per_s` (and its ratio) is not format 3's and is
/// left absent, never compared with it.
fn older_end_point(version: u32, rows: &mut [SummaryRow], columns: &mut Vec<String>) {
    for r in rows.iter_mut() {
        if version == 2 {
            r.peers_held_per_s = r.accepts_per_s;
        }
        r.accepts_per_s = 0.0;
        r.ratio_accepts_vs_std = None;
    }
    columns.retain(|c| c != "accepts_per_s" && c != "ratio_accepts_vs_std");
    if version == 2 && !columns.iter().any(|c| c == "peers_held_per_s") {
        columns.push("peers_held_per_s".into());
    }
}

/// Loads every directory and makes the labels unique (kernel release, then
/// `release (run-id)` for releases that occur more than once).
pub fn load_runs(dirs: &[PathBuf]) -> anyhow::Result<Vec<Run>> {
    let mut runs = dirs
        .iter()
        .map(|d| load_run(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    label_runs(&mut runs);
    Ok(runs)
}

/// Sets unique labels on already-loaded runs.
pub fn label_runs(runs: &mut [Run]) {
    let releases: Vec<String> = runs.iter().map(|r| r.meta.kernel_release.clone()).collect();
    for (i, run) in runs.iter_mut().enumerate() {
        let release = &releases[i];
        let label = if release.is_empty() {
            "unknown kernel"
        } else {
            release
        };
        let shared = releases.iter().filter(|r| *r == release).count() > 1;
        run.label = if shared {
            format!("{label} ({})", run.name())
        } else {
            label.to_string()
        };
    }
    // Two runs in same-named directories under different parents: number them.
    for i in 0..runs.len() {
        let dup = runs[..i].iter().any(|r| r.label == runs[i].label);
        if dup {
            runs[i].label = format!("{} #{}", runs[i].label, i + 1);
        }
    }
}
