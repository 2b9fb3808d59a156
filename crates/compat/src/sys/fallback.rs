//! Portable emulation with `pread`/`pwrite`/`read`/`write`, for systems without the
//! zero-copy calls. It keeps the Linux contract, including its errors (a pipe as
//! sendfile's source is `EINVAL`, an offset on a pipe is `ESPIPE`, an `O_APPEND`
//! destination of copy_file_range is `EBADF`), so one test suite checks both.
//!
//! Byte accounting is exact: a seekable source is read with `pread` and its position
//! advanced only by what was written. A non-seekable source (pipe, socket) cannot give
//! bytes back, so whatever one call reads from it is written out completely, waiting for
//! writability if the destination is non-blocking: bytes are never dropped, at the cost
//! of a call that may wait where Linux's would return `EAGAIN`.

use std::io::{self, IoSlice};
use std::os::fd::BorrowedFd;

use super::common::{
    fstat, get_fl, lseek, os_err, poll, pread, pwrite, read, write_all_waiting, write_nosignal,
    Kind,
};
use crate::flags::{SendfileFlags, SpliceFlags};

pub(crate) const NAME: &str = "fallback";

/// Bytes moved per read/write round.
const CHUNK: usize = 128 * 1024;

/// Copies from a seekable `src` at `offset` (or its position, advanced afterwards) to
/// `dst` with `write`, until `count`, EOF or a short write. Errors after progress end
/// the call with the bytes moved.
fn copy_seekable(
    src: BorrowedFd<'_>,
    offset: Option<i64>,
    count: usize,
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
) -> io::Result<usize> {
    let start = match offset {
        Some(o) => o,
        None => lseek(src, 0, libc::SEEK_CUR)?,
    };
    let mut buf = vec![0u8; count.min(CHUNK)];
    let mut done = 0usize;
    let result = (|| {
        while done < count {
            let want = (count - done).min(buf.len());
            let n = pread(src, &mut buf[..want], start + done as i64)?;
            if n == 0 {
                break;
            }
            let mut w = 0;
            while w < n {
                match write(&buf[w..n]) {
                    Ok(0) => break,
                    Ok(k) => w += k,
                    Err(e) if done + w == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            done += w;
            if w < n {
                break;
            }
        }
        Ok(())
    })();
    if offset.is_none() && done > 0 {
        lseek(src, start + done as i64, libc::SEEK_SET)?;
    }
    result.map(|()| done)
}

pub(crate) fn sendfile(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    offset: Option<i64>,
    count: usize,
) -> io::Result<usize> {
    match fstat(in_)?.kind {
        _ if count == 0 => Ok(0),
        Kind::Regular | Kind::Block => {
            copy_seekable(in_, offset, count, |b| write_nosignal(out, b))
        }
        // Linux 6.x reads sockets too (splice_read); an offset cannot apply to them.
        Kind::Socket if offset.is_some() => Err(os_err(libc::ESPIPE)),
        Kind::Socket => {
            let mut buf = vec![0u8; count.min(CHUNK)];
            let n = read(in_, &mut buf)?;
            write_all_waiting(out, &buf[..n])?;
            Ok(n)
        }
        _ => Err(os_err(libc::EINVAL)), // pipes and the rest are not sendfile sources
    }
}

pub(crate) fn sendfile_with(
    out: BorrowedFd<'_>,
    in_: BorrowedFd<'_>,
    offset: Option<i64>,
    count: usize,
    headers: &[IoSlice<'_>],
    trailers: &[IoSlice<'_>],
    _flags: SendfileFlags,
) -> io::Result<usize> {
    super::common::sendfile_with_emulated(out, in_, offset, count, headers, trailers, sendfile)
}

/// Free space of a pipe, where the OS tells (Linux); `None` elsewhere.
fn pipe_space(fd: BorrowedFd<'_>) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: F_GETPIPE_SZ takes no argument.
        let cap = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let mut used: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int into `used`.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut used) };
        (cap > 0 && r == 0).then(|| (cap - used).max(0) as usize)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
}

pub(crate) fn splice(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    count: usize,
    off_src: Option<i64>,
    off_dst: Option<i64>,
    flags: u32,
) -> io::Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    let (ss, sd) = (fstat(src)?, fstat(dst)?);
    let (src_pipe, dst_pipe) = (ss.kind == Kind::Fifo, sd.kind == Kind::Fifo);
    if !src_pipe && !dst_pipe {
        return Err(os_err(libc::EINVAL));
    }
    if (src_pipe && off_src.is_some()) || (dst_pipe && off_dst.is_some()) {
        return Err(os_err(libc::ESPIPE));
    }
    if src_pipe && dst_pipe && (ss.dev, ss.ino) == (sd.dev, sd.ino) {
        return Err(os_err(libc::EINVAL));
    }
    let nonblock = flags & SpliceFlags::NONBLOCK.bits() != 0;
    if nonblock && src_pipe && !poll(src, libc::POLLIN, 0)? {
        return Err(os_err(libc::EAGAIN));
    }
    if nonblock && dst_pipe && !poll(dst, libc::POLLOUT, 0)? {
        return Err(os_err(libc::EAGAIN));
    }
    // Into a pipe, move at most its free space, as the kernel does.
    let mut count = count.min(CHUNK);
    if dst_pipe {
        if let Some(space) = pipe_space(dst) {
            count = count.min(space.max(1));
        }
    }
    if matches!(ss.kind, Kind::Regular | Kind::Block) {
        // File into a pipe (the only seekable-source case: the other side is the pipe).
        return copy_seekable(src, off_src, count, |b| write_nosignal(dst, b));
    }
    // Non-seekable source: one read, then write all of it.
    let mut buf = vec![0u8; count];
    let n = read(src, &mut buf)?;
    match off_dst {
        Some(o) => {
            let mut w = 0;
            while w < n {
                w += pwrite(dst, &buf[w..n], o + w as i64)?;
            }
        }
        None => write_all_waiting(dst, &buf[..n])?,
    }
    Ok(n)
}

pub(crate) fn copy_file_range(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    count: usize,
    off_src: Option<i64>,
    off_dst: Option<i64>,
) -> io::Result<usize> {
    let (ss, sd) = (fstat(src)?, fstat(dst)?);
    if ss.kind == Kind::Dir || sd.kind == Kind::Dir {
        return Err(os_err(libc::EISDIR));
    }
    if ss.kind != Kind::Regular || sd.kind != Kind::Regular {
        return Err(os_err(libc::EINVAL));
    }
    if get_fl(dst)? & libc::O_APPEND != 0 {
        return Err(os_err(libc::EBADF));
    }
    if count == 0 {
        return Ok(0);
    }
    let dst_start = match off_dst {
        Some(o) => o,
        None => lseek(dst, 0, libc::SEEK_CUR)?,
    };
    let mut written = 0i64;
    let moved = copy_seekable(src, off_src, count, |b| {
        let n = pwrite(dst, b, dst_start + written)?;
        written += n as i64;
        Ok(n)
    })?;
    if off_dst.is_none() && moved > 0 {
        lseek(dst, dst_start + moved as i64, libc::SEEK_SET)?;
    }
    Ok(moved)
}
