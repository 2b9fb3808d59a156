//! macOS and FreeBSD: native `sendfile(2)` with headers and trailers; `splice` and
//! `copy_file_range` come from the portable fallback.
//!
//! This file cannot be compiled on the project's CI (Linux only) and is kept small for
//! that reason. Semantics are the platform's, as Python documents them: `count == 0`
//! means "until EOF"; the return value counts headers, file bytes and trailers; bytes
//! sent before `EAGAIN`/`EBUSY`/`EINTR` are returned, not lost.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};

use super::common::lseek;
use crate::flags::SendfileFlags;

pub(crate) use super::fallback::{copy_file_range, splice};

pub(crate) const NAME: &str = "bsd";

pub(crate) fn sendfile(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    offset: Option<i64>,
    count: usize,
) -> io::Result<usize> {
    sendfile_with(out, in_, offset, count, &[], &[], SendfileFlags::empty())
}

pub(crate) fn sendfile_with(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    offset: Option<i64>,
    count: usize,
    headers: &[IoSlice<'_>],
    trailers: &[IoSlice<'_>],
    flags: SendfileFlags,
) -> io::Result<usize> {
    let start = match offset {
        Some(o) => o,
        None => lseek(in_, 0, libc::SEEK_CUR)?,
    };
    let mut hdtr = libc::sf_hdtr {
        headers: headers.as_ptr() as *mut libc::iovec,
        hdr_cnt: headers.len() as libc::c_int,
        trailers: trailers.as_ptr() as *mut libc::iovec,
        trl_cnt: trailers.len() as libc::c_int,
    };
    let hdtr_ptr = if headers.is_empty() && trailers.is_empty() {
        std::ptr::null_mut()
    } else {
        &mut hdtr as *mut libc::sf_hdtr
    };
    let (res, sent) = raw_sendfile(out, in_, start, count, hdtr_ptr, flags);
    let body = sent.saturating_sub(headers.iter().map(|h| h.len()).sum::<usize>());
    if offset.is_none() && body > 0 {
        lseek(in_, start + body as i64, libc::SEEK_SET)?;
    }
    match res {
        Ok(()) => Ok(sent),
        Err(_) if sent > 0 => Ok(sent), // partial progress is reported, not lost
        Err(e) => Err(e),
    }
}

#[cfg(target_os = "freebsd")]
fn raw_sendfile(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    off: i64,
    count: usize,
    hdtr: *mut libc::sf_hdtr,
    flags: SendfileFlags,
) -> (io::Result<()>, usize) {
    let mut sbytes: libc::off_t = 0;
    // SAFETY: `hdtr` is null or points at a live sf_hdtr whose iovecs borrow the
    // caller's slices for the call; `sbytes` is a live local.
    let r = unsafe {
        libc::sendfile(
            in_.as_raw_fd(),
            out.as_raw_fd(),
            off,
            count,
            hdtr,
            &mut sbytes,
            flags.bits() as libc::c_int,
        )
    };
    let res = if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    (res, sbytes as usize)
}

#[cfg(target_os = "macos")]
fn raw_sendfile(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    off: i64,
    count: usize,
    hdtr: *mut libc::sf_hdtr,
    _flags: SendfileFlags,
) -> (io::Result<()>, usize) {
    // macOS counts headers in `len` (Python adds them too); 0 still means "to EOF".
    let hlen: usize = if hdtr.is_null() {
        0
    } else {
        // SAFETY: non-null `hdtr` points at the caller's live sf_hdtr.
        let h = unsafe { &*hdtr };
        (0..h.hdr_cnt as usize)
            // SAFETY: `headers` holds `hdr_cnt` iovecs borrowed from the caller.
            .map(|i| unsafe { (*h.headers.add(i)).iov_len })
            .sum()
    };
    let mut len: libc::off_t = if count == 0 {
        0
    } else {
        (count + hlen) as libc::off_t
    };
    // SAFETY: as for FreeBSD; `len` is a live local the kernel updates.
    let r = unsafe { libc::sendfile(in_.as_raw_fd(), out.as_raw_fd(), off, &mut len, hdtr, 0) };
    let res = if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    (res, len as usize)
}
