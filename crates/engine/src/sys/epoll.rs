//! epoll and the socket calls of `LocalEngine`'s readiness executor (Linux; used where
//! io_uring is unavailable, and in the portable build).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::from_ret;

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no memory arguments.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(ADD | MOD | DEL)` of `fd` for `events` (level-triggered), tagged `token`.
pub(crate) fn epoll_ctl(
    ep: BorrowedFd<'_>,
    op: libc::c_int,
    fd: i32,
    events: u32,
    token: u64,
) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a live epoll_event for the call; the epoll fd is borrowed.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &mut ev) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `epoll_wait` for at most `timeout_ms` (-1: forever); the tokens of ready fds.
pub(crate) fn epoll_wait(
    ep: BorrowedFd<'_>,
    out: &mut Vec<u64>,
    timeout_ms: i32,
) -> io::Result<()> {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 128];
    // SAFETY: `evs` holds 128 writable entries for the call.
    let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), evs.as_mut_ptr(), 128, timeout_ms) };
    match from_ret(n as isize) {
        Ok(n) => {
            out.extend(evs[..n].iter().map(|e| e.u64));
            Ok(())
        }
        Err(libc::EINTR) => Ok(()),
        Err(e) => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `accept4(fd, SOCK_CLOEXEC)` on a non-blocking listener.
pub(crate) fn accept(fd: BorrowedFd<'_>) -> Result<OwnedFd, i32> {
    loop {
        // SAFETY: null address arguments are allowed; the listener is borrowed.
        let r = unsafe {
            libc::accept4(
                fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        match from_ret(r as isize) {
            Err(libc::EINTR) => continue,
            // SAFETY: a new fd nobody else owns.
            Ok(n) => return Ok(unsafe { OwnedFd::from_raw_fd(n as i32) }),
            Err(e) => return Err(e),
        }
    }
}

/// `recv(fd, buf, MSG_DONTWAIT)`. EINTR is retried.
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, i32> {
    loop {
        // SAFETY: `buf` is valid for writes of its length; the fd is borrowed.
        let r = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match from_ret(r) {
            Err(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// A non-blocking, close-on-exec `eventfd` (wakes a ring's driver or an epoll loop).
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory arguments.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd (best effort: a full counter still wakes the reader).
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd that the borrow keeps open.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Empties a non-blocking eventfd (its readiness is re-armed by the next signal).
pub(crate) fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64 from an eventfd the borrow keeps open.
    unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
}
