//! `copy_file_range` (Python's `os.copy_file_range`).

use std::io;
use std::os::fd::AsFd;

use crate::sys;
use crate::util::{check_offset, clamp};

/// Copies up to `count` bytes between two regular files inside the kernel (reflinks or
/// server-side copies where the filesystem can).
///
/// Wraps `copy_file_range(2)` with `flags = 0`. Each offset works as in [`splice`](crate::splice):
/// `None` uses and advances that file's position, `Some(off)` leaves it alone. Returns
/// the bytes copied, 0 at end of `src` or when `count == 0`. A pipe or socket on either
/// side is `EINVAL`, a directory `EISDIR`, an `O_APPEND` destination `EBADF`, files on
/// different filesystems may give `EXDEV` (kernel-dependent). A `count` above
/// [`MAX_CHUNK`](crate::MAX_CHUNK) is clamped; offsets above `i64::MAX` are
/// `InvalidInput`. `EINTR` is retried.
///
/// Callers that loop should treat a 0 on the *first* call as "not supported here, copy
/// another way" (old kernels returned 0 for /proc and some network filesystems), and a 0
/// after progress as end of file.
///
/// ```
/// use std::io::{Read, Seek, Write};
/// let mut src = tempfile::tempfile()?;
/// src.write_all(b"copy me, please")?;
/// let mut dst = tempfile::tempfile()?;
/// assert_eq!(ferry_compat::copy_file_range(&src, &dst, 7, Some(0), None)?, 7);
/// assert_eq!(dst.stream_position()?, 7);
/// dst.rewind()?;
/// let mut got = String::new();
/// dst.read_to_string(&mut got)?;
/// assert_eq!(got, "copy me");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [copy_file_range(2)](https://man7.org/linux/man-pages/man2/copy_file_range.2.html),
/// [Python `os.copy_file_range`](https://docs.python.org/3/library/os.html#os.copy_file_range)
pub fn copy_file_range(
    src: impl AsFd,
    dst: impl AsFd,
    count: usize,
    offset_src: Option<u64>,
    offset_dst: Option<u64>,
) -> io::Result<usize> {
    let os = check_offset("offset_src", offset_src)?;
    let od = check_offset("offset_dst", offset_dst)?;
    sys::copy_file_range(src.as_fd(), dst.as_fd(), clamp(count), os, od)
}
