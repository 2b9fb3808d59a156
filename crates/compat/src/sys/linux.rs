//! Linux: the real `sendfile(2)`, `splice(2)` and `copy_file_range(2)`. Headers and
//! trailers of `sendfile_with` are emulated: headers with `MSG_MORE`, the body with
//! `sendfile`, trailers last.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

use crate::flags::SendfileFlags;
use crate::util::cvt_r;

pub(crate) const NAME: &str = "linux";

fn off_ptr(off: &mut Option<i64>) -> *mut libc::loff_t {
    match off {
        Some(o) => o as *mut i64,
        None => ptr::null_mut(),
    }
}

pub(crate) fn sendfile(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    offset: Option<i64>,
    count: usize,
) -> io::Result<usize> {
    let mut off = offset;
    // SAFETY: the offset pointer is null or points at a live local loff_t; the fds are
    // borrowed, so they stay open for the call. Any EINTR retry restarts from `off`,
    // which the kernel only updates on success.
    cvt_r(|| unsafe {
        libc::sendfile64(out.as_raw_fd(), in_.as_raw_fd(), off_ptr(&mut off), count)
    })
    .map(|n| n as usize)
}

pub(crate) fn sendfile_with(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    offset: Option<i64>,
    count: usize,
    headers: &[IoSlice<'_>],
    trailers: &[IoSlice<'_>],
    _flags: SendfileFlags,
) -> io::Result<usize> {
    super::common::sendfile_with_emulated(out, in_, offset, count, headers, trailers, sendfile)
}

pub(crate) fn splice(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    count: usize,
    off_src: Option<i64>,
    off_dst: Option<i64>,
    flags: u32,
) -> io::Result<usize> {
    let (mut os, mut od) = (off_src, off_dst);
    // SAFETY: offset pointers are null or point at live locals; fds are borrowed.
    cvt_r(|| unsafe {
        libc::splice(
            src.as_raw_fd(),
            off_ptr(&mut os),
            dst.as_raw_fd(),
            off_ptr(&mut od),
            count,
            flags as libc::c_uint,
        )
    })
    .map(|n| n as usize)
}

pub(crate) fn copy_file_range(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    count: usize,
    off_src: Option<i64>,
    off_dst: Option<i64>,
) -> io::Result<usize> {
    let (mut os, mut od) = (off_src, off_dst);
    // SAFETY: offset pointers are null or point at live locals; fds are borrowed.
    cvt_r(|| unsafe {
        libc::copy_file_range(
            src.as_raw_fd(),
            off_ptr(&mut os),
            dst.as_raw_fd(),
            off_ptr(&mut od),
            count,
            0,
        )
    })
    .map(|n| n as usize)
}
