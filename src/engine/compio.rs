//! `compio`: compio's own `TcpListener::accept` loop — the Rust io_uring runtime
//! people adopt today (io-uring 0.7, as we are).
//!
//! compio's `accept` is a single-shot `IORING_OP_ACCEPT` (its multishot form is the
//! `incoming()` stream, which returns no peer address); since 0.19 it keeps the
//! `IORING_CQE_F_SOCK_NONEMPTY` hint of the last completion and arms the next accept
//! with `IORING_ACCEPT_POLL_FIRST` when the queue looked empty (on 6.10+; plain before).
//! The peer is the `SocketAddr` the future returns (compio decodes it from its own
//! sockaddr buffer before returning, so `accepted_ns` is stamped after the decode, as
//! for tokio). The stream is dropped at once: compio closes it with close(2).
//!
//! One runtime per acceptor thread, made on the thread's first run and kept for the
//! next ones (a server starts its runtime once), with compio's default ring set-up.
//! The listener is a dup of ours (socket2, our backlog), blocking like the other
//! io_uring engines. One accept future lives across loop turns; a timer wakes the
//! loop every `POLL_INTERVAL` to look at the limits. On stop the pending accept is
//! dropped — compio then submits `IORING_OP_ASYNC_CANCEL` — and the runtime is driven
//! once more so the cancel completes before `run` returns (an armed accept would keep
//! the listening socket alive and the port busy).
//!
//! Known limit: a connection whose accept completes in the instant between the stop
//! and the cancel is closed by compio unseen (it closes the fd an abandoned accept
//! returns); the join then shows it established and not accepted.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use common::clock::mono_ns;

use super::{Acceptor, EngineError, EngineKind, EngineOptions, Limits};
use crate::listener::Listener;
use crate::record::Recorder;

const ENGINE: EngineKind = EngineKind::Compio;

thread_local! {
    /// This thread's compio runtime, made by its first run.
    static RUNTIME: RefCell<Option<compio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// compio's single-shot accept loop.
#[derive(Debug, Clone)]
pub struct CompioAcceptor {
    work: super::Work,
}

impl CompioAcceptor {
    /// The engine with `opts` (`inflight` does not apply: one accept at a time).
    pub fn new(opts: &EngineOptions) -> Self {
        Self {
            work: super::Work::of(opts),
        }
    }
}

impl Acceptor for CompioAcceptor {
    fn kind(&self) -> EngineKind {
        ENGINE
    }

    fn run(
        &mut self,
        listener: &Listener,
        limits: &Limits,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let (mode, dup) = super::runtime_listener(listener, ENGINE, false)?;
        let mut work = self.work.clone();
        let result = RUNTIME.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                let rt = compio::runtime::Runtime::new()
                    .map_err(EngineError::io(ENGINE, "starting the compio runtime"))?;
                *slot = Some(rt);
            }
            match slot.as_ref() {
                Some(rt) => rt.block_on(accept_loop(dup.into(), limits, rec, &mut work)),
                None => Ok(()),
            }
        });
        let restored = mode.restore().map_err(EngineError::io(
            ENGINE,
            "restoring O_NONBLOCK of the listener",
        ));
        result.and(restored)
    }
}

/// What one wait of the loop brought.
enum Woken {
    Accepted(std::io::Result<(compio::net::TcpStream, std::net::SocketAddr)>),
    Tick,
}

async fn accept_loop(
    std_listener: std::net::TcpListener,
    limits: &Limits,
    rec: &mut Recorder,
    work: &mut super::Work,
) -> Result<(), EngineError> {
    let listener = compio::net::TcpListener::from_std(std_listener)
        .map_err(EngineError::io(ENGINE, "attaching the listener to compio"))?;
    rec.mark_release();
    let result = {
        let mut accept = pin!(listener.accept());
        let mut result = Ok(());
        while result.is_ok() && !limits.reached(rec.accepted) {
            let mut tick = pin!(compio::time::sleep(Limits::POLL_INTERVAL));
            let woken = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = accept.as_mut().poll(cx) {
                    return Poll::Ready(Woken::Accepted(r));
                }
                match tick.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Woken::Tick),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            let Woken::Accepted(res) = woken else {
                continue;
            };
            let accepted_ns = mono_ns();
            match res {
                Ok((stream, peer)) => super::accepted_stream(rec, stream, peer, accepted_ns, work),
                Err(e) => result = on_error(rec, &e).await,
            }
            accept.set(listener.accept());
        }
        result
        // The pending accept is dropped here: compio queues its cancel.
    };
    rec.mark_done();
    // Drive the runtime once so that the cancel is submitted and completes.
    compio::time::sleep(Duration::from_millis(1)).await;
    result
}

/// Counts a failed accept and, when it calls for a back-off, sleeps on the runtime.
async fn on_error(rec: &mut Recorder, e: &std::io::Error) -> Result<(), EngineError> {
    let errno = e.raw_os_error().unwrap_or(libc::EAFNOSUPPORT);
    match super::on_accept_error(rec, errno) {
        super::AfterError::Retry => Ok(()),
        super::AfterError::Backoff => {
            rec.backoffs += 1;
            compio::time::sleep(super::BACKOFF).await;
            Ok(())
        }
        super::AfterError::Fatal => Err(super::fatal_accept(ENGINE, errno)),
    }
}
