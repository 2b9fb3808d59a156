//! Submit-time checks: what each fd is, whether it may play its role, where the
//! transfer starts. Bad input is refused here with `InvalidInput` naming the argument.
//! The kind of each fd is cached per `Arc` so a file or socket submitted again and
//! again is not `fstat`ed every time.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, Mutex, Weak};

use crate::resolved::{FdKind, Resolved};
use crate::sys::{self, FileType};
use crate::transfer::{SharedFd, Transfer, TransferKind};

fn invalid(arg: &str, why: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{arg}: {why}"))
}

fn fd_kind(fd: std::os::fd::BorrowedFd<'_>, arg: &str) -> io::Result<(FdKind, u64)> {
    let (t, size) = sys::fstat(fd).map_err(|e| invalid(arg, format!("fstat failed: {e}")))?;
    let kind = match t {
        FileType::Regular => FdKind::File,
        FileType::Socket => FdKind::Socket,
        FileType::Fifo => FdKind::Pipe,
        FileType::Other => return Err(invalid(arg, "must be a regular file, a socket or a pipe")),
    };
    Ok((kind, size))
}

/// Checks the access mode and flags of `fd` for its role.
fn check_flags(kind: FdKind, fl: i32, arg: &str) -> io::Result<()> {
    let acc = fl & libc::O_ACCMODE;
    if arg == "src" && acc == libc::O_WRONLY {
        return Err(invalid(arg, "not open for reading"));
    }
    if arg == "dst" && kind != FdKind::Socket && acc == libc::O_RDONLY {
        return Err(invalid(arg, "not open for writing"));
    }
    if arg == "dst" && kind == FdKind::File && fl & libc::O_APPEND != 0 {
        return Err(invalid(
            arg,
            "an O_APPEND file cannot be a destination (splice/copy refuse it)",
        ));
    }
    Ok(())
}

/// A cached fd: the Arc it came through (weakly), its number and kind.
type CacheEntry = (Weak<dyn AsFd + Send + Sync>, RawFd, FdKind);

/// Remembers the kind of each fd the engine has accepted, per `Arc`.
///
/// Keyed by the Arc's address; the entry holds a `Weak`, which keeps that allocation
/// from being reused while the entry exists, so a live upgrade with the same address
/// and the same fd number is the same open file. Bounded: cleared when full. Entries
/// whose `Arc` is gone are dropped when the map doubles and by `prune`: each pins a
/// small allocation, and thousands of them scattered over the heap kept megabytes of
/// freed connection state from going back to the kernel after a crowd left.
#[derive(Default)]
pub(crate) struct FdCache {
    map: Mutex<HashMap<usize, CacheEntry>>,
}

const FD_CACHE_MAX: usize = 4096;
/// Entries below this are never pruned on `put` (not worth the walk).
const FD_CACHE_PRUNE: usize = 64;

impl FdCache {
    fn key(arc: &SharedFd) -> usize {
        Arc::as_ptr(arc) as *const () as usize
    }

    fn get(&self, arc: &SharedFd, fd: RawFd) -> Option<FdKind> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (weak, f, kind) = map.get(&Self::key(arc))?;
        (*f == fd && weak.upgrade().is_some_and(|a| Arc::ptr_eq(&a, arc))).then_some(*kind)
    }

    fn put(&self, arc: &SharedFd, fd: RawFd, kind: FdKind) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.len();
        if n >= FD_CACHE_PRUNE && n.is_power_of_two() {
            prune_dead(&mut map);
        }
        if map.len() >= FD_CACHE_MAX {
            map.clear();
        }
        map.insert(Self::key(arc), (Arc::downgrade(arc), fd, kind));
    }

    /// Drops the entries whose `Arc` is gone (and their room).
    pub(crate) fn prune(&self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        prune_dead(&mut map);
    }
}

fn prune_dead(map: &mut HashMap<usize, CacheEntry>) {
    map.retain(|_, (weak, _, _)| weak.strong_count() > 0);
    if map.capacity() > 2 * FD_CACHE_PRUNE && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// Checks the fds and arguments of `t` and resolves offsets.
pub(crate) fn resolve(t: &Transfer, cache: &FdCache) -> io::Result<Resolved> {
    let (src, dst) = (t.src.as_fd(), t.dst.as_fd());
    let (src_fd, dst_fd) = (src.as_raw_fd(), dst.as_raw_fd());
    let src_cached = cache.get(&t.src, src_fd);
    let dst_cached = cache.get(&t.dst, dst_fd);
    let (src_kind, mut src_size) = match src_cached {
        Some(k) => (k, None),
        None => fd_kind(src, "src").map(|(k, s)| (k, Some(s)))?,
    };
    let dst_kind = match dst_cached {
        Some(k) => k,
        None => fd_kind(dst, "dst")?.0,
    };
    // A file source seen before needs no fcntl (its access mode cannot change);
    // streams are asked every time (O_NONBLOCK can change), and so is dst (O_APPEND).
    let src_fl = if src_cached == Some(FdKind::File) {
        libc::O_RDONLY
    } else {
        sys::get_fl(src).map_err(|e| invalid("src", e))?
    };
    check_flags(src_kind, src_fl, "src")?;
    // A socket seen before has no flags to check (O_APPEND and the access mode do not
    // apply): save the fcntl per response.
    let dst_fl = if dst_cached == Some(FdKind::Socket) {
        None
    } else {
        let fl = sys::get_fl(dst).map_err(|e| invalid("dst", e))?;
        check_flags(dst_kind, fl, "dst")?;
        Some(fl)
    };
    // Without `len` the file's size at submit sizes the buffers and MORE hints.
    if src_kind == FdKind::File && t.len.is_none() && src_size.is_none() {
        src_size = Some(fd_kind(src, "src")?.1);
    }
    if src_fd == dst_fd {
        return Err(invalid("dst", "is the same fd as src"));
    }
    let max = i64::MAX as u64;
    let (src_off, src_avail) = match src_kind {
        FdKind::File => {
            let off = match t.src_offset {
                Some(o) if o > max => return Err(invalid("src_offset", "larger than i64::MAX")),
                Some(o) => o,
                None => sys::position(src).map_err(|e| invalid("src", e))?,
            };
            (Some(off), src_size.map(|s| s.saturating_sub(off)))
        }
        _ if t.src_offset.is_some() => {
            return Err(invalid(
                "src_offset",
                "a socket or pipe source has no offsets (use None)",
            ))
        }
        _ => (None, None),
    };
    if let (Some(len), Some(off)) = (t.len, src_off) {
        if off.checked_add(len).is_none_or(|end| end > max) {
            return Err(invalid("len", "src_offset + len overflows i64"));
        }
    }
    if t.seal.is_some() && dst_kind == FdKind::File {
        return Err(invalid(
            "seal",
            "a sealed transfer's dst must be a socket or pipe, not a file",
        ));
    }
    let dst_off = match dst_kind {
        FdKind::File => Some(sys::position(dst).map_err(|e| invalid("dst", e))?),
        _ => None,
    };
    let kind = match (src_kind, dst_kind) {
        (FdKind::File, FdKind::Socket) => TransferKind::FileToSocket,
        (FdKind::File, FdKind::File) => TransferKind::FileToFile,
        (FdKind::File, FdKind::Pipe) => TransferKind::FileToPipe,
        (FdKind::Socket, FdKind::Socket) => TransferKind::SocketToSocket,
        _ => TransferKind::StreamOther,
    };
    if src_cached.is_none() {
        cache.put(&t.src, src_fd, src_kind);
    }
    if dst_cached.is_none() {
        cache.put(&t.dst, dst_fd, dst_kind);
    }
    Ok(Resolved {
        kind,
        src_kind,
        dst_kind,
        src_off,
        dst_off,
        len: t.len,
        src_avail,
        src_nonblocking: src_fl & libc::O_NONBLOCK != 0,
        dst_nonblocking: dst_fl.map(|fl| fl & libc::O_NONBLOCK != 0),
    })
}
