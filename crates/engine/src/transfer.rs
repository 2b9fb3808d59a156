//! `Transfer`: what to move (built by the caller), and `TransferKind`.

use std::fmt;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use crate::idle::IdleClock;
use crate::seal::Seal;

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
    /// Fails the transfer once no byte moved for its timeout (shared by a proxy's two
    /// directions).
    pub(crate) idle: Option<Arc<IdleClock>>,
    /// After the body ended at the source's EOF, `shutdown(dst, SHUT_WR)` (proxies).
    pub(crate) half_close: bool,
    pub(crate) seal: Option<Box<dyn Seal>>,
    pub(crate) splice_only: bool,
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
            .field("idle", &self.idle)
            .field("half_close", &self.half_close)
            .field("sealed", &self.seal.is_some())
            .field("splice_only", &self.splice_only)
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
        Transfer::from_shared(src, dst)
    }

    /// A transfer between fds already type-erased.
    pub(crate) fn from_shared(src: SharedFd, dst: SharedFd) -> Transfer {
        Transfer {
            src,
            dst,
            src_offset: None,
            len: None,
            header: Vec::new(),
            trailer: Vec::new(),
            timeout: None,
            idle: None,
            half_close: false,
            seal: None,
            splice_only: false,
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

    /// Fail with `TimedOut` once no body byte has moved for this long (a stalled peer
    /// on a long transfer), however long the whole transfer takes.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle = Some(Arc::new(IdleClock::new(timeout)));
        self
    }

    /// The destination speaks TLS in user space: everything written to it (header,
    /// body, trailer) goes through `sealer` a record at a time (see [`Seal`]). The
    /// destination must be a stream (socket or pipe; a file is `InvalidInput`).
    /// `Completed::bytes` and progress count plaintext body bytes. A destination with
    /// kernel TLS needs no sealer: transfer to it as to any socket.
    pub fn seal(mut self, sealer: impl Seal + 'static) -> Self {
        self.seal = Some(Box::new(sealer));
        self
    }

    /// Never through a user-space buffer: a stream source is spliced from its first
    /// byte (no 16 KiB relay while the flow is small), a file body goes by
    /// `sendfile`/`splice` however small (not staged, not from a body cache). For a
    /// kernel-TLS socket on either side whose plaintext must stay in the kernel
    /// (docs/embedding.md, "TLS destinations"); small flows then pay a pipe. Header and
    /// trailer are still written from memory, and a sealed transfer seals in user
    /// space regardless.
    ///
    /// ```
    /// use std::sync::Arc;
    /// # use std::io::{Read, Write};
    /// # use std::net::{TcpListener, TcpStream};
    /// # let pair = || -> std::io::Result<(TcpStream, TcpStream)> {
    /// #     let l = TcpListener::bind("127.0.0.1:0")?;
    /// #     let c = TcpStream::connect(l.local_addr()?)?;
    /// #     Ok((c, l.accept()?.0))
    /// # };
    /// let engine = ferry_engine::Engine::new()?;
    /// let (mut client, from_client) = pair()?;
    /// let (to_backend, mut backend) = pair()?;
    /// client.write_all(b"spliced")?;
    /// drop(client);
    /// let t = ferry_engine::Transfer::new(Arc::new(from_client), Arc::new(to_backend)).splice_only();
    /// assert_eq!(engine.submit(t)?.wait()?.bytes, 7);
    /// let mut got = [0u8; 7];
    /// backend.read_exact(&mut got)?;
    /// assert_eq!(&got, b"spliced");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn splice_only(mut self) -> Self {
        self.splice_only = true;
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
