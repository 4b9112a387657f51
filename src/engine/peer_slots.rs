//! The per-connection slots of `uring-linked`: a peer-address buffer the kernel writes
//! (the in-ring `GETSOCKOPT(SO_PEERNAME)`'s optval, or `GETSOCKNAME`'s address), the
//! length `GETSOCKNAME` reads and writes back, and the bookkeeping of the two
//! operations in flight for that connection (the peer read and its linked close).
//!
//! The buffers live in one heap allocation made once per run, never moved or resized,
//! and reached only through raw pointers, so the kernel's writes never alias a live
//! Rust reference. A slot is free again only once neither operation can still touch
//! it; the arena is freed only when no operation is in flight (or leaked when a stop
//! could not make sure of that).

use std::net::SocketAddr;
use std::ptr::NonNull;

use crate::peer;

/// What is still in flight, or still to do, for one accepted connection.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SlotState {
    /// The accepted fd, or the direct descriptor's table index.
    pub file: i32,
    /// CLOCK_MONOTONIC ns when the accept's CQE was seen.
    pub accepted_ns: u64,
    /// The getsockopt's CQE has not arrived yet.
    pub peer_pending: bool,
    /// A close's CQE has not arrived yet.
    pub close_pending: bool,
    /// The linked close was cancelled (its getsockopt failed) and the connection still
    /// has to be closed, after the peer was read.
    pub close_needed: bool,
}

impl SlotState {
    /// Nothing is in flight or left to do: the slot can be reused.
    #[inline]
    pub fn done(&self) -> bool {
        !self.peer_pending && !self.close_pending && !self.close_needed
    }
}

/// `n` slots: kernel-written address buffers plus their [`SlotState`], and the free list.
pub(super) struct PeerSlots {
    addrs: NonNull<libc::sockaddr_storage>,
    /// One `int` per slot: `GETSOCKNAME`'s in/out address length (allocated with
    /// `addrs`, the same `len` entries, freed or leaked with it).
    lens: NonNull<u32>,
    len: usize,
    /// Per-slot bookkeeping (never touched by the kernel).
    pub state: Vec<SlotState>,
    free: Vec<u32>,
}

// SAFETY: the buffers are plain memory owned by one engine run; they are only touched by
// the thread running it (and by the kernel on that thread's ring).
unsafe impl Send for PeerSlots {}

impl PeerSlots {
    /// `n` free slots.
    pub fn new(n: usize) -> Self {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let zero: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let addrs: Box<[libc::sockaddr_storage]> = vec![zero; n].into_boxed_slice();
        let len = addrs.len();
        let raw = Box::into_raw(addrs) as *mut libc::sockaddr_storage;
        // Box::into_raw never returns null; dangling-but-aligned for n == 0.
        let addrs = NonNull::new(raw).unwrap_or(NonNull::dangling());
        let lens = Box::into_raw(vec![0u32; len].into_boxed_slice()) as *mut u32;
        let lens = NonNull::new(lens).unwrap_or(NonNull::dangling());
        Self {
            addrs,
            lens,
            len,
            state: vec![SlotState::default(); n],
            free: (0..n as u32).rev().collect(),
        }
    }

    /// Slots in use.
    #[inline]
    pub fn busy(&self) -> usize {
        self.state.len() - self.free.len()
    }

    /// Takes a free slot for `file` accepted at `accepted_ns`, with its peer read and
    /// close about to be submitted; returns its index, the address buffer the kernel
    /// writes and the slot's length (set to the buffer's size, for `GETSOCKNAME`), or
    /// `None` when every slot is busy.
    #[inline]
    pub fn take(&mut self, file: i32, accepted_ns: u64) -> Option<(u32, *mut u8, *mut u32)> {
        let i = self.free.pop()?;
        self.state[i as usize] = SlotState {
            file,
            accepted_ns,
            peer_pending: true,
            close_pending: true,
            close_needed: false,
        };
        // SAFETY: i < len (free holds only indices below len); the slot was free, so no
        // operation writes its buffer now. The pointer stays valid until the arena is
        // dropped, which `run` allows only once no operation is in flight.
        let ptr = unsafe { self.addrs.as_ptr().add(i as usize) };
        // SAFETY: as above, for the lengths allocated with the buffers.
        let lenp = unsafe { self.lens.as_ptr().add(i as usize) };
        // SAFETY: lenp is in bounds and no operation touches a free slot's length.
        unsafe { lenp.write(std::mem::size_of::<libc::sockaddr_storage>() as u32) };
        Some((i, ptr.cast(), lenp))
    }

    /// Frees slot `i` if nothing is left in flight or to do for it.
    #[inline]
    pub fn release_if_done(&mut self, i: u32) {
        if self.state[i as usize].done() {
            self.free.push(i);
        }
    }

    /// The peer the getsockopt of slot `i` wrote, `len` bytes (its CQE's result). Only
    /// call after that CQE was reaped.
    #[inline]
    pub fn peer(&self, i: u32, len: u32) -> Option<SocketAddr> {
        assert!((i as usize) < self.len);
        // SAFETY: i < len; the getsockopt that wrote the buffer has completed (its CQE
        // was reaped), so the kernel no longer writes it while we read.
        let ss = unsafe { &*self.addrs.as_ptr().add(i as usize) };
        peer::sockaddr_to_socketaddr(ss, len)
    }

    /// The peer a `GETSOCKNAME` of slot `i` wrote, with the length it wrote back. Only
    /// call after that CQE was reaped.
    #[inline]
    pub fn peer_named(&self, i: u32) -> Option<SocketAddr> {
        assert!((i as usize) < self.len);
        // SAFETY: i < len; the GETSOCKNAME that wrote the length has completed.
        let len = unsafe { self.lens.as_ptr().add(i as usize).read() };
        self.peer(i, len)
    }

    /// Gives the memory up for good (an operation might still write into it).
    pub fn leak(&mut self) {
        self.len = 0;
    }
}

impl Drop for PeerSlots {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: addrs/len and lens/len came from Box::into_raw of boxed slices of this
        // length, and `run` only lets the arena drop once nothing is in flight on it.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.addrs.as_ptr(),
                self.len,
            )));
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.lens.as_ptr(),
                self.len,
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_free_only_after_both_operations() {
        let mut s = PeerSlots::new(2);
        let (a, _, _) = s.take(10, 1).unwrap();
        let (b, _, _) = s.take(11, 2).unwrap();
        assert!(s.take(12, 3).is_none());
        s.state[a as usize].peer_pending = false;
        s.release_if_done(a);
        assert_eq!(s.busy(), 2);
        s.state[a as usize].close_pending = false;
        s.release_if_done(a);
        assert_eq!(s.busy(), 1);
        assert_ne!(a, b);
        assert!(s.take(13, 4).is_some());
    }
}
