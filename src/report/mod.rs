//! Result files: the run directory, summary.csv rows, .hgrm distributions,
//! meta.json and the run's README. Reporters read plain data; they never measure.

pub mod cells;
pub mod csv;
pub mod hgrm;
pub mod meta;
pub mod readme;
pub mod row;

use std::io;
use std::path::{Path, PathBuf};

/// A results directory `<out>/<UTC date-time>-<kernel release>-<host>/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
}

impl RunDir {
    /// Creates a new run directory (and its `hgrm/`) under `out`.
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
        let path = out.join(name);
        std::fs::create_dir_all(path.join("hgrm")).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create the results directory {}: {e} (choose a writable place with --out DIR)",
                    path.display()
                ),
            )
        })?;
        Ok(RunDir { path })
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
        let dir = self.path.join("queue");
        std::fs::create_dir_all(&dir)?;
        let rep = if rep > 1 {
            format!("-r{rep}")
        } else {
            String::new()
        };
        Ok(dir.join(format!("{engine}-b{backlog}-{mode}{rep}.csv")))
    }
    /// `hgrm/<engine>-b<backlog>-<mode>[-r<rep>]-<metric>.hgrm`.
    pub fn hgrm(&self, engine: &str, backlog: u32, mode: &str, rep: u32, metric: &str) -> PathBuf {
        let rep = if rep > 1 {
            format!("-r{rep}")
        } else {
            String::new()
        };
        self.path
            .join("hgrm")
            .join(format!("{engine}-b{backlog}-{mode}{rep}-{metric}.hgrm"))
    }
}
