//! `tokio`: `tokio::net::TcpListener::accept` (epoll) on a current-thread runtime —
//! what most Rust servers run instead of io_uring.
//!
//! The runtime is built inside `run` and dropped before it returns; the listener is a
//! dup of the shared fd set O_NONBLOCK (which changes the shared file description:
//! the flag is put back as it was on return, through
//! [`Listener::set_blocking_mode`]). Dropping a tokio accept future loses nothing (the connection stays in
//! the kernel's queue), so each loop iteration selects a fresh accept against a
//! periodic sleep. As tokio decodes the peer inside `accept`, `accepted_ns` is
//! stamped after the decode. Each accepted stream is registered with the reactor
//! (epoll_ctl ADD, and DEL on drop): that is tokio's cost, kept on purpose.

use common::clock::mono_ns;

use super::{Acceptor, EngineError, EngineKind, EngineOptions, Limits};
use crate::listener::Listener;
use crate::record::Recorder;

/// tokio (epoll) accept loop.
#[derive(Debug)]
pub struct TokioAcceptor {
    work: super::Work,
    /// Kept between runs (a server starts its runtime once); idle between runs.
    rt: Option<tokio::runtime::Runtime>,
}

impl TokioAcceptor {
    /// The engine with `opts` (`inflight` does not apply).
    pub fn new(opts: &EngineOptions) -> Self {
        Self {
            work: super::Work::of(opts),
            rt: None,
        }
    }
}

impl Acceptor for TokioAcceptor {
    fn kind(&self) -> EngineKind {
        EngineKind::Tokio
    }

    fn run(
        &mut self,
        listener: &Listener,
        limits: &Limits,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let io_err = |what| EngineError::io(EngineKind::Tokio, what);
        // tokio needs O_NONBLOCK.
        let (mode, dup) = super::runtime_listener(listener, EngineKind::Tokio, true)?;
        let rt = match self.rt.take() {
            Some(rt) => rt,
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io_err("starting the tokio runtime"))?,
        };
        let mut work = self.work.clone();
        let result = rt.block_on(async {
            let listener = tokio::net::TcpListener::from_std(dup.into())
                .map_err(io_err("registering the listener with tokio"))?;
            accept_loop(&listener, limits, rec, &mut work).await
        });
        self.rt = Some(rt);
        let restored = mode
            .restore()
            .map_err(io_err("restoring O_NONBLOCK of the listener"));
        result.and(restored)
    }
}

async fn accept_loop(
    listener: &tokio::net::TcpListener,
    limits: &Limits,
    rec: &mut Recorder,
    work: &mut super::Work,
) -> Result<(), EngineError> {
    let mut tick = std::pin::pin!(tokio::time::sleep(Limits::POLL_INTERVAL));
    rec.mark_release();
    while !limits.reached(rec.accepted) {
        tokio::select! {
            biased;
            res = listener.accept() => {
                let accepted_ns = mono_ns();
                match res {
                    Ok((stream, peer)) => {
                        super::accepted_stream(rec, stream, peer, accepted_ns, work);
                    }
                    Err(e) => {
                        super::on_async_accept_error(EngineKind::Tokio, rec, &e).await?;
                    }
                }
            }
            () = &mut tick => {
                tick.as_mut().reset(tokio::time::Instant::now() + Limits::POLL_INTERVAL);
            }
        }
    }
    rec.mark_done();
    Ok(())
}
