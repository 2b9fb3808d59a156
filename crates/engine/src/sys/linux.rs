//! Calls only Linux has.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::error::from_ret;

/// `preadv2(fd, buf, off, RWF_NOWAIT)`: reads only what is in the page cache;
/// `EAGAIN` when the data would have to come from the device (the caller then hands
/// the read to a thread or ring that may wait). EINTR is retried.
pub(crate) fn pread_nowait(fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> Result<usize, i32> {
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    loop {
        // SAFETY: one iovec describing `buf`, valid for writes during the call; the fd
        // is borrowed, so it stays open.
        let r = unsafe {
            libc::preadv2(
                fd.as_raw_fd(),
                &iov,
                1,
                off as libc::off_t,
                libc::RWF_NOWAIT,
            )
        };
        match from_ret(r) {
            Err(libc::EINTR) => continue,
            // tmpfs and ramfs refuse RWF_NOWAIT, yet their pages are memory: a plain
            // read has no device to wait for (only swap, as any memory access).
            Err(libc::EOPNOTSUPP) if in_memory_fs(fd) => return pread(fd, buf, off),
            // Other filesystems without NOWAIT support: treat like "would block".
            Err(libc::EOPNOTSUPP) => return Err(libc::EAGAIN),
            other => return other,
        }
    }
}

/// Whether `fd` is a file of a filesystem that lives in memory (tmpfs, ramfs).
fn in_memory_fs(fd: BorrowedFd<'_>) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `st` is writable memory of the size fstatfs fills; the fd is borrowed.
    let r = unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    if r != 0 {
        return false;
    }
    // SAFETY: fstatfs returned 0, so it filled `st`.
    let kind = unsafe { st.assume_init() }.f_type;
    // ramfs's magic (linux/magic.h); libc names only tmpfs's.
    const RAMFS_MAGIC: libc::__fsword_t = 0x8584_58f6;
    kind == libc::TMPFS_MAGIC || kind == RAMFS_MAGIC
}

/// `pread(fd, buf, off)`, EINTR retried.
fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], off: u64) -> Result<usize, i32> {
    loop {
        // SAFETY: `buf` is valid for writes of its length during the call; the fd is
        // borrowed, so it stays open.
        let r = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                off as libc::off_t,
            )
        };
        match from_ret(r) {
            Err(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// `cachestat(2)` (Linux 6.5): whether every page of `[off, off + len)` of a file is
/// in the page cache, so reading it cannot wait for the disk. `false` when unknown
/// (older kernels: the answer is remembered after the first `ENOSYS`).
pub(crate) fn all_cached(fd: BorrowedFd<'_>, off: u64, len: u64) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static MISSING: AtomicBool = AtomicBool::new(false);
    const SYS_CACHESTAT: libc::c_long = 451; // the same number on every architecture
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    if len == 0 {
        return true;
    }
    if MISSING.load(Ordering::Relaxed) {
        return false;
    }
    const PAGE: u64 = 4096;
    let first = off / PAGE;
    let last = (off + len - 1) / PAGE;
    let range = Range {
        off: first * PAGE,
        len: (last - first + 1) * PAGE,
    };
    let mut st = Stat::default();
    // SAFETY: `range` and `st` are live, correctly laid out (repr(C), the kernel's
    // struct cachestat_range / cachestat) for the call; flags must be 0.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd.as_raw_fd(),
            &range as *const Range,
            &mut st as *mut Stat,
            0,
        )
    };
    if r != 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            MISSING.store(true, Ordering::Relaxed);
        }
        return false;
    }
    st.nr_cache > last - first
}
