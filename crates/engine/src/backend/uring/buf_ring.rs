//! A provided-buffer ring (io_uring `PBUF_RING`, Linux 5.19) for multishot receives:
//! the kernel picks a free buffer per arrival and names it in the CQE; we copy the bytes
//! out and give the buffer straight back.
//!
//! Memory: the ring of entries is one page-aligned allocation, the buffers one `Vec`;
//! both live in `ConnTable`, which the `Driver` drops after its `IoUring` (field order),
//! so the kernel has let go of them first (it also pins the pages while registered).
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group id of the one ring a `LocalEngine` registers.
pub(crate) const GROUP: u16 = 0;
const ENTRIES: u16 = 64;
pub(crate) const BUF_SIZE: usize = 16 * 1024;

pub(crate) struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    bufs: Vec<u8>,
    tail: u16,
}

// SAFETY: the raw pointer is only used by the ring's owner thread (the driver); the
// memory it points at is owned by this value.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates and registers the ring with `ring`, all buffers given to the kernel.
    pub(crate) fn register(ring: &IoUring) -> io::Result<BufRing> {
        let layout =
            Layout::from_size_align(ENTRIES as usize * std::mem::size_of::<BufRingEntry>(), 4096)
                .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut br = BufRing {
            entries,
            layout,
            bufs: vec![0; ENTRIES as usize * BUF_SIZE],
            tail: 0,
        };
        // SAFETY: `entries` is page-aligned memory for ENTRIES entries that lives (with
        // `br`) until after the ring is dropped; GROUP is not registered yet.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(entries as u64, ENTRIES, GROUP, 0)?;
        }
        for bid in 0..ENTRIES {
            br.stage(bid);
        }
        br.publish();
        Ok(br)
    }

    /// The first `len` bytes of buffer `bid`.
    pub(crate) fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * BUF_SIZE;
        &self.bufs[start..start + len.min(BUF_SIZE)]
    }

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        if bid < ENTRIES {
            self.stage(bid);
            self.publish();
        }
    }

    fn stage(&mut self, bid: u16) {
        let addr = self.bufs.as_mut_ptr() as u64 + bid as u64 * BUF_SIZE as u64;
        let slot = (self.tail & (ENTRIES - 1)) as usize;
        // SAFETY: `slot` < ENTRIES, inside the allocation; only this thread writes
        // entries, and the kernel reads them only up to the published tail.
        let e = unsafe { &mut *self.entries.add(slot) };
        e.set_addr(addr);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the staged entries visible to the kernel.
    fn publish(&self) {
        // SAFETY: `entries` is the ring's base address (page-aligned, live); the tail
        // field is a u16 shared with the kernel, so it is written atomically.
        let tail = unsafe { &*BufRingEntry::tail(self.entries).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with this layout; the ring that used it is
        // gone (see the module doc).
        unsafe { alloc::dealloc(self.entries.cast(), self.layout) };
    }
}
