//! `set_blocking`/`get_blocking`, `set_inheritable`/`get_inheritable`.

use std::io;
use std::os::fd::AsFd;

use crate::sys::common::{fcntl_get as getfl, fcntl_set as setfl};

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description.
///
/// Wraps `fcntl(F_GETFL)` + `fcntl(F_SETFL)` (skipped when nothing changes). The flag
/// belongs to the open file description, so every duplicate of `fd` (`dup`, fork,
/// `try_clone`) sees the change, as in Python.
///
/// ```
/// let (r, _w) = std::io::pipe()?;
/// ferry_compat::set_blocking(&r, false)?;
/// assert!(!ferry_compat::get_blocking(&r)?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html),
/// [Python `os.set_blocking`](https://docs.python.org/3/library/os.html#os.set_blocking)
pub fn set_blocking(fd: impl AsFd, blocking: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let old = getfl(fd, libc::F_GETFL)?;
    let new = if blocking {
        old & !libc::O_NONBLOCK
    } else {
        old | libc::O_NONBLOCK
    };
    if new != old {
        setfl(fd, libc::F_SETFL, new)?;
    }
    Ok(())
}

/// Whether `fd` is in blocking mode (`O_NONBLOCK` clear).
///
/// ```
/// let (r, _w) = std::io::pipe()?;
/// assert!(ferry_compat::get_blocking(&r)?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html),
/// [Python `os.get_blocking`](https://docs.python.org/3/library/os.html#os.get_blocking)
pub fn get_blocking(fd: impl AsFd) -> io::Result<bool> {
    Ok(getfl(fd, libc::F_GETFL)? & libc::O_NONBLOCK == 0)
}

/// Sets whether `fd` is inherited by programs this process `exec`s (clears or sets
/// `FD_CLOEXEC`).
///
/// Wraps `fcntl(F_SETFD)`. Unlike `O_NONBLOCK`, the flag belongs to this descriptor
/// only, not to its duplicates.
///
/// ```
/// let (r, _w) = std::io::pipe()?;
/// assert!(!ferry_compat::get_inheritable(&r)?); // Rust opens fds O_CLOEXEC
/// ferry_compat::set_inheritable(&r, true)?;
/// assert!(ferry_compat::get_inheritable(&r)?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html),
/// [Python `os.set_inheritable`](https://docs.python.org/3/library/os.html#os.set_inheritable)
pub fn set_inheritable(fd: impl AsFd, inheritable: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let old = getfl(fd, libc::F_GETFD)?;
    let new = if inheritable {
        old & !libc::FD_CLOEXEC
    } else {
        old | libc::FD_CLOEXEC
    };
    if new != old {
        setfl(fd, libc::F_SETFD, new)?;
    }
    Ok(())
}

/// Whether `fd` is inherited across `exec` (`FD_CLOEXEC` clear).
///
/// ```
/// let f = tempfile::tempfile()?;
/// assert!(!ferry_compat::get_inheritable(&f)?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html),
/// [Python `os.get_inheritable`](https://docs.python.org/3/library/os.html#os.get_inheritable)
pub fn get_inheritable(fd: impl AsFd) -> io::Result<bool> {
    Ok(getfl(fd, libc::F_GETFD)? & libc::FD_CLOEXEC == 0)
}
