//! Two-way proxying: bytes both ways between two sockets until both directions have
//! ended, as two linked transfers.
//!
//! * EOF from one side half-closes the other (`shutdown(SHUT_WR)`); the reverse
//!   direction keeps running.
//! * An error or reset on either side cancels the other direction at once; the handle
//!   fails with the first error and both byte counts ([`ProxyError`]).
//! * Idle timeout: no byte moved either way for that long → `TimedOut`.
//! * Nothing is kept after the handle completes: each direction releases its fds and
//!   pipe when it ends, and an idle direction holds no pipe.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::group::Group;
use crate::handle::{Completed, TransferHandle};
use crate::idle::IdleClock;
use crate::resolve::{resolve, FdCache};
use crate::resolved::Resolved;
use crate::sys::{self, FileType};
use crate::transfer::{SharedFd, Transfer};
use crate::TransferError;

/// A two-way proxy between two connected sockets; give it to [`Engine::proxy`](crate::Engine::proxy).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// # use std::io::{Read, Write};
/// # use std::net::{Shutdown, TcpListener, TcpStream};
/// # let pair = || -> std::io::Result<(TcpStream, TcpStream)> {
/// #     let l = TcpListener::bind("127.0.0.1:0")?;
/// #     let c = TcpStream::connect(l.local_addr()?)?;
/// #     Ok((c, l.accept()?.0))
/// # };
/// let engine = ferry_engine::Engine::new()?;
/// let (mut client, client_side) = pair()?;   // client ↔ proxy
/// let (server_side, mut server) = pair()?;   // proxy ↔ server
/// let p = engine.proxy(ferry_engine::Proxy::new(Arc::new(client_side), Arc::new(server_side))
///     .idle_timeout(Duration::from_secs(300)))?;
/// client.write_all(b"ping")?;
/// client.shutdown(Shutdown::Write)?;         // EOF: the proxy half-closes towards the server
/// let mut got = Vec::new();
/// server.read_to_end(&mut got)?;
/// server.write_all(b"pong")?;
/// drop(server);                              // EOF the other way: both directions ended
/// let mut back = Vec::new();
/// client.read_to_end(&mut back)?;
/// assert_eq!((got.as_slice(), back.as_slice()), (&b"ping"[..], &b"pong"[..]));
/// assert_eq!(p.wait()?, (4, 4));             // (client → server, server → client)
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Proxy {
    pub(crate) client: SharedFd,
    pub(crate) server: SharedFd,
    pub(crate) idle_timeout: Option<Duration>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("client", &self.client.as_fd())
            .field("server", &self.server.as_fd())
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl Proxy {
    /// A proxy between `client` and `server` (connected stream sockets).
    pub fn new<C, S>(client: Arc<C>, server: Arc<S>) -> Proxy
    where
        C: AsFd + Send + Sync + 'static,
        S: AsFd + Send + Sync + 'static,
    {
        Proxy {
            client,
            server,
            idle_timeout: None,
        }
    }

    /// Fail with `TimedOut` once no byte has moved either way for this long.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Refuses what cannot be proxied, naming the argument.
    pub(crate) fn check(&self) -> io::Result<()> {
        let invalid = |arg: &str, why: &str| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{arg}: {why}"))
        };
        for (arg, fd) in [
            ("client", self.client.as_fd()),
            ("server", self.server.as_fd()),
        ] {
            let (t, _) = sys::fstat(fd).map_err(|e| invalid(arg, &e.to_string()))?;
            if t != FileType::Socket {
                return Err(invalid(arg, "must be a connected socket"));
            }
            if sys::is_listening(fd).map_err(|e| invalid(arg, &e.to_string()))? {
                return Err(invalid(arg, "is a listening socket, not a connection"));
            }
        }
        if self.client.as_fd().as_raw_fd() == self.server.as_fd().as_raw_fd() {
            return Err(invalid("server", "is the same socket as client"));
        }
        Ok(())
    }

    /// Checks the sockets and resolves both directions (client → server first), the
    /// one preparation `Engine::proxy` and `LocalEngine::proxy` share.
    pub(crate) fn resolve(self, cache: &FdCache) -> io::Result<[(Transfer, Resolved); 2]> {
        self.check()?;
        let (up, down) = self.transfers();
        let (ru, rd) = (resolve(&up, cache)?, resolve(&down, cache)?);
        Ok([(up, ru), (down, rd)])
    }

    /// The two directions: (client → server, server → client), linked by one idle clock.
    pub(crate) fn transfers(self) -> (Transfer, Transfer) {
        let idle = self.idle_timeout.map(|d| Arc::new(IdleClock::new(d)));
        let mut up = Transfer::from_shared(self.client.clone(), self.server.clone());
        let mut down = Transfer::from_shared(self.server, self.client);
        for t in [&mut up, &mut down] {
            t.half_close = true;
            t.idle = idle.clone();
        }
        (up, down)
    }
}

/// The failure of a proxy: the first error (its kind is the `io::Error`'s kind) and the
/// bytes each direction moved. Inside the `io::Error` that [`ProxyHandle`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyError {
    /// Which direction failed first: `"client → server"` or `"server → client"`.
    pub direction: &'static str,
    /// The kernel's errno, when the failure came from the kernel.
    pub errno: Option<i32>,
    /// Body bytes moved client → server.
    pub client_to_server: u64,
    /// Body bytes moved server → client.
    pub server_to_client: u64,
    /// What happened.
    pub reason: String,
}

impl ProxyError {
    /// The `ProxyError` inside an error a proxy returned.
    pub fn of(err: &io::Error) -> Option<&ProxyError> {
        err.get_ref()?.downcast_ref()
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) after {} bytes client → server, {} bytes server → client",
            self.reason, self.direction, self.client_to_server, self.server_to_client
        )
    }
}

impl std::error::Error for ProxyError {}

/// A running proxy: `wait()` for `(client_to_server, server_to_client)` bytes, or
/// `.await` it; `cancel()` stops both directions.
pub struct ProxyHandle {
    up: TransferHandle,
    down: TransferHandle,
    results: [Option<io::Result<Completed>>; 2],
    group: Arc<Group>,
}

impl fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("client_to_server", &self.up)
            .field("server_to_client", &self.down)
            .finish()
    }
}

impl ProxyHandle {
    pub(crate) fn new(up: TransferHandle, down: TransferHandle, group: Arc<Group>) -> Self {
        ProxyHandle {
            up,
            down,
            results: [None, None],
            group,
        }
    }

    /// Blocks until both directions have ended.
    pub fn wait(mut self) -> io::Result<(u64, u64)> {
        let (pu, pd) = (self.up.progress(), self.down.progress());
        let group = self.group.clone();
        let up_id = self.up.id();
        let up = match self.results[0].take() {
            Some(r) => r,
            None => self.up.wait(),
        };
        let down = match self.results[1].take() {
            Some(r) => r,
            None => self.down.wait(),
        };
        let first_up = group.first_failure() == Some(up_id);
        combine(up, down, (pu.bytes(), pd.bytes()), first_up)
    }

    /// Stops both directions; the handle then fails with `Interrupted`.
    pub fn cancel(&self) {
        self.up.cancel();
        self.down.cancel();
    }

    /// Whether both directions have ended.
    pub fn is_finished(&self) -> bool {
        let done = |i: usize, h: &TransferHandle| self.results[i].is_some() || h.is_finished();
        done(0, &self.up) && done(1, &self.down)
    }

    /// Bytes moved so far: (client → server, server → client).
    pub fn bytes(&self) -> (u64, u64) {
        (self.up.progress().bytes(), self.down.progress().bytes())
    }

    fn first_failed_up(&self) -> bool {
        self.group.first_failure() == Some(self.up.id())
    }
}

fn combine(
    up: io::Result<Completed>,
    down: io::Result<Completed>,
    bytes: (u64, u64),
    first_failed_up: bool,
) -> io::Result<(u64, u64)> {
    let (e, direction) = match (up, down) {
        (Ok(a), Ok(b)) => return Ok((a.bytes, b.bytes)),
        (Err(e), Ok(_)) => (e, "client → server"),
        (Ok(_), Err(e)) => (e, "server → client"),
        (Err(a), Err(_)) if first_failed_up => (a, "client → server"),
        (Err(_), Err(b)) => (b, "server → client"),
    };
    let errno = e
        .raw_os_error()
        .or_else(|| TransferError::of(&e).and_then(|t| t.errno));
    let reason = match TransferError::of(&e) {
        Some(t) => t.reason.clone(),
        None => e.to_string(),
    };
    Err(io::Error::new(
        e.kind(),
        ProxyError {
            direction,
            errno,
            client_to_server: bytes.0,
            server_to_client: bytes.1,
            reason,
        },
    ))
}

impl Future for ProxyHandle {
    type Output = io::Result<(u64, u64)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = &mut *self;
        if me.results[0].is_none() {
            if let Poll::Ready(r) = Pin::new(&mut me.up).poll(cx) {
                me.results[0] = Some(r);
            }
        }
        if me.results[1].is_none() {
            if let Poll::Ready(r) = Pin::new(&mut me.down).poll(cx) {
                me.results[1] = Some(r);
            }
        }
        if me.results.iter().any(Option::is_none) {
            return Poll::Pending;
        }
        let bytes = (me.up.progress().bytes(), me.down.progress().bytes());
        let first_up = me.first_failed_up();
        let up = me.results[0].take().expect("checked");
        let down = me.results[1].take().expect("checked");
        Poll::Ready(combine(up, down, bytes, first_up))
    }
}
