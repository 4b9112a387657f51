//! The burst-round protocol between workers and the coordinator: after each round a
//! worker reports its outcomes ([`WorkerMsg::Round`]), waits for the coordinator's
//! [`RoundCmd`], closes the round's connections and runs the next round or finishes.
//! One message each way per round, never per connection.

use std::sync::mpsc::{Receiver, Sender};

use super::Worker;
use crate::clock::mono_ns;
use crate::driver::Driver;
use crate::error::LoadgenError;

/// What the coordinator tells workers after a burst round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundCmd {
    /// Close this round's connections and run the next round.
    Next,
    /// Close this round's connections and finish.
    Stop,
}

/// A worker's account of one burst round.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoundMsg {
    pub round: u32,
    pub attempted: u64,
    pub established: u64,
    pub pending: u64,
    pub errors: u64,
    pub start_ns: u64,
    pub known_ns: u64,
}

/// What workers tell the coordinator.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WorkerMsg {
    /// A burst round's outcomes are known; the worker waits for a `RoundCmd`.
    Round(RoundMsg),
    /// The worker has finished.
    Done,
}

/// A worker's end of the round channel.
pub(crate) struct RoundLink {
    pub tx: Sender<WorkerMsg>,
    pub rx: Receiver<RoundCmd>,
}

impl<D: Driver> Worker<'_, D> {
    pub(super) fn run_rounds(&mut self) -> Result<(), LoadgenError> {
        loop {
            self.round_counts = RoundMsg {
                round: self.round,
                start_ns: mono_ns(),
                ..RoundMsg::default()
            };
            self.phase()?;
            if !self.burst {
                return Ok(());
            }
            let cmd = self.end_round();
            if cmd == RoundCmd::Stop || self.interrupted {
                return Ok(());
            }
            self.round += 1;
            self.pacer.next_round();
        }
    }

    /// Burst: reports the round, waits for the coordinator's word, closes the round.
    pub(super) fn end_round(&mut self) -> RoundCmd {
        self.round_counts.known_ns = mono_ns();
        if self.close_early {
            // Closed (the RSTs out) before the round is reported: the acceptor drains
            // connections its client has already reset.
            self.close_all();
        }
        let cmd = match &self.rounds {
            Some(link) => {
                if link.tx.send(WorkerMsg::Round(self.round_counts)).is_err() {
                    RoundCmd::Stop
                } else {
                    link.rx.recv().unwrap_or(RoundCmd::Stop)
                }
            }
            None => RoundCmd::Next,
        };
        self.close_all();
        cmd
    }
}
