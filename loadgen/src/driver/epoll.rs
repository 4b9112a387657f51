//! Non-blocking connect + epoll (EPOLLONESHOT per operation): the fallback when io_uring
//! is unavailable, and a method of its own to compare against.

use std::os::fd::RawFd;

use super::{token_slot, Completion, Driver, Op};
use crate::clock::mono_ns;
use crate::error::LoadgenError;
use crate::sock::{self, RawAddr};

/// Per slot: which operation is armed on which descriptor.
#[derive(Clone, Copy)]
struct Armed {
    fd: RawFd,
    op: Op,
    /// The fd is (as far as we know) registered with the epoll instance.
    registered: bool,
}

pub(crate) struct EpollDriver {
    epfd: RawFd,
    target: RawAddr,
    armed: Vec<Armed>,
    ready: Vec<Completion>,
    events: Vec<libc::epoll_event>,
    have_pwait2: bool,
}

impl EpollDriver {
    pub fn new(target: RawAddr, slots: usize) -> Result<Self, LoadgenError> {
        // SAFETY: plain system call.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(LoadgenError::io(
                "epoll_create1",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(EpollDriver {
            epfd,
            target,
            armed: vec![
                Armed {
                    fd: -1,
                    op: Op::Connect,
                    registered: false
                };
                slots.max(1)
            ],
            ready: Vec::with_capacity(64),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; slots.clamp(1, 1024)],
            have_pwait2: true,
        })
    }

    fn arm(&mut self, token: u64, fd: RawFd, op: Op) {
        let slot = token_slot(token);
        let interest = match op {
            Op::Read => libc::EPOLLIN | libc::EPOLLRDHUP,
            // Only connects and reads are armed here (sockets are made by system call).
            Op::Connect | Op::Socket | Op::SockOpt => libc::EPOLLOUT,
        } as u32
            | libc::EPOLLONESHOT as u32;
        let mut ev = libc::epoll_event {
            events: interest,
            u64: token,
        };
        let a = self.armed[slot];
        // A slot's previous fd may have been closed (dropping its registration) and the same
        // number reused, so MOD may find nothing (ENOENT) and ADD may find it (EEXIST).
        let (first, second) = if a.registered && a.fd == fd {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD)
        };
        // SAFETY: epfd and fd are open descriptors; ev is a live epoll_event.
        let mut r = unsafe { libc::epoll_ctl(self.epfd, first, fd, &mut ev) };
        if r != 0 {
            // SAFETY: as above.
            r = unsafe { libc::epoll_ctl(self.epfd, second, fd, &mut ev) };
        }
        if r != 0 {
            self.ready.push(Completion {
                token,
                op,
                result: -sock::errno(),
            });
            return;
        }
        self.armed[slot] = Armed {
            fd,
            op,
            registered: true,
        };
    }

    fn epoll_wait(&mut self, deadline_ns: Option<u64>) -> Result<usize, LoadgenError> {
        let max = self.events.len() as libc::c_int;
        loop {
            let n = match deadline_ns {
                Some(d) if self.have_pwait2 => {
                    let ns = d.saturating_sub(mono_ns());
                    let ts = libc::timespec {
                        tv_sec: (ns / 1_000_000_000) as libc::time_t,
                        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
                    };
                    // SAFETY: events holds `max` entries; ts is live for the call.
                    unsafe {
                        libc::epoll_pwait2(
                            self.epfd,
                            self.events.as_mut_ptr(),
                            max,
                            &ts,
                            std::ptr::null(),
                        )
                    }
                }
                Some(d) => {
                    let ms = d
                        .saturating_sub(mono_ns())
                        .div_ceil(1_000_000)
                        .min(i32::MAX as u64) as libc::c_int;
                    // SAFETY: events holds `max` entries.
                    unsafe { libc::epoll_wait(self.epfd, self.events.as_mut_ptr(), max, ms) }
                }
                // SAFETY: events holds `max` entries.
                None => unsafe { libc::epoll_wait(self.epfd, self.events.as_mut_ptr(), max, -1) },
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            match sock::errno() {
                libc::EINTR => return Ok(0),
                libc::ENOSYS if self.have_pwait2 => self.have_pwait2 = false,
                e => {
                    return Err(LoadgenError::io(
                        "epoll_wait",
                        std::io::Error::from_raw_os_error(e),
                    ))
                }
            }
        }
    }
}

impl Driver for EpollDriver {
    fn start_connect(&mut self, token: u64, fd: RawFd) {
        match sock::connect(fd, &self.target) {
            Ok(()) => self.ready.push(Completion {
                token,
                op: Op::Connect,
                result: 0,
            }),
            Err(libc::EINPROGRESS) => self.arm(token, fd, Op::Connect),
            Err(e) => self.ready.push(Completion {
                token,
                op: Op::Connect,
                result: -e,
            }),
        }
    }

    fn start_read(&mut self, token: u64, fd: RawFd) {
        match sock::read_once(fd) {
            Ok(n) => self.ready.push(Completion {
                token,
                op: Op::Read,
                result: n.min(i32::MAX as usize) as i32,
            }),
            Err(libc::EAGAIN) => self.arm(token, fd, Op::Read),
            Err(e) => self.ready.push(Completion {
                token,
                op: Op::Read,
                result: -e,
            }),
        }
    }

    fn cancel(&mut self, _token: u64, _op: Op) -> bool {
        // Closing the fd (the caller does) drops its registration; nothing else is in flight.
        false
    }

    fn wait(
        &mut self,
        deadline_ns: Option<u64>,
        out: &mut Vec<Completion>,
    ) -> Result<(), LoadgenError> {
        let deadline = if self.ready.is_empty() {
            deadline_ns
        } else {
            Some(0)
        };
        let n = self.epoll_wait(deadline)?;
        out.append(&mut self.ready);
        for i in 0..n {
            let token = self.events[i].u64;
            let a = self.armed[token_slot(token)];
            let result = match a.op {
                Op::Connect | Op::Socket | Op::SockOpt => -sock::so_error(a.fd),
                Op::Read => match sock::read_once(a.fd) {
                    Ok(n) => n.min(i32::MAX as usize) as i32,
                    Err(libc::EAGAIN) => {
                        self.arm(token, a.fd, Op::Read);
                        continue;
                    }
                    Err(e) => -e,
                },
            };
            out.push(Completion {
                token,
                op: a.op,
                result,
            });
        }
        Ok(())
    }

    fn nonblocking_sockets(&self) -> bool {
        true
    }
}

impl Drop for EpollDriver {
    fn drop(&mut self) {
        sock::close(self.epfd);
    }
}
