//! Other Unixes: plain `pipe` + `fcntl`, no resizing (F_SETPIPE_SZ is Linux-only).
//! Not compiled on this project's CI machines (Linux); kept small for that reason.
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub(crate) fn max_pipe_size() -> Option<usize> {
    None
}

pub(crate) fn new_pipe(nonblocking: bool, _want: usize) -> io::Result<(OwnedFd, OwnedFd, usize)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` is a valid, writable array of two c_ints.
    cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
    // SAFETY: pipe succeeded; both fds are open and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&r, &w] {
        // SAFETY: plain fcntl calls on an fd we own.
        unsafe {
            cvt(libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC))?;
            if nonblocking {
                let fl = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
                cvt(libc::fcntl(
                    fd.as_raw_fd(),
                    libc::F_SETFL,
                    fl | libc::O_NONBLOCK,
                ))?;
            }
        }
    }
    Ok((r, w, 16384))
}

pub(crate) fn unread_bytes(reader: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points at `n`.
    cvt(unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut n) })?;
    Ok(n as usize)
}
