//! `splice` (Python's `os.splice`).

use std::io;
use std::os::fd::AsFd;

use crate::flags::SpliceFlags;
use crate::sys;
use crate::util::{check_offset, clamp};

/// Moves up to `count` bytes between `src` and `dst`, one of which must be a pipe.
///
/// Wraps `splice(2)`. The pipe side's offset must be `None` (`Some` is `ESPIPE` from the
/// kernel); on the other side `Some(off)` reads or writes at `off` and leaves that fd's
/// position alone, while `None` uses and advances it. Returns the bytes moved; 0 means
/// end of input (file end, socket closed by the peer, no writers left on a pipe), and
/// `count == 0` returns 0 at once. Into a pipe the kernel moves at most its free space.
/// Two non-pipe fds, or a pipe into itself, are `EINVAL`.
///
/// [`SpliceFlags::NONBLOCK`] makes only the *pipe* side non-blocking: a full or empty
/// pipe gives `WouldBlock`, while a blocking socket or file can still block. A `count`
/// above [`MAX_CHUNK`](crate::MAX_CHUNK) is clamped; offsets above `i64::MAX` are
/// `InvalidInput`. `EINTR` is retried.
///
/// Splicing into a socket whose peer is gone raises `SIGPIPE` (no `MSG_NOSIGNAL` exists
/// for splice): ignore SIGPIPE in hosts that embed this (Rust binaries already do).
///
/// ```
/// use std::io::{Read, Write};
/// use ferry_compat::{splice, SpliceFlags};
/// let mut file = tempfile::tempfile()?;
/// file.write_all(b"spliced bytes")?;
/// let (mut r, w) = std::io::pipe()?;
/// // file -> pipe, from offset 8, leaving the file position alone
/// assert_eq!(splice(&file, &w, 100, Some(8), None, SpliceFlags::empty())?, 5);
/// drop(w);
/// let mut got = String::new();
/// r.read_to_string(&mut got)?;
/// assert_eq!(got, "bytes");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [splice(2)](https://man7.org/linux/man-pages/man2/splice.2.html),
/// [Python `os.splice`](https://docs.python.org/3/library/os.html#os.splice)
pub fn splice(
    src: impl AsFd,
    dst: impl AsFd,
    count: usize,
    offset_src: Option<u64>,
    offset_dst: Option<u64>,
    flags: SpliceFlags,
) -> io::Result<usize> {
    let os = check_offset("offset_src", offset_src)?;
    let od = check_offset("offset_dst", offset_dst)?;
    sys::splice(src.as_fd(), dst.as_fd(), clamp(count), os, od, flags.bits())
}
