//! Portable POSIX calls of the engine (compiled everywhere).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::from_ret;

/// Socket sends never raise SIGPIPE: a dead peer is `EPIPE`. (macOS has no flag.)
#[cfg(not(target_vendor = "apple"))]
const NOSIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(target_vendor = "apple")]
const NOSIGNAL: libc::c_int = 0;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const MSG_MORE: libc::c_int = libc::MSG_MORE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const MSG_MORE: libc::c_int = 0;

/// What `fstat` says of an fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileType {
    Regular,
    Socket,
    Fifo,
    Other,
}

/// `fstat(fd)`.
fn raw_stat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the whole struct on success; it is read only then.
    unsafe {
        if libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(st.assume_init())
    }
}

/// `fstat(fd)`: the fd's type and size.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<(FileType, u64)> {
    let st = raw_stat(fd)?;
    let t = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => FileType::Regular,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFIFO => FileType::Fifo,
        _ => FileType::Other,
    };
    Ok((t, st.st_size as u64))
}

/// What identifies a file's contents at one moment: device, inode, size, and the
/// modification and change times (ns). Equal stamps before and after a read mean the
/// bytes read are the file's; a later write changes `ctime` (which no one can set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub regular: bool,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// `fstat(fd)` as a [`Stamp`].
pub(crate) fn stamp(fd: BorrowedFd<'_>) -> io::Result<Stamp> {
    let st = raw_stat(fd)?;
    Ok(Stamp {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        size: st.st_size as u64,
        regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
    })
}

/// `fcntl(fd, F_GETFL)`: access mode and status flags.
pub(crate) fn get_fl(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: F_GETFL takes no argument and only reads the fd's flags.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if fl == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl)
}

/// `lseek(fd, 0, SEEK_CUR)`: the file position.
pub(crate) fn position(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: lseek has no memory arguments.
    let p = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_CUR) };
    if p < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(p as u64)
}

/// `send(fd, buf, MSG_NOSIGNAL [| MSG_MORE] [| MSG_DONTWAIT])`. EINTR is retried.
pub(crate) fn send(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    more: bool,
    dontwait: bool,
) -> Result<usize, i32> {
    let mut flags = NOSIGNAL;
    if more {
        flags |= MSG_MORE;
    }
    if dontwait {
        flags |= libc::MSG_DONTWAIT;
    }
    loop {
        // SAFETY: `buf` is valid for reads of its length; the borrow keeps the fd open.
        let r = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
        match from_ret(r) {
            Err(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// `sendmsg(parts, MSG_DONTWAIT | MSG_NOSIGNAL)`: the parts in order, in one call,
/// never waiting (a full socket buffer is `EAGAIN`). EINTR is retried.
pub(crate) fn send_gather(fd: BorrowedFd<'_>, parts: [&[u8]; 3]) -> Result<usize, i32> {
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iov = [empty; 3];
    let mut n = 0;
    for p in parts.iter().filter(|p| !p.is_empty()) {
        iov[n] = libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
        n += 1;
    }
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = n as _;
    loop {
        // SAFETY: every iovec describes a live slice that is only read during the
        // call; `iov` outlives it; the borrow keeps the fd open.
        let r = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, NOSIGNAL | libc::MSG_DONTWAIT) };
        match from_ret(r) {
            Err(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// `pwrite` at `off`, or `write` when `off` is `None`. EINTR is retried.
pub(crate) fn write_at(fd: BorrowedFd<'_>, buf: &[u8], off: Option<u64>) -> Result<usize, i32> {
    loop {
        // SAFETY: `buf` is valid for reads of its length; the borrow keeps the fd open.
        let r = unsafe {
            match off {
                Some(o) => libc::pwrite(
                    fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    o as libc::off_t,
                ),
                None => libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()),
            }
        };
        match from_ret(r) {
            Err(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// `pread` at `off`, or `read` when `off` is `None`. EINTR is retried.
pub(crate) fn read_at(fd: BorrowedFd<'_>, buf: &mut [u8], off: Option<u64>) -> Result<usize, i32> {
    loop {
        // SAFETY: `buf` is valid for writes of its length; the borrow keeps the fd open.
        let r = unsafe {
            match off {
                Some(o) => libc::pread(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    o as libc::off_t,
                ),
                None => libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()),
            }
        };
        match from_ret(r) {
            Err(libc::EINTR) => continue,
            other => return other,
        }
    }
}

/// `poll` one fd for `writable` (POLLOUT) or readable (POLLIN), at most `timeout_ms`.
/// `Ok(true)`: ready (or hung up / in error: the next call reports it).
pub(crate) fn poll(fd: BorrowedFd<'_>, writable: bool, timeout_ms: i32) -> Result<bool, i32> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: if writable {
            libc::POLLOUT
        } else {
            libc::POLLIN
        },
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the borrow keeps the fd open.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    match from_ret(n as isize) {
        Ok(n) => Ok(n > 0),
        Err(libc::EINTR) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `shutdown(fd, SHUT_WR)`: the peer reads EOF; reading from `fd` goes on.
pub(crate) fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no memory arguments; the borrow keeps the fd open.
    if unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An `int` socket option (`SOL_SOCKET`): `SO_ACCEPTCONN`, `SO_ERROR` …
pub(crate) fn socket_option(fd: BorrowedFd<'_>, option: libc::c_int) -> Result<libc::c_int, i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are live and sized for an int option.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    from_ret(r as isize).map(|_| v)
}

/// Whether a socket is listening (`SO_ACCEPTCONN`).
pub(crate) fn is_listening(fd: BorrowedFd<'_>) -> io::Result<bool> {
    socket_option(fd, libc::SO_ACCEPTCONN)
        .map(|v| v != 0)
        .map_err(io::Error::from_raw_os_error)
}

/// `close(fd)`, with its result (`OwnedFd`'s drop ignores it).
pub(crate) fn close(fd: OwnedFd) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    // SAFETY: we own the fd and give it up here; it is closed exactly once.
    if unsafe { libc::close(fd.into_raw_fd()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of an fd the kernel has just returned (an accepted connection).
#[cfg_attr(not(ferry_uring), allow(dead_code))]
pub(crate) fn owned_fd(fd: i32) -> OwnedFd {
    // SAFETY: the kernel just created `fd` for us (an accept result) and no one else
    // owns it; it is non-negative (callers pass only successful results).
    unsafe { OwnedFd::from_raw_fd(fd) }
}
