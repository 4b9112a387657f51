//! `std`: the classic blocking `accept()` loop, the baseline every engine is compared to.
//!
//! Blocks in `accept4(2)` on the listener with a `sockaddr_storage` for the peer.
//! To look at the stop flag and deadline while idle it sets `SO_RCVTIMEO` on the
//! listener (accept honours the receive timeout and fails with EAGAIN), and puts
//! the previous timeout back when it returns; likewise it clears O_NONBLOCK and puts
//! the mode it found back. Owns nothing but that loop.

use std::mem;
use std::os::fd::AsRawFd;

use common::clock::mono_ns;

use super::{
    back_off, fatal_accept, on_accept_error, Acceptor, AfterError, EngineError, EngineKind,
    EngineOptions, Limits,
};
use crate::listener::Listener;
use crate::peer;
use crate::record::Recorder;

/// Blocking `accept4(2)` loop.
#[derive(Debug, Clone)]
pub struct StdAcceptor {
    work: super::Work,
}

impl StdAcceptor {
    /// The engine with `opts` (`inflight` does not apply).
    pub fn new(opts: &EngineOptions) -> Self {
        Self {
            work: super::Work::of(opts),
        }
    }
}

impl Acceptor for StdAcceptor {
    fn kind(&self) -> EngineKind {
        EngineKind::Std
    }

    fn run(
        &mut self,
        listener: &Listener,
        limits: &Limits,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let io_err = |what| EngineError::io(EngineKind::Std, what);
        let socket = listener.socket();
        // The blocking accept needs O_NONBLOCK clear; the mode found is put back on return.
        let mode = listener
            .set_blocking_mode(false)
            .map_err(io_err("clearing O_NONBLOCK on the listener"))?;
        let old_timeout = socket
            .read_timeout()
            .map_err(io_err("reading SO_RCVTIMEO of the listener"))?;
        socket
            .set_read_timeout(Some(Limits::POLL_INTERVAL))
            .map_err(io_err("setting SO_RCVTIMEO on the listener"))?;
        let ipv6 = listener.local_addr.is_ipv6();
        let result = accept_loop(
            listener.as_raw_fd(),
            ipv6,
            limits,
            rec,
            &mut self.work.clone(),
        );
        let restored = socket
            .set_read_timeout(old_timeout)
            .map_err(io_err("restoring SO_RCVTIMEO of the listener"));
        let mode = mode
            .restore()
            .map_err(io_err("restoring O_NONBLOCK of the listener"));
        result.and(restored).and(mode)
    }
}

/// An EAGAIN sooner than this after accept was called did not come from the
/// receive timeout ([`Limits::POLL_INTERVAL`]): the call was woken for nothing.
const FUTILE_BELOW_NS: u64 = Limits::POLL_INTERVAL.as_nanos() as u64 / 2;

fn accept_loop(
    fd: i32,
    ipv6: bool,
    limits: &Limits,
    rec: &mut Recorder,
    work: &mut super::Work,
) -> Result<(), EngineError> {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    // When accept last returned: an EAGAIN long before the receive timeout means this
    // thread was woken while another acceptor of a shared listener took the connection
    // (a futile wake-up). Read only on EAGAIN, never on the accept path.
    let mut last_return_ns = mono_ns();
    rec.mark_release();
    while !limits.reached(rec.accepted) {
        let mut len = peer::SOCKADDR_STORAGE_LEN;
        // SAFETY: `ss` and `len` outlive this synchronous call; the kernel writes at
        // most `len` bytes into `ss`.
        let conn = unsafe {
            libc::accept4(
                fd,
                (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
                &mut len,
                libc::SOCK_CLOEXEC,
            )
        };
        if conn < 0 {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            if errno == libc::EAGAIN {
                // SO_RCVTIMEO expired (nothing arrived within POLL_INTERVAL), or, much
                // sooner, the call was woken and another acceptor took the connection.
                let now = mono_ns();
                if now.saturating_sub(last_return_ns) < FUTILE_BELOW_NS {
                    rec.futile_wakeups += 1;
                }
                last_return_ns = now;
                continue;
            }
            if errno == libc::EINTR && limits.stop.is_raised() {
                // The signal that asked for the stop (Ctrl-C) interrupted the wait: a
                // requested stop, not an accept error.
                continue;
            }
            match on_accept_error(rec, errno) {
                AfterError::Retry => {}
                AfterError::Backoff => back_off(rec),
                AfterError::Fatal => return Err(fatal_accept(EngineKind::Std, errno)),
            }
            continue;
        }
        let accepted_ns = mono_ns();
        last_return_ns = accepted_ns;
        let decoded = match peer::sockaddr_to_socketaddr(&ss, len) {
            Some(p) => Ok(p),
            None => peer::peer_of_accepted(conn, ipv6),
        };
        match decoded {
            Ok(p) => rec.accepted(p, accepted_ns, mono_ns()),
            Err(e) => {
                rec.error(e.raw_os_error().unwrap_or(libc::EAFNOSUPPORT));
            }
        }
        // SAFETY: `conn` is the fd accept4 just returned; nothing else owns it.
        unsafe { libc::close(conn) };
        rec.close_done(mono_ns());
        work.after_connection(rec);
    }
    rec.mark_done();
    Ok(())
}
