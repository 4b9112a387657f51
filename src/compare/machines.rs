//! The machines behind compared runs: their cost profiles side by side (meta.json
//! `machine`), the figures that differ most, and per cell whether an engine's ratio to
//! std moved beyond both runs' intervals (cells.csv) — so a reversed verdict between
//! two machines comes with the reason it may have (a system call three times dearer).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Run;
use crate::kernel::costs::{Costs, Profile};
use crate::report::cells::{CellKey, CellRow};

/// What the machines say, ready to print.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machines {
    /// Per run (in order): its label and its profile, absent for runs made before
    /// profiles were recorded.
    pub profiles: Vec<(String, Option<Profile>)>,
    /// Per later run: the cost figures that differ most from the reference's, largest
    /// first (`null system call 3.4×`).
    pub differ_most: Vec<(String, Vec<String>)>,
    /// Cells whose ratio to std moved beyond both runs' intervals:
    /// `drain b4096 uring-linked: 0.55 [0.52–0.58] → 1.01 [0.97–1.05] (run label)`.
    pub moved: Vec<String>,
    /// Cells compared (both runs have a ratio interval).
    pub compared: usize,
}

/// The cost figures of a profile, by name.
fn figures(c: &Costs) -> [(&'static str, Option<f64>); 3] {
    [
        ("null system call", c.null_syscall_ns),
        ("io_uring NOP enter", c.uring_nop_enter_ns),
        ("context switch", c.context_switch_ns),
    ]
}

/// Compares the machines of `runs` (the first is the reference).
pub fn of(runs: &[Run]) -> Machines {
    let profiles: Vec<(String, Option<Profile>)> = runs
        .iter()
        .map(|r| (r.label.clone(), r.meta.machine.clone()))
        .collect();
    let mut differ_most = Vec::new();
    if let Some((_, Some(reference))) = profiles.first() {
        for (label, p) in profiles.iter().skip(1) {
            let Some(p) = p else { continue };
            let mut d: Vec<(f64, String)> = figures(&reference.start)
                .iter()
                .zip(figures(&p.start))
                .filter_map(|((name, a), (_, b))| {
                    let (a, b) = ((*a)?, b?);
                    (a > 0.0 && b > 0.0)
                        .then(|| ((b / a).ln().abs(), format!("{name} {:.2}×", b / a)))
                })
                .collect();
            d.sort_by(|x, y| y.0.total_cmp(&x.0));
            differ_most.push((label.clone(), d.into_iter().map(|(_, s)| s).collect()));
        }
    }
    let (moved, compared) = moved_ratios(runs);
    Machines {
        profiles,
        differ_most,
        moved,
        compared,
    }
}

/// Cells whose accepts/s ratio to std has non-overlapping ≥ 95% intervals in the
/// reference run and a later one.
fn moved_ratios(runs: &[Run]) -> (Vec<String>, usize) {
    let cells: Vec<BTreeMap<CellKey, CellRow>> = runs
        .iter()
        .map(|r| {
            crate::report::cells::read(&r.dir.join("cells.csv"))
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.key(), c))
                .collect()
        })
        .collect();
    let interval = |c: &CellRow| match (
        c.ratio_accepts_vs_std,
        c.ratio_accepts_vs_std_lo,
        c.ratio_accepts_vs_std_hi,
    ) {
        // Only intervals of ≥ 95% coverage (6 rounds or more) can say a ratio moved.
        (Some(m), Some(lo), Some(hi))
            if c.engine != "std"
                && c.ratio_ci_level
                    .is_some_and(|l| l >= crate::stats::LEVEL - 1e-9) =>
        {
            Some((m, lo, hi))
        }
        _ => None,
    };
    let (mut moved, mut compared) = (Vec::new(), 0);
    let Some(reference) = cells.first() else {
        return (moved, compared);
    };
    for (k, rc) in reference {
        let Some((m0, lo0, hi0)) = interval(rc) else {
            continue;
        };
        for (run, other) in runs.iter().zip(&cells).skip(1) {
            let Some((m1, lo1, hi1)) = other.get(k).and_then(interval) else {
                continue;
            };
            compared += 1;
            if hi0 < lo1 || hi1 < lo0 {
                let series = crate::report::series(
                    &rc.engine,
                    rc.inflight,
                    &rc.accept_flags,
                    &rc.peer_op,
                    rc.acceptors,
                    &rc.sharing,
                );
                moved.push(format!(
                    "{} b{} {series}: {m0:.2} [{lo0:.2}–{hi0:.2}] → {m1:.2} [{lo1:.2}–{hi1:.2}] ({})",
                    rc.mode, rc.backlog, run.label
                ));
            }
        }
    }
    (moved, compared)
}

impl Machines {
    /// The machines section: one line per run, then what differs and what moved.
    pub fn text(&self, bullet: &str) -> String {
        let mut s = String::from(
            "Machines (meta.json machine: costs on the acceptor's CPU, start → end):\n",
        );
        for (label, p) in &self.profiles {
            match p {
                Some(p) => {
                    let _ = writeln!(s, "{bullet}{label}: {}", p.describe());
                }
                None => {
                    let _ = writeln!(
                        s,
                        "{bullet}{label}: profile missing (a run made before acceptbench recorded the machine's costs)"
                    );
                }
            }
        }
        for (label, d) in &self.differ_most {
            if !d.is_empty() {
                let _ = writeln!(s, "{bullet}{label} against the reference: {}", d.join(", "));
            }
        }
        if self.compared > 0 {
            let _ = writeln!(
                s,
                "{bullet}ratios to std (accepts/s) that moved beyond both runs' intervals: {} of {} cells{}",
                self.moved.len(),
                self.compared,
                if self.moved.is_empty() { "" } else { ":" }
            );
            for m in &self.moved {
                let _ = writeln!(s, "{bullet}  {m}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_cost_difference_comes_first() {
        let costs = |sys: f64, nop: f64| Costs {
            null_syscall_ns: Some(sys),
            uring_nop_enter_ns: Some(nop),
            context_switch_ns: None,
            ..Default::default()
        };
        let run = |label: &str, c: Option<Costs>| Run {
            dir: std::path::PathBuf::from("/nonexistent"),
            meta: crate::report::meta::Meta {
                machine: c.map(|c| Profile {
                    start: c,
                    ..Default::default()
                }),
                ..crate::report::meta::Meta::collect("x", Default::default(), (0, vec![]))
            },
            rows: Vec::new(),
            columns: Vec::new(),
            label: label.into(),
        };
        let m = of(&[
            run("a", Some(costs(600.0, 900.0))),
            run("b", Some(costs(150.0, 800.0))),
            run("old", None),
        ]);
        assert_eq!(
            m.differ_most,
            [(
                "b".to_string(),
                vec![
                    "null system call 0.25×".to_string(),
                    "io_uring NOP enter 0.89×".to_string()
                ]
            )]
        );
        let text = m.text("");
        assert!(text.contains("old: profile missing"), "{text}");
        assert_eq!(m.compared, 0);
    }
}
