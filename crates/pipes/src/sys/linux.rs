use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The largest size an unprivileged process may ask for (`/proc/sys/fs/pipe-max-size`).
pub(crate) fn max_pipe_size() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(crate) fn new_pipe(nonblocking: bool, want: usize) -> io::Result<(OwnedFd, OwnedFd, usize)> {
    let mut fds = [-1 as libc::c_int; 2];
    let mut flags = libc::O_CLOEXEC;
    if nonblocking {
        flags |= libc::O_NONBLOCK;
    }
    // SAFETY: `fds` is a valid, writable array of two c_ints, as pipe2 requires.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if want > 0 {
        let want = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ takes an int argument; `w` is an open pipe fd.
        // EPERM here means the per-user budget is spent (or want > pipe-max-size):
        // not fatal, we keep the capacity the kernel gave us.
        let _ = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, want) };
    }
    // SAFETY: F_GETPIPE_SZ takes no argument; `w` is an open pipe fd.
    let size = cvt(unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETPIPE_SZ) })?;
    Ok((r, w, size as usize))
}

pub(crate) fn unread_bytes(reader: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points at `n`,
    // and `reader` is an open fd for the duration of the call.
    cvt(unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut n) })?;
    Ok(n as usize)
}
