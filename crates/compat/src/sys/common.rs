//! Portable Unix helpers shared by every OS module: file kinds, positions, socket
//! writes that never raise SIGPIPE, and readiness waits.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::util::{cvt, cvt_r};

/// Socket sends never raise SIGPIPE in an embedding host (C, Python): the error comes
/// back as `EPIPE` instead. macOS has no `MSG_NOSIGNAL` (it uses `SO_NOSIGPIPE`).
#[cfg(not(target_vendor = "apple"))]
const NOSIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
const NOSIGNAL: libc::c_int = 0;

#[cfg(any(target_os = "linux", target_os = "android"))]
const MORE: libc::c_int = libc::MSG_MORE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MORE: libc::c_int = 0;

/// What kind of object an fd refers to, from `fstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Block,
    Fifo,
    Socket,
    Dir,
    Other,
}

pub(crate) struct Stat {
    pub kind: Kind,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the whole struct on success; we read it only then.
    let st = unsafe {
        cvt(libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()))?;
        st.assume_init()
    };
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Kind::Regular,
        libc::S_IFBLK => Kind::Block,
        libc::S_IFIFO => Kind::Fifo,
        libc::S_IFSOCK => Kind::Socket,
        libc::S_IFDIR => Kind::Dir,
        _ => Kind::Other,
    };
    Ok(Stat {
        kind,
        size: st.st_size as u64,
        #[allow(clippy::unnecessary_cast)]
        dev: st.st_dev as u64,
        #[allow(clippy::unnecessary_cast)]
        ino: st.st_ino as u64,
    })
}

pub(crate) fn os_err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

pub(crate) fn get_fl(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFL takes no argument and only reads the fd's flags.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })
}

/// `fcntl(fd, cmd)` for the commands that take no argument (`F_GETFL`, `F_GETFD`).
pub(crate) fn fcntl_get(fd: impl AsFd, cmd: libc::c_int) -> io::Result<libc::c_int> {
    debug_assert!(cmd == libc::F_GETFL || cmd == libc::F_GETFD);
    // SAFETY: F_GETFL/F_GETFD take no argument; the fd is borrowed for the call.
    cvt(unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), cmd) })
}

/// `fcntl(fd, cmd, val)` for the commands that take an int (`F_SETFL`, `F_SETFD`).
pub(crate) fn fcntl_set(fd: impl AsFd, cmd: libc::c_int, val: libc::c_int) -> io::Result<()> {
    debug_assert!(cmd == libc::F_SETFL || cmd == libc::F_SETFD);
    // SAFETY: F_SETFL/F_SETFD take an int argument; the fd is borrowed for the call.
    cvt(unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), cmd, val) }).map(drop)
}

/// An int socket option at `SOL_SOCKET` (`SO_TYPE`, `SO_DOMAIN` …).
pub(crate) fn getsockopt_int(sock: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val`/`len` are live locals of the size we pass.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(val)
}

/// The socket's write timeout (`SO_SNDTIMEO`), `None` when unset.
pub(crate) fn send_timeout(sock: BorrowedFd<'_>) -> io::Result<Option<std::time::Duration>> {
    // SAFETY: an all-zero timeval is a valid value.
    let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: `tv`/`len` are live locals of the size we pass.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    })?;
    let d = std::time::Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    Ok((!d.is_zero()).then_some(d))
}

pub(crate) fn lseek(fd: BorrowedFd<'_>, off: i64, whence: libc::c_int) -> io::Result<i64> {
    #[allow(clippy::unnecessary_cast)] // off_t is i32 on some 32-bit targets
    // SAFETY: lseek has no memory arguments.
    cvt(unsafe { libc::lseek(fd.as_raw_fd(), off as libc::off_t, whence) }).map(|o| o as i64)
}

pub(crate) fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], off: i64) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    cvt_r(|| unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            off as libc::off_t,
        )
    })
    .map(|n| n as usize)
}

pub(crate) fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], off: i64) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
    cvt_r(|| unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            off as libc::off_t,
        )
    })
    .map(|n| n as usize)
}

pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    cvt_r(|| unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
        .map(|n| n as usize)
}

/// Writes to `fd` with `send(MSG_NOSIGNAL)` when it is a socket, `write` otherwise.
pub(crate) fn write_nosignal(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    writev_nosignal(fd, &[IoSlice::new(buf)], false)
}

/// `sendmsg` with `MSG_NOSIGNAL` (and `MSG_MORE` when `more`) on a socket, `writev` on
/// anything else (`ENOTSOCK` tells which).
pub(crate) fn writev_nosignal(
    fd: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    more: bool,
) -> io::Result<usize> {
    let iovcnt = bufs.len().min(1024);
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec (documented by std).
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iovcnt as _;
    let flags = NOSIGNAL | if more { MORE } else { 0 };
    // SAFETY: `msg` points at `iovcnt` valid iovecs borrowed from `bufs` for the call.
    match cvt_r(|| unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) }) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            // SAFETY: as above; writev reads `iovcnt` iovecs from `bufs`.
            cvt_r(|| unsafe {
                libc::writev(
                    fd.as_raw_fd(),
                    bufs.as_ptr() as *const libc::iovec,
                    iovcnt as libc::c_int,
                )
            })
            .map(|n| n as usize)
        }
        other => other.map(|n| n as usize),
    }
}

/// Waits until `fd` is ready for `events`; `timeout_ms < 0` waits forever.
/// Returns false on timeout. Error/hang-up conditions count as ready (the next call
/// reports them).
pub(crate) fn poll(fd: BorrowedFd<'_>, events: libc::c_short, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let n = cvt_r(|| unsafe { libc::poll(&mut pfd, 1, timeout_ms) })?;
    Ok(n > 0)
}

/// Writes all of `buf`, waiting for writability when the fd is non-blocking, so that
/// bytes already taken from a non-seekable source are never dropped.
pub(crate) fn write_all_waiting(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match write_nosignal(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                poll(fd, libc::POLLOUT, -1)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One `sendfile` call of an OS module.
pub(crate) type SendfileFn =
    fn(BorrowedFd<'_>, BorrowedFd<'_>, Option<i64>, usize) -> io::Result<usize>;

/// `sendfile` with headers and trailers where the kernel has no such call: headers with
/// `MSG_MORE`, the body with `sendfile` until `count` bytes or EOF, then trailers.
/// Returns the total of all three. An error after some bytes went out ends the call with
/// that count (like BSD's sendfile reporting `sbytes` with `EAGAIN`).
pub(crate) fn sendfile_with_emulated(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    offset: Option<i64>,
    count: usize,
    headers: &[IoSlice<'_>],
    trailers: &[IoSlice<'_>],
    sendfile: SendfileFn,
) -> io::Result<usize> {
    let mut total = 0usize;
    let result = (|| {
        let body_follows = count > 0 || !trailers.is_empty();
        if !send_all(out, headers, body_follows, &mut total)? {
            return Ok(());
        }
        let mut body = 0usize;
        while body < count {
            let off = offset.map(|o| o + body as i64);
            let n = sendfile(out, in_, off, count - body)?;
            if n == 0 {
                break; // EOF: the trailers still follow
            }
            body += n;
            total += n;
        }
        send_all(out, trailers, false, &mut total).map(drop)
    })();
    match result {
        Err(e) if total == 0 => Err(e),
        _ => Ok(total),
    }
}

/// Sends every byte of `bufs`, adding to `total` as it goes. Ok(false) when a send
/// moved nothing (the caller stops there).
fn send_all(
    out: BorrowedFd<'_>,
    bufs: &[IoSlice<'_>],
    more: bool,
    total: &mut usize,
) -> io::Result<bool> {
    let mut left: Vec<IoSlice<'_>> = bufs.iter().filter(|b| !b.is_empty()).copied().collect();
    let mut slices = &mut left[..];
    while !slices.is_empty() {
        let n = writev_nosignal(out, slices, more)?;
        if n == 0 {
            return Ok(false);
        }
        *total += n;
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(true)
}
