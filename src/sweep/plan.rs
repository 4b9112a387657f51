//! The run order of a sweep: `repeat` rounds; in each round every cell (backlog, mode,
//! acceptors, sharing) once, and in each cell every engine once, in an order rotated
//! by one each round, so that drift on a shared machine (a neighbour's load, thermal
//! state) hits every engine and every cell alike, and each engine's ratio to std
//! compares two runs made a fraction of a second apart.

use crate::acceptors::Sharing;
use crate::config::{Mode, SweepConfig};
use crate::engine::EngineKind;

/// One planned run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Engine.
    pub engine: EngineKind,
    /// Single-shot accepts in flight (`uring` only; one variant per `--inflight` value).
    pub inflight: Option<u32>,
    /// Backlog.
    pub backlog: u32,
    /// Mode.
    pub mode: Mode,
    /// Acceptor threads.
    pub acceptors: u32,
    /// How they share the port.
    pub sharing: Sharing,
    /// Round (repetition), from 1.
    pub round: u32,
    /// Position within the round, from 1.
    pub position: u32,
}

/// The sweep's rounds, in run order.
pub fn rounds(cfg: &SweepConfig) -> Vec<Vec<Planned>> {
    let mut out = Vec::new();
    let mut cells = Vec::new();
    for &backlog in &cfg.backlogs {
        for &mode in &cfg.modes {
            for &acceptors in &cfg.acceptors {
                for &sharing in &cfg.sharings {
                    cells.push((backlog, mode, acceptors, sharing));
                }
            }
        }
    }
    // Round-major: round r runs every cell once before round r+1 starts, so a cell's
    // runs are spread over the whole sweep and a slow stretch of a shared machine (its
    // speed drifts by ~10% over a minute, CPU per accept included) hits every cell
    // alike instead of the one that happened to run then.
    for round in 1..=cfg.repeat {
        for &(backlog, mode, acceptors, sharing) in &cells {
            let mut engines = variants(cfg);
            if !engines.is_empty() {
                let k = (round as usize - 1) % engines.len();
                engines.rotate_left(k);
            }
            out.push(
                engines
                    .into_iter()
                    .enumerate()
                    .map(|(i, (engine, inflight))| Planned {
                        engine,
                        inflight,
                        backlog,
                        mode,
                        acceptors,
                        sharing,
                        round,
                        position: i as u32 + 1,
                    })
                    .collect(),
            );
        }
    }
    out
}

/// The engine variants of every round: each engine once, `uring` once per in-flight
/// depth.
fn variants(cfg: &SweepConfig) -> Vec<(EngineKind, Option<u32>)> {
    cfg.engines
        .iter()
        .flat_map(|&e| match e {
            EngineKind::Uring => cfg.inflights.iter().map(|&q| (e, Some(q))).collect(),
            _ => vec![(e, None)],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
