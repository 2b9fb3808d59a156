//! `Transfer`: what to move, and its checks and plan at submit time.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// An fd the engine keeps alive until the kernel is done with it.
pub(crate) type SharedFd = Arc<dyn AsFd + Send + Sync>;

/// One transfer: `len` bytes (or until end of input) from `src` to `dst`, optionally
/// preceded by a header and followed by a trailer.
///
/// `src` is a regular file (read at `src_offset`, or at its position at submit time when
/// `None`; the file position is never changed) or a stream: a socket or pipe (then
/// `src_offset` must be `None`). `dst` is a socket, a pipe or a regular file (a file is
/// written at its position at submit time; its position is not changed).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ferry_engine::Transfer;
/// let file = Arc::new(tempfile::tempfile()?);
/// let (_r, w) = std::io::pipe()?;
/// let t = Transfer::new(file, Arc::new(w))
///     .src_offset(Some(0))
///     .len(Some(0))
///     .header(b"HTTP/1.1 200 OK\r\n\r\n".to_vec())
///     .timeout(Duration::from_secs(5));
/// # drop(t);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Transfer {
    pub(crate) src: SharedFd,
    pub(crate) dst: SharedFd,
    pub(crate) src_offset: Option<u64>,
    pub(crate) len: Option<u64>,
    pub(crate) header: Vec<u8>,
    pub(crate) trailer: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
}

impl fmt::Debug for Transfer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transfer")
            .field("src", &self.src.as_fd())
            .field("dst", &self.dst.as_fd())
            .field("src_offset", &self.src_offset)
            .field("len", &self.len)
            .field("header_len", &self.header.len())
            .field("trailer_len", &self.trailer.len())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Transfer {
    /// A transfer of everything from `src` (until end of file / end of stream) to `dst`.
    pub fn new<S, D>(src: Arc<S>, dst: Arc<D>) -> Transfer
    where
        S: AsFd + Send + Sync + 'static,
        D: AsFd + Send + Sync + 'static,
    {
        Transfer {
            src,
            dst,
            src_offset: None,
            len: None,
            header: Vec::new(),
            trailer: Vec::new(),
            timeout: None,
        }
    }

    /// Where to start reading a file source (`None`: its position at submit time).
    pub fn src_offset(mut self, offset: Option<u64>) -> Self {
        self.src_offset = offset;
        self
    }

    /// How many body bytes to move (`None`: until end of input). A source that ends
    /// earlier makes the transfer fail with `UnexpectedEof`.
    pub fn len(mut self, len: Option<u64>) -> Self {
        self.len = len;
        self
    }

    /// Bytes written to `dst` before the body (e.g. an HTTP response head).
    pub fn header(mut self, header: impl Into<Vec<u8>>) -> Self {
        self.header = header.into();
        self
    }

    /// Bytes written to `dst` after the body.
    pub fn trailer(mut self, trailer: impl Into<Vec<u8>>) -> Self {
        self.trailer = trailer.into();
        self
    }

    /// Fail with `TimedOut` if the transfer has not finished this long after submit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// What a transfer moves between, decided at submit from `fstat` of both fds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransferKind {
    /// Regular file to a socket (a file server or CDN response).
    FileToSocket,
    /// Regular file to a regular file (a copy).
    FileToFile,
    /// Regular file to a pipe.
    FileToPipe,
    /// Socket to socket (a proxy).
    SocketToSocket,
    /// Any other stream: pipe to socket, socket or pipe to a pipe or file.
    StreamOther,
}

impl TransferKind {
    /// All kinds, in a stable order.
    pub const ALL: [TransferKind; 5] = [
        TransferKind::FileToSocket,
        TransferKind::FileToFile,
        TransferKind::FileToPipe,
        TransferKind::SocketToSocket,
        TransferKind::StreamOther,
    ];

    /// A short name (`file-to-socket`, …).
    pub fn name(self) -> &'static str {
        match self {
            TransferKind::FileToSocket => "file-to-socket",
            TransferKind::FileToFile => "file-to-file",
            TransferKind::FileToPipe => "file-to-pipe",
            TransferKind::SocketToSocket => "socket-to-socket",
            TransferKind::StreamOther => "stream-other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdKind {
    File,
    Socket,
    Pipe,
}

/// The checked, resolved form of a transfer, shared by both backends.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub kind: TransferKind,
    pub src_fd: RawFd,
    pub dst_fd: RawFd,
    pub src_kind: FdKind,
    pub dst_kind: FdKind,
    /// File source: where to read from. Stream source: None.
    pub src_off: Option<u64>,
    /// File destination: where to write. Otherwise None.
    pub dst_off: Option<u64>,
    pub len: Option<u64>,
    /// Body bytes the source is known to hold from `src_off` (files only).
    pub src_avail: Option<u64>,
    /// Whether the source fd is non-blocking (streams are polled first when blocking).
    pub src_nonblocking: bool,
    /// For a socket or pipe destination: whether it was non-blocking at submit.
    pub dst_nonblocking_before: Option<bool>,
}

impl Plan {
    /// Switches blocking sockets and pipes of this transfer to O_NONBLOCK, so that no
    /// syscall (blocking backend) or io-wq worker (io_uring) can park on them and every
    /// wait is a poll the engine can time out or cancel. Returns the fds to restore.
    pub fn make_streams_nonblocking(&mut self) -> Vec<RawFd> {
        let mut switched = Vec::new();
        let src_stream = self.src_kind != FdKind::File && !self.src_nonblocking;
        if src_stream && crate::engine::set_nonblocking(self.src_fd, true) {
            switched.push(self.src_fd);
            self.src_nonblocking = true;
        }
        let dst_blocking = self.dst_nonblocking_before == Some(false);
        if dst_blocking && crate::engine::set_nonblocking(self.dst_fd, true) {
            switched.push(self.dst_fd);
        }
        switched
    }

    /// Whether bytes are known to follow the header (then it is sent with `MSG_MORE`).
    pub fn more_after_header(&self) -> bool {
        self.body_hint().is_some_and(|h| h > 0)
    }

    /// Expected body size, when known (len, or the file's bytes from the offset).
    pub fn body_hint(&self) -> Option<u64> {
        match (self.len, self.src_avail) {
            (Some(l), Some(a)) => Some(l.min(a)),
            (Some(l), None) => Some(l),
            (None, a) => a,
        }
    }
}

fn invalid(arg: &str, why: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{arg}: {why}"))
}

/// What `fstat` says of an fd: its kind and size.
fn fstat_kind(fd: RawFd, arg: &str) -> io::Result<(FdKind, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the struct on success; we read it only then. The fd is owned
    // by an Arc the caller holds for the duration of this call.
    let st = unsafe {
        if libc::fstat(fd, st.as_mut_ptr()) == -1 {
            let e = io::Error::last_os_error();
            return Err(invalid(arg, format!("fstat failed: {e}")));
        }
        st.assume_init()
    };
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => FdKind::File,
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFIFO => FdKind::Pipe,
        _ => return Err(invalid(arg, "must be a regular file, a socket or a pipe")),
    };
    Ok((kind, st.st_size as u64))
}

fn getfl(fd: RawFd, arg: &str) -> io::Result<i32> {
    // SAFETY: F_GETFL only reads the fd's flags.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl == -1 {
        return Err(invalid(arg, io::Error::last_os_error()));
    }
    Ok(fl)
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

/// Remembers the kind of each fd the engine has seen, per `Arc`, so that a file or
/// socket submitted again and again is not `fstat`ed every time.
///
/// Keyed by the Arc's address; the entry holds a `Weak`, which keeps that allocation
/// from being reused while the entry exists, so a live upgrade with the same address
/// and the same fd number is the same open file. Bounded: cleared when full.
/// A cached fd: the Arc it came through (weakly), its number and kind.
type CacheEntry = (std::sync::Weak<dyn AsFd + Send + Sync>, RawFd, FdKind);

#[derive(Default)]
pub(crate) struct FdCache {
    map: std::sync::Mutex<std::collections::HashMap<usize, CacheEntry>>,
}

const FD_CACHE_MAX: usize = 4096;

impl FdCache {
    fn key(arc: &SharedFd) -> usize {
        Arc::as_ptr(arc) as *const () as usize
    }

    /// The kind of an fd already seen (and accepted) through this very Arc.
    fn get(&self, arc: &SharedFd, fd: RawFd) -> Option<FdKind> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (weak, f, kind) = map.get(&Self::key(arc))?;
        (*f == fd && weak.upgrade().is_some_and(|a| Arc::ptr_eq(&a, arc))).then_some(*kind)
    }

    /// Remembers an fd that passed the checks.
    fn put(&self, arc: &SharedFd, fd: RawFd, kind: FdKind) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= FD_CACHE_MAX {
            map.clear();
        }
        map.insert(Self::key(arc), (Arc::downgrade(arc), fd, kind));
    }
}

fn position(fd: RawFd) -> io::Result<u64> {
    // SAFETY: lseek has no memory arguments.
    let p = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    if p < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(p as u64)
    }
}

impl Transfer {
    /// Checks the fds and arguments and resolves offsets; `InvalidInput` on bad input.
    pub(crate) fn plan(&self, cache: &FdCache) -> io::Result<Plan> {
        let src_fd = self.src.as_fd().as_raw_fd();
        let dst_fd = self.dst.as_fd().as_raw_fd();
        let src_cached = cache.get(&self.src, src_fd);
        let dst_cached = cache.get(&self.dst, dst_fd);
        let (src_kind, mut src_size) = match src_cached {
            Some(k) => (k, None),
            None => fstat_kind(src_fd, "src").map(|(k, s)| (k, Some(s)))?,
        };
        let dst_kind = match dst_cached {
            Some(k) => k,
            None => fstat_kind(dst_fd, "dst")?.0,
        };
        // A file source seen before needs no fcntl (its access mode cannot change);
        // streams are asked every time (O_NONBLOCK can change), and so is dst (O_APPEND).
        let src_fl = if src_cached == Some(FdKind::File) {
            libc::O_RDONLY
        } else {
            getfl(src_fd, "src")?
        };
        check_flags(src_kind, src_fl, "src")?;
        let dst_fl = getfl(dst_fd, "dst")?;
        check_flags(dst_kind, dst_fl, "dst")?;
        let (src_nonblocking, dst_nb) = (
            src_fl & libc::O_NONBLOCK != 0,
            dst_fl & libc::O_NONBLOCK != 0,
        );
        // Without `len` the file's size decides how much to send: always fstat then.
        if src_kind == FdKind::File && self.len.is_none() && src_size.is_none() {
            src_size = Some(fstat_kind(src_fd, "src")?.1);
        }
        if src_fd == dst_fd {
            return Err(invalid("dst", "is the same fd as src"));
        }
        let max = i64::MAX as u64;
        let (src_off, src_avail) = match src_kind {
            FdKind::File => {
                let off = match self.src_offset {
                    Some(o) if o > max => {
                        return Err(invalid("src_offset", "larger than i64::MAX"))
                    }
                    Some(o) => o,
                    None => position(src_fd)?,
                };
                (Some(off), src_size.map(|s| s.saturating_sub(off)))
            }
            _ if self.src_offset.is_some() => {
                return Err(invalid(
                    "src_offset",
                    "a socket or pipe source has no offsets (use None)",
                ))
            }
            _ => (None, None),
        };
        if let (Some(len), Some(off)) = (self.len, src_off) {
            if off.checked_add(len).is_none_or(|end| end > max) {
                return Err(invalid("len", "src_offset + len overflows i64"));
            }
        }
        let dst_off = match dst_kind {
            FdKind::File => Some(position(dst_fd)?),
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
            cache.put(&self.src, src_fd, src_kind);
        }
        if dst_cached.is_none() {
            cache.put(&self.dst, dst_fd, dst_kind);
        }
        Ok(Plan {
            kind,
            src_fd,
            dst_fd,
            src_kind,
            dst_kind,
            src_off,
            dst_off,
            len: self.len,
            src_avail,
            src_nonblocking,
            dst_nonblocking_before: (dst_kind != FdKind::File).then_some(dst_nb),
        })
    }
}
