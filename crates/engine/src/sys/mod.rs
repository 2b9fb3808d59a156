//! The engine's system calls: the only place (with the io_uring ring boundary) where
//! `unsafe` is allowed. Each function makes one call, retries `EINTR` where noted, and
//! reports failure as the positive errno (`Err(i32)`) that the transfer plan consumes,
//! or as an `io::Error` for the submit-time checks. `sendfile`, `splice`,
//! `copy_file_range` and `O_NONBLOCK` come from `ferry-compat` (re-exported here), so
//! their argument checks and clamps exist once.
//!
//! Modules: `unix` (portable POSIX calls, compiled everywhere), `connect` (a
//! non-blocking connect and its `SO_ERROR`, with the socket address it needs), `epoll`
//! (Linux: the readiness loop's epoll set, accept, recv, and the eventfd both
//! executors wake with) and `linux` (with io_uring compiled in, `cfg(ferry_uring)`:
//! `preadv2(RWF_NOWAIT)` and `cachestat`). Without it (`--cfg ferry_force_fallback`, or
//! off Linux), `nowait` reads report `EAGAIN` at once, so the inline attempt always
//! hands over to a backend.
#![allow(unsafe_code)]

mod unix;
pub(crate) use unix::*;

mod connect;
pub(crate) use connect::*;

#[cfg(target_os = "linux")]
mod epoll;
#[cfg(target_os = "linux")]
pub(crate) use epoll::*;

#[cfg(ferry_uring)]
mod linux;
#[cfg(ferry_uring)]
pub(crate) use linux::*;

/// Without `RWF_NOWAIT`, a read that must not block cannot be made: say `EAGAIN`.
#[cfg(not(ferry_uring))]
pub(crate) fn pread_nowait(
    _fd: std::os::fd::BorrowedFd<'_>,
    _buf: &mut [u8],
    _off: u64,
) -> Result<usize, i32> {
    Err(libc::EAGAIN)
}

/// Without `cachestat`, residency is unknown: say "not cached".
#[cfg(not(ferry_uring))]
pub(crate) fn all_cached(_fd: std::os::fd::BorrowedFd<'_>, _off: u64, _len: u64) -> bool {
    false
}

pub(crate) use ferry_compat::{copy_file_range, get_blocking, sendfile, set_blocking, splice};
