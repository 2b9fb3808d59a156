//! `sendfile` and `sendfile_with` (Python's `os.sendfile`).

use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use crate::flags::SendfileFlags;
use crate::sys;
use crate::util::{check_offset, clamp};

/// Copies up to `count` bytes from file `in_fd` to `out_fd` inside the kernel.
///
/// Wraps `sendfile(2)`. With `offset: None` the bytes are read from `in_fd`'s current
/// position, which advances by the count returned; with `Some(off)` they are read from
/// `off` and the position is left alone. Returns the bytes sent: possibly fewer than
/// `count`, 0 at end of file, and 0 at once when `count == 0` (the Linux meaning; BSD
/// builds send until EOF, as Python documents).
///
/// `in_fd` must support mmap-like reads (a regular file or block device): a pipe or
/// socket is `EINVAL`. `out_fd` may be a socket, a pipe or a file. On a non-blocking
/// socket a call that can send nothing fails with `WouldBlock` (`EAGAIN`) and leaves
/// the position unchanged. A `count` above [`MAX_CHUNK`](crate::MAX_CHUNK) is clamped;
/// an `offset` above `i64::MAX` is `InvalidInput`. `EINTR` is retried.
///
/// Sending from a regular file passes page-cache pages by reference: a write to the
/// file after this returns can still show in what the peer receives. Do not rewrite a
/// file in place while it is being sent.
///
/// Writing into a socket whose peer is gone raises `SIGPIPE` in the kernel's
/// `sendfile` path (there is no `MSG_NOSIGNAL` for it): a host that has not ignored
/// SIGPIPE (Rust programs do by default) is killed. Use [`socket_sendfile`](crate::socket_sendfile)
/// or ignore SIGPIPE.
///
/// ```
/// use std::io::{Read, Seek, Write};
/// let mut src = tempfile::tempfile()?;
/// src.write_all(b"0123456789")?;
/// src.rewind()?;
/// let (mut r, w) = std::io::pipe()?;
/// assert_eq!(ferry_compat::sendfile(&w, &src, None, 4)?, 4);
/// assert_eq!(src.stream_position()?, 4); // None: the position moved
/// assert_eq!(ferry_compat::sendfile(&w, &src, Some(8), 100)?, 2);
/// assert_eq!(src.stream_position()?, 4); // Some: it did not
/// drop(w);
/// let mut got = String::new();
/// r.read_to_string(&mut got)?;
/// assert_eq!(got, "012389");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [sendfile(2)](https://man7.org/linux/man-pages/man2/sendfile.2.html),
/// [Python `os.sendfile`](https://docs.python.org/3/library/os.html#os.sendfile)
#[doc(alias = "sendfile64")]
pub fn sendfile(
    out_fd: impl AsFd,
    in_fd: impl AsFd,
    offset: Option<u64>,
    count: usize,
) -> io::Result<usize> {
    let offset = check_offset("offset", offset)?;
    sys::sendfile(out_fd.as_fd(), in_fd.as_fd(), offset, clamp(count))
}

/// [`sendfile`] with header and trailer buffers sent before and after the file data.
///
/// FreeBSD and macOS do this in one `sendfile(2)` call. On Linux it is emulated: the
/// headers are sent with `MSG_MORE` (so they leave in the same segment as the start of
/// the body), then the body with `sendfile` until `count` bytes or end of file, then the
/// trailers. The return value counts headers, body and trailers, like the BSD call. An
/// error after some bytes went out ends the call with the count so far (as BSD reports
/// `sbytes` with `EAGAIN`); an error before any byte is returned as the error. Header and
/// trailer writes use `MSG_NOSIGNAL`; non-socket `out_fd`s get `writev`.
///
/// `flags` ([`SendfileFlags`]) are honoured on FreeBSD; Linux accepts and ignores them.
/// On Linux `count == 0` sends no body (headers and trailers still go); on BSD it means
/// "until end of file".
///
/// ```
/// use std::io::{IoSlice, Read, Write};
/// use ferry_compat::{sendfile_with, SendfileFlags};
/// let mut body = tempfile::tempfile()?;
/// body.write_all(b"body")?;
/// let (mut r, w) = std::io::pipe()?;
/// let n = sendfile_with(&w, &body, Some(0), 4,
///     &[IoSlice::new(b"head ")], &[IoSlice::new(b" tail")], SendfileFlags::empty())?;
/// assert_eq!(n, 14);
/// drop(w);
/// let mut got = String::new();
/// r.read_to_string(&mut got)?;
/// assert_eq!(got, "head body tail");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [FreeBSD sendfile(2)](https://man.freebsd.org/cgi/man.cgi?query=sendfile&sektion=2),
/// [sendmsg(2)](https://man7.org/linux/man-pages/man2/sendmsg.2.html) (`MSG_MORE`),
/// [Python `os.sendfile`](https://docs.python.org/3/library/os.html#os.sendfile)
pub fn sendfile_with(
    out_fd: impl AsFd,
    in_fd: impl AsFd,
    offset: Option<u64>,
    count: usize,
    headers: &[IoSlice<'_>],
    trailers: &[IoSlice<'_>],
    flags: SendfileFlags,
) -> io::Result<usize> {
    let offset = check_offset("offset", offset)?;
    sys::sendfile_with(
        out_fd.as_fd(),
        in_fd.as_fd(),
        offset,
        clamp(count),
        headers,
        trailers,
        flags,
    )
}
