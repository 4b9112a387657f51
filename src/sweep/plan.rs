//! The run order of a sweep: `repeat` rounds; in each round every cell (backlog, mode,
//! acceptors, sharing) once, and in each cell every engine once, in an order rotated
//! by one each round, so that drift on a shared machine (a neighbour's load, thermal
//! state) hits every engine and every cell alike, and each engine's ratio to std
//! compares two runs made a fraction of a second apart.

use std::time::Duration;

use crate::acceptors::Sharing;
use crate::config::{Mode, StallLoad, SweepConfig};
use crate::engine::{AcceptFlags, EngineKind, PeerOp};

/// One planned run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Engine (for an external server, unused: see `external`).
    pub engine: EngineKind,
    /// The external server this run measures (`--server NAME=…`), by name.
    pub external: Option<&'static str>,
    /// Single-shot accepts in flight (`uring` only; one variant per `--inflight` value).
    pub inflight: Option<u32>,
    /// How `uring` arms its accepts (`uring` only; one variant per `--accept-flags`
    /// value, inside each in-flight depth).
    pub accept_flags: Option<AcceptFlags>,
    /// How `uring-linked` reads the peer (`uring-linked` only; one variant per
    /// `--peer-op` value, resolved on this kernel: never auto).
    pub peer_op: Option<PeerOp>,
    /// Backlog.
    pub backlog: u32,
    /// Mode.
    pub mode: Mode,
    /// Acceptor threads.
    pub acceptors: u32,
    /// How they share the port.
    pub sharing: Sharing,
    /// Mode stall: how long the acceptor stops and what the clients do.
    pub stall: Option<StallCell>,
    /// Round (repetition), from 1.
    pub round: u32,
    /// Position within the round, from 1.
    pub position: u32,
    /// `--trace kernel`: record the kernel's account of this run.
    pub trace: bool,
    /// The sweep runs every engine both traced and untraced (`--trace off,kernel`):
    /// the traced run is labelled `<engine>+kt`.
    pub trace_paired: bool,
}

impl Planned {
    /// The engine's name in rows and files: the built-in engine's, or the server's.
    pub fn engine_name(&self) -> &'static str {
        self.external.unwrap_or_else(|| self.engine.name())
    }

    /// The engine's label in rows and files: its name, with `+kt` for the traced run
    /// of a sweep that runs each engine both ways (`--trace off,kernel`).
    pub fn label(&self) -> String {
        let kt = if self.trace && self.trace_paired {
            TRACED_SUFFIX
        } else {
            ""
        };
        format!("{}{kt}", self.engine_name())
    }
}

/// The suffix of a traced run's engine label in a `--trace off,kernel` sweep.
pub const TRACED_SUFFIX: &str = "+kt";

/// Mode stall's own plan dimensions: one cell per (stall, load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallCell {
    /// How long the acceptor stops.
    pub duration: Duration,
    /// The clients.
    pub load: StallLoad,
}

/// The sweep's rounds, in run order.
pub fn rounds(cfg: &SweepConfig) -> Vec<Vec<Planned>> {
    let mut out = Vec::new();
    let mut cells = Vec::new();
    for &backlog in &cfg.backlogs {
        for &mode in &cfg.modes {
            for &acceptors in &cfg.acceptors {
                for &sharing in &cfg.sharings {
                    for stall in stall_cells(cfg, mode) {
                        cells.push((backlog, mode, acceptors, sharing, stall));
                    }
                }
            }
        }
    }
    // An external server's stall model takes its μ from its drain runs: in each round
    // the drain cells run before the stall cells (a stable sort keeps the rest).
    if !cfg.servers.is_empty() && cfg.modes.contains(&Mode::Drain) {
        cells.sort_by_key(|c| c.1 == Mode::Stall);
    }
    // Round-major: round r runs every cell once before round r+1 starts, so a cell's
    // runs are spread over the whole sweep and a slow stretch of a shared machine (its
    // speed drifts by ~10% over a minute, CPU per accept included) hits every cell
    // alike instead of the one that happened to run then.
    for round in 1..=cfg.repeat {
        for &(backlog, mode, acceptors, sharing, stall) in &cells {
            let mut engines = variants(cfg);
            if !engines.is_empty() {
                let k = (round as usize - 1) % engines.len();
                engines.rotate_left(k);
            }
            out.push(
                engines
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Planned {
                        engine: v.engine,
                        external: v.external,
                        inflight: v.inflight,
                        accept_flags: v.accept_flags,
                        peer_op: v.peer_op,
                        backlog,
                        mode,
                        acceptors,
                        sharing,
                        stall,
                        round,
                        position: i as u32 + 1,
                        trace: v.trace,
                        trace_paired: cfg.traces.len() > 1,
                    })
                    .collect(),
            );
        }
    }
    out
}

/// The (stall, load) cells of `mode`: every pair for mode stall, none otherwise.
fn stall_cells(cfg: &SweepConfig, mode: Mode) -> Vec<Option<StallCell>> {
    if mode != Mode::Stall {
        return vec![None];
    }
    let s = &cfg.stall;
    s.loads
        .iter()
        .flat_map(|&load| {
            s.stalls
                .iter()
                .map(move |&duration| Some(StallCell { duration, load }))
        })
        .collect()
}

/// One engine variant of a round.
#[derive(Debug, Clone, Copy)]
struct Variant {
    engine: EngineKind,
    inflight: Option<u32>,
    accept_flags: Option<AcceptFlags>,
    peer_op: Option<PeerOp>,
    external: Option<&'static str>,
    /// Traced (`--trace kernel`).
    trace: bool,
}

/// The engine variants of every round (see [`engine_variants`]), each once per
/// `--trace` setting, side by side (`std`, `std+kt`, `uring`, …).
fn variants(cfg: &SweepConfig) -> Vec<Variant> {
    engine_variants(cfg)
        .into_iter()
        .flat_map(|v| cfg.traces.iter().map(move |&trace| Variant { trace, ..v }))
        .collect()
}

/// Each engine once, `uring` once per in-flight depth and accept-flags setting,
/// `uring-linked` once per peer op, then each external server once.
fn engine_variants(cfg: &SweepConfig) -> Vec<Variant> {
    let plain = |engine| Variant {
        engine,
        inflight: None,
        accept_flags: None,
        peer_op: None,
        external: None,
        trace: false,
    };
    cfg.engines
        .iter()
        .flat_map(|&e| match e {
            EngineKind::Uring => cfg
                .inflights
                .iter()
                .flat_map(|&q| {
                    cfg.accept_flags.iter().map(move |&f| Variant {
                        inflight: Some(q),
                        accept_flags: Some(f),
                        ..plain(e)
                    })
                })
                .collect(),
            EngineKind::UringLinked => cfg
                .peer_ops
                .iter()
                .map(|&op| Variant {
                    peer_op: Some(op),
                    ..plain(e)
                })
                .collect(),
            _ => vec![plain(e)],
        })
        .chain(cfg.servers.iter().map(|s| Variant {
            external: Some(s.name),
            ..plain(EngineKind::Std)
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_cells_are_every_load_and_duration_of_mode_stall_only() {
        let cfg = crate::config::tests::sweep_config(&[
            "sweep",
            "--modes",
            "closed,stall",
            "--engines",
            "std",
            "--backlogs",
            "8",
            "--stall",
            "100ms,2s",
            "--stall-load",
            "rate:500,closed:4",
            "--repeat",
            "1",
        ]);
        let runs: Vec<Planned> = rounds(&cfg).into_iter().flatten().collect();
        assert_eq!(runs.len(), 1 + 4);
        assert_eq!(runs[0].stall, None);
        let cells: Vec<(u64, String)> = runs[1..]
            .iter()
            .map(|p| {
                let c = p.stall.unwrap();
                (c.duration.as_millis() as u64, c.load.to_string())
            })
            .collect();
        assert_eq!(
            cells,
            [
                (100, "rate:500".to_string()),
                (2000, "rate:500".into()),
                (100, "closed:4".into()),
                (2000, "closed:4".into())
            ]
        );
    }

    #[test]
    fn every_engine_once_per_round_in_rotated_order() {
        let mut cfg = crate::config::tests::sweep_config(&["sweep"]);
        cfg.engines = vec![EngineKind::Std, EngineKind::Uring, EngineKind::Tokio];
        cfg.backlogs = vec![16, 128];
        cfg.modes = vec![Mode::Drain];
        cfg.repeat = 4;
        let rounds = rounds(&cfg);
        assert_eq!(rounds.len(), 2 * 4);
        // Round-major: round 1 of every cell, then round 2, …
        let order: Vec<(u32, u32)> = rounds.iter().map(|r| (r[0].round, r[0].backlog)).collect();
        assert_eq!(&order[..4], &[(1, 16), (1, 128), (2, 16), (2, 128)]);
        let firsts: Vec<EngineKind> = rounds
            .iter()
            .filter(|r| r[0].backlog == 16)
            .map(|r| r[0].engine)
            .collect();
        assert_eq!(
            firsts,
            [
                EngineKind::Std,
                EngineKind::Uring,
                EngineKind::Tokio,
                EngineKind::Std
            ]
        );
        cfg.inflights = vec![1, 8];
        let with_depths = super::rounds(&cfg);
        assert!(with_depths.iter().all(|r| r.len() == 4));
        let depths: Vec<Option<u32>> = with_depths[0].iter().map(|p| p.inflight).collect();
        assert_eq!(depths, [None, Some(1), Some(8), None]);
        // Accept flags are a dimension inside each depth, for uring only.
        cfg.accept_flags = vec![AcceptFlags::Plain, AcceptFlags::NonEmpty];
        let flagged = super::rounds(&cfg);
        let v: Vec<(Option<u32>, Option<AcceptFlags>)> = flagged[0]
            .iter()
            .map(|p| (p.inflight, p.accept_flags))
            .collect();
        let (pl, ne) = (Some(AcceptFlags::Plain), Some(AcceptFlags::NonEmpty));
        assert_eq!(
            v,
            [
                (None, None),
                (Some(1), pl),
                (Some(1), ne),
                (Some(8), pl),
                (Some(8), ne),
                (None, None)
            ]
        );
        cfg.accept_flags = vec![AcceptFlags::Plain];
        // Peer ops are uring-linked's dimension.
        cfg.engines = vec![EngineKind::Std, EngineKind::UringLinked];
        cfg.peer_ops = vec![PeerOp::Getsockname, PeerOp::Getsockopt];
        let ops: Vec<(EngineKind, Option<PeerOp>)> = super::rounds(&cfg)[0]
            .iter()
            .map(|p| (p.engine, p.peer_op))
            .collect();
        let linked = EngineKind::UringLinked;
        assert_eq!(
            ops,
            [
                (EngineKind::Std, None),
                (linked, Some(PeerOp::Getsockname)),
                (linked, Some(PeerOp::Getsockopt))
            ]
        );
        cfg.engines = vec![EngineKind::Std, EngineKind::Uring, EngineKind::Tokio];
        for r in &rounds {
            let mut e: Vec<EngineKind> = r.iter().map(|p| p.engine).collect();
            e.sort();
            assert_eq!(e, cfg.engines);
            assert!(r
                .iter()
                .all(|p| p.round == r[0].round && p.backlog == r[0].backlog));
            let pos: Vec<u32> = r.iter().map(|p| p.position).collect();
            assert_eq!(pos, [1, 2, 3]);
        }
    }

    #[test]
    fn trace_off_and_kernel_run_every_engine_both_ways_side_by_side() {
        let cfg = crate::config::tests::sweep_config(&[
            "sweep",
            "--engines",
            "std,multishot",
            "--backlogs",
            "8",
            "--modes",
            "drain",
            "--repeat",
            "2",
            "--trace",
            "off,kernel",
        ]);
        let r = rounds(&cfg);
        let labels: Vec<Vec<String>> = r
            .iter()
            .map(|round| round.iter().map(Planned::label).collect())
            .collect();
        assert_eq!(labels[0], ["std", "std+kt", "multishot", "multishot+kt"]);
        assert_eq!(labels[1], ["std+kt", "multishot", "multishot+kt", "std"]);
        assert!(r[0].iter().all(|p| p.trace == p.label().ends_with("+kt")));
        // --trace kernel alone: every run traced, labelled as today.
        let cfg =
            crate::config::tests::sweep_config(&["sweep", "--engines", "std", "--trace", "kernel"]);
        let p = rounds(&cfg)[0][0];
        assert!(p.trace && !p.trace_paired);
        assert_eq!(p.label(), "std");
        let cfg = crate::config::tests::sweep_config(&["sweep", "--engines", "std"]);
        assert!(!rounds(&cfg)[0][0].trace);
    }
}
