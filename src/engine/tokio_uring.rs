//! `tokio-uring`: `tokio_uring::net::TcpListener::accept` on a current-thread runtime.
//!
//! The runtime is built inside `run` and torn down before it returns. tokio-uring's
//! accept is single-shot; one accept future is kept alive across the loop (dropping
//! an in-flight tokio-uring op does not cancel it in 0.5: the op is "ignored" and a
//! connection it later accepts would be lost, fd and all), and a sleep wakes the
//! loop every `POLL_INTERVAL` to look at the limits. On stop the pending accept is
//! dropped and the runtime with it: tokio-uring's driver then submits
//! `IORING_OP_ASYNC_CANCEL` for every ignored op and waits for their CQEs before
//! closing the ring, so the port can be re-bound at once.
//!
//! Known limit (tokio-uring 0.5): a connection whose accept completes in the instant
//! between the stop and the cancel is accepted by the kernel and dropped unseen by
//! the driver (the fd is not closed until the process exits). tokio-uring decodes the
//! peer before the future returns, so `accepted_ns` is stamped after the decode and
//! the peer-extraction latency here measures only our own bookkeeping.

use std::pin::pin;

use common::clock::mono_ns;

use super::{Acceptor, EngineError, EngineKind, EngineOptions, Limits};
use crate::listener::Listener;
use crate::record::Recorder;

/// tokio-uring single-shot accept.
#[derive(Debug, Clone)]
pub struct TokioUringAcceptor {
    work: super::Work,
}

impl TokioUringAcceptor {
    /// The engine with `opts` (`inflight` does not apply: one accept at a time).
    pub fn new(opts: &EngineOptions) -> Self {
        Self {
            work: super::Work::of(opts),
        }
    }
}

impl Acceptor for TokioUringAcceptor {
    fn kind(&self) -> EngineKind {
        EngineKind::TokioUring
    }

    fn run(
        &mut self,
        listener: &Listener,
        limits: &Limits,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let io_err = |what| EngineError::io(EngineKind::TokioUring, what);
        // A blocking file description keeps io_uring's accept on its poll path on
        // every kernel.
        let (mode, dup) = super::runtime_listener(listener, EngineKind::TokioUring, false)?;
        let rt = tokio_uring::Runtime::new(&tokio_uring::builder())
            .map_err(io_err("starting the tokio-uring runtime"))?;
        let mut work = self.work.clone();
        let result = rt.block_on(accept_loop(dup.into(), limits, rec, &mut work));
        // Dropping the runtime drops its driver, which cancels the pending accept and
        // waits for its completion before closing the ring and our dup of the fd.
        drop(rt);
        let restored = mode
            .restore()
            .map_err(io_err("restoring O_NONBLOCK of the listener"));
        result.and(restored)
    }
}

async fn accept_loop(
    std_listener: std::net::TcpListener,
    limits: &Limits,
    rec: &mut Recorder,
    work: &mut super::Work,
) -> Result<(), EngineError> {
    let listener = tokio_uring::net::TcpListener::from_std(std_listener);
    rec.mark_release();
    let mut accept = pin!(listener.accept());
    let mut tick = pin!(tokio::time::sleep(Limits::POLL_INTERVAL));
    while !limits.reached(rec.accepted) {
        tokio::select! {
            biased;
            res = &mut accept => {
                let accepted_ns = mono_ns();
                match res {
                    Ok((stream, peer)) => {
                        super::accepted_stream(rec, stream, peer, accepted_ns, work);
                    }
                    Err(e) => {
                        super::on_async_accept_error(EngineKind::TokioUring, rec, &e).await?;
                    }
                }
                accept.set(listener.accept());
            }
            () = &mut tick => {
                tick.as_mut().reset(tokio::time::Instant::now() + Limits::POLL_INTERVAL);
            }
        }
    }
    rec.mark_done();
    Ok(())
}
