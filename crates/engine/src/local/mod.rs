//! `LocalEngine`: a ring owned and driven by one thread, where transfers and a
//! server's connection ops (accept, recv, send, timeouts, close) share one
//! `io_uring_enter` per turn, with no thread hop. Where io_uring is unavailable it runs
//! the same plan with non-blocking syscalls driven by epoll.

mod proxy;

pub use proxy::LocalProxyHandle;

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::backend::inline::Start;
use crate::backend::ops::{self, ConnOp};
use crate::backend::{Config, Ctx, LocalExec};
use crate::backend_kind::{Backend, RunsOn};
use crate::body_cache::BodyCache;
use crate::events::{Event, OpId};
use crate::group::Group;
use crate::handle::{Completed, Progress, Slot, TransferHandle};
use crate::proxy::Proxy;
use crate::resolve::{resolve, FdCache};
use crate::resolved::Resolved;
use crate::stats::EngineStats;
use crate::transfer::Transfer;

/// Builds a [`LocalEngine`]; from [`LocalEngine::builder`].
#[derive(Debug, Clone)]
pub struct LocalEngineBuilder {
    backend: Backend,
    config: Config,
    pipe_size: usize,
    pipe_pool_capacity: usize,
    body_cache: (u64, usize),
}

impl LocalEngineBuilder {
    /// Which backend: `IoUring` (an error where unavailable), `Blocking` (the epoll
    /// readiness loop), or `Auto` (io_uring where it works; `FERRY_BACKEND` overrides).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Bodies up to this many bytes are sent from a buffer or zero-copy at submit
    /// (default 64 KiB).
    pub fn small_threshold(mut self, bytes: u64) -> Self {
        self.config.small_threshold = bytes;
        self
    }

    /// Small file bodies kept in memory: files of at most `max_body` bytes, `budget`
    /// bytes in all (default 4 KiB and 4 MiB; 0 turns it off). A response from a hot
    /// file then costs one `fstat` and one gather `sendmsg` of header and body instead
    /// of `cachestat` + `send` + `sendfile`, never stale bytes: an entry serves only
    /// while the file's size, mtime and ctime are those it was read at. Measured here:
    /// a tie at 4 KiB, a loss from 16 KiB (the copy costs more than the calls it
    /// saves); it pays where each system call costs more (seccomp filters, older CPUs'
    /// mitigations). docs/local.md has the rules and numbers.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{TcpListener, TcpStream};
    /// use std::sync::Arc;
    /// use ferry_engine::{LocalEngine, Transfer};
    ///
    /// let mut ring = LocalEngine::builder().body_cache(8 << 10, 1 << 20).build()?;
    /// let mut page = tempfile::tempfile()?;
    /// page.write_all(b"<h1>hi</h1>")?;
    /// let page = Arc::new(page);
    /// let l = TcpListener::bind("127.0.0.1:0")?;
    /// let mut client = TcpStream::connect(l.local_addr()?)?;
    /// let conn = Arc::new(l.accept()?.0);
    /// conn.set_nonblocking(true)?;
    /// let head = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n";
    /// for _ in 0..2 {
    ///     // A file changed in the last 100 ms goes out from the bytes just read and is
    ///     // not kept; a settled one is kept, and later responses come from memory.
    ///     let t = Transfer::new(page.clone(), conn.clone())
    ///         .src_offset(Some(0))
    ///         .header(head.to_vec());
    ///     let h = ring.submit(t)?;
    ///     assert_eq!(ring.wait(h)?.bytes, 11);
    /// }
    /// let mut got = vec![0u8; 2 * (head.len() + 11)];
    /// client.read_exact(&mut got)?;
    /// assert!(got.ends_with(b"<h1>hi</h1>"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn body_cache(mut self, max_body: u64, budget: usize) -> Self {
        self.body_cache = (max_body, budget);
        self
    }

    /// Submission queue entries of the ring (default 512; the CQ gets 4×).
    pub fn ring_entries(mut self, n: u32) -> Self {
        self.config.ring_entries = n.clamp(8, 32768);
        self
    }

    /// Most idle pipes the ring keeps for reuse (default 64; each holds two fds). A
    /// server near a small fd limit keeps fewer, so idle pipes cannot take the fds
    /// its connections need.
    ///
    /// ```
    /// let ring = ferry_engine::LocalEngine::builder().pipe_pool_capacity(8).build()?;
    /// # drop(ring);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pipe_pool_capacity(mut self, n: usize) -> Self {
        self.pipe_pool_capacity = n;
        self
    }

    /// Capacity of each pooled pipe (default 1 MiB).
    pub fn pipe_size(mut self, bytes: usize) -> Self {
        self.pipe_size = bytes;
        self
    }

    /// Builds the engine on the calling thread (which then owns it).
    pub fn build(self) -> io::Result<LocalEngine> {
        let ctx = Ctx::new(self.config, self.pipe_size, self.pipe_pool_capacity)?;
        let (exec, fallback_reason) = crate::backend::choose(
            self.backend,
            || uring(ctx.clone()),
            || -> io::Result<Box<dyn LocalExec>> {
                Ok(Box::new(crate::backend::readiness::Readiness::new(
                    ctx.clone(),
                )?))
            },
            "the epoll readiness loop",
        )?;
        Ok(LocalEngine {
            canceller: exec.canceller(),
            runs_on: exec.runs_on(),
            exec,
            ctx,
            fd_cache: FdCache::default(),
            next_prune: Instant::now(),
            body_cache: BodyCache::new(self.body_cache.0, self.body_cache.1),
            next_id: 1,
            fallback_reason,
            events: Vec::new(),
            _owner: PhantomData,
        })
    }
}

#[cfg(ferry_uring)]
fn uring(ctx: Ctx) -> io::Result<Box<dyn LocalExec>> {
    Ok(Box::new(crate::backend::uring::UringLocal::new(ctx)?))
}

#[cfg(not(ferry_uring))]
fn uring(_ctx: Ctx) -> io::Result<Box<dyn LocalExec>> {
    Err(crate::backend::uring_not_compiled())
}

/// A ring owned and driven by one thread. See the [crate documentation](crate) and
/// `docs/local.md`.
///
/// Nothing moves between two [`turn`](Self::turn)s except in the kernel: the owner
/// calls `turn` (or `wait`) from its loop, or sleeps on the engine's fd (it is `AsFd`,
/// readable when completions wait) in epoll, mio or tokio and turns when woken.
///
/// ```
/// use std::sync::Arc;
/// # use std::io::Read;
/// let mut ring = ferry_engine::LocalEngine::new()?;
/// let file = Arc::new(tempfile::tempfile()?);
/// std::io::Write::write_all(&mut &*file, b"hello")?;
/// let (mut r, w) = std::io::pipe()?;
/// let h = ring.submit(ferry_engine::Transfer::new(file, Arc::new(w)).src_offset(Some(0)))?;
/// let done = ring.wait(h)?;                // turns until it completes
/// assert_eq!(done.bytes, 5);
/// let mut got = [0u8; 5];
/// r.read_exact(&mut got)?;
/// assert_eq!(&got, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LocalEngine {
    exec: Box<dyn LocalExec>,
    ctx: Ctx,
    fd_cache: FdCache,
    /// When `turn` next drops the cache entries of closed fds.
    next_prune: Instant,
    body_cache: BodyCache,
    next_id: u64,
    runs_on: RunsOn,
    fallback_reason: Option<String>,
    canceller: Arc<dyn Fn(u64) + Send + Sync>,
    events: Vec<Event>,
    /// `!Send + !Sync`: the ring belongs to the thread that built it.
    _owner: PhantomData<*const ()>,
}

impl fmt::Debug for LocalEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEngine")
            .field("runs_on", &self.runs_on)
            .field("fallback_reason", &self.fallback_reason)
            .finish()
    }
}

impl LocalEngine {
    /// A local engine with the default settings and `Backend::Auto`.
    pub fn new() -> io::Result<LocalEngine> {
        LocalEngine::builder().build()
    }

    /// A builder for the settings.
    pub fn builder() -> LocalEngineBuilder {
        LocalEngineBuilder {
            backend: Backend::Auto,
            // One ring on the owner's thread; no gate (the owner paces itself).
            config: Config {
                threads: 1,
                max_in_flight: usize::MAX,
                ..Config::default()
            },
            pipe_size: 1 << 20,
            pipe_pool_capacity: 64,
            body_cache: (4 << 10, 4 << 20),
        }
    }

    /// What really runs: `IoUring`, or `Blocking` (the epoll readiness loop).
    pub fn backend(&self) -> Backend {
        self.runs_on.backend()
    }

    /// The executor really in use: [`RunsOn::OwnerRing`] or [`RunsOn::ReadinessLoop`].
    pub fn runs_on(&self) -> RunsOn {
        self.runs_on
    }

    /// Why `Auto` fell back to the readiness loop, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Queues a transfer; it reaches the kernel at the next [`turn`](Self::turn).
    /// A small file body into a socket may be sent right here (never blocking: only
    /// page-cached data, only what the socket takes now). Bad input: `InvalidInput`
    /// naming the argument, as `Engine::submit`.
    pub fn submit(&mut self, t: Transfer) -> io::Result<LocalHandle> {
        let r = resolve(&t, &self.fd_cache)?;
        Ok(self.start(t, &r, None))
    }

    /// A two-way proxy between two connected sockets on this ring, with the semantics
    /// of [`Engine::proxy`](crate::Engine::proxy): both directions until both have
    /// ended, EOF half-closes the other side, an error or reset stops both, one idle
    /// clock. Each direction ends with an [`Event::TransferDone`] named by one of
    /// [`LocalProxyHandle::ids`]; take the result with `try_take` once both are done.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::{Shutdown, TcpListener, TcpStream};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use ferry_engine::{LocalEngine, Proxy};
    /// # fn pair() -> std::io::Result<(TcpStream, TcpStream)> {
    /// #     let l = TcpListener::bind("127.0.0.1:0")?;
    /// #     let c = TcpStream::connect(l.local_addr()?)?;
    /// #     Ok((c, l.accept()?.0))
    /// # }
    /// let mut ring = LocalEngine::new()?;
    /// let (mut client, client_side) = pair()?; // client ↔ proxy
    /// let (server_side, mut server) = pair()?; // proxy ↔ server
    /// let mut h = ring.proxy(Proxy::new(Arc::new(client_side), Arc::new(server_side)))?;
    /// client.write_all(b"ping")?;
    /// client.shutdown(Shutdown::Write)?; // EOF passes on as a half-close
    /// server.write_all(b"pong")?;
    /// server.shutdown(Shutdown::Write)?;
    /// let counts = loop {
    ///     ring.turn(Some(Duration::from_millis(10)))?;
    ///     ring.events().for_each(drop); // TransferDone of h.ids()
    ///     match h.try_take() {
    ///         Ok(result) => break result?,
    ///         Err(pending) => h = pending,
    ///     }
    /// };
    /// let (mut up, mut down) = (Vec::new(), Vec::new());
    /// server.read_to_end(&mut up)?;
    /// client.read_to_end(&mut down)?;
    /// assert_eq!((up.as_slice(), down.as_slice(), counts), (&b"ping"[..], &b"pong"[..], (4, 4)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn proxy(&mut self, p: Proxy) -> io::Result<LocalProxyHandle> {
        let [(up, ru), (down, rd)] = p.resolve(&self.fd_cache)?;
        let group = Arc::new(Group::default());
        let hu = self.start(up, &ru, Some(group.clone()));
        let hd = self.start(down, &rd, Some(group.clone()));
        Ok(LocalProxyHandle::new(hu, hd, group))
    }

    /// Starts a resolved transfer: the inline attempt, else the executor (or, for a
    /// file → file transfer on io_uring, the file worker thread).
    fn start(&mut self, t: Transfer, r: &Resolved, group: Option<Arc<Group>>) -> LocalHandle {
        let id = self.next_id();
        let start = Start {
            id,
            canceller: self.canceller.clone(),
            group,
            done: Box::new(|| {}),
        };
        let memory = self.memory_body(&t, r);
        let caps = self.exec.caps(r.kind);
        let (slot, job) = crate::backend::inline::start(start, t, r, caps, &self.ctx, memory);
        match job {
            Some(job) => self.exec.submit(job),
            None => self.events.push(Event::TransferDone { op: OpId(id) }),
        }
        LocalHandle::new(slot)
    }
    /// A small file body into a socket from the body cache, when it may come from
    /// there: the file's whole contents, read now or earlier and unchanged since.
    fn memory_body(&mut self, t: &Transfer, r: &Resolved) -> Option<Arc<[u8]>> {
        // The body's size as far as submit knows it: a larger body needs no `fstat`.
        let known = r.len.or(r.src_avail);
        if r.kind != crate::transfer::TransferKind::FileToSocket || !self.body_cache.may_hold(known)
        {
            return None;
        }
        let m = self.body_cache.body(t.src.as_fd())?;
        self.ctx
            .recorder
            .from_memory
            .fetch_add(1, Ordering::Relaxed);
        Some(m)
    }

    /// One turn: submits everything queued in one enter, waits at most `timeout`
    /// (`None`: until something completes) for a completion, reaps every completion.
    /// Returns how many transfers completed; their handles are ready, and every
    /// finished op is in [`events`](Self::events). While events are waiting to be
    /// taken, a turn does not sleep.
    pub fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let before = self.events.len();
        // Events not taken yet (e.g. a transfer finished inline in `submit`): do not
        // sleep on the kernel while the caller has work waiting.
        let timeout = if before > 0 {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        self.exec.turn(timeout, &mut self.events)?;
        let now = Instant::now();
        if now >= self.next_prune {
            // Once a second: forget the fds of connections that are gone.
            self.fd_cache.prune();
            self.next_prune = now + Duration::from_secs(1);
        }
        Ok(self.events[before..]
            .iter()
            .filter(|e| matches!(e, Event::TransferDone { .. }))
            .count())
    }

    /// Turns until `h` completes, and returns its result. Events of other ops that
    /// finished meanwhile stay in [`events`](Self::events).
    pub fn wait(&mut self, h: LocalHandle) -> io::Result<Completed> {
        while !h.is_finished() {
            self.turn(Some(Duration::from_millis(100)))?;
        }
        h.inner.wait()
    }

    /// The events of finished ops since the last call, in completion order.
    pub fn events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Accepts connections on `listener` until cancelled (multishot where the kernel
    /// has it): one [`Event::Accepted`] per connection.
    pub fn accept<L: AsFd + Send + Sync + 'static>(&mut self, listener: Arc<L>) -> OpId {
        self.conn(ops::Accept::new(listener))
    }

    /// Receives into `buf` (its length is the most read): one [`Event::Received`].
    pub fn recv<S: AsFd + Send + Sync + 'static>(&mut self, socket: Arc<S>, buf: Vec<u8>) -> OpId {
        self.conn(ops::Recv::new(socket, buf))
    }

    /// Receives until the end of the stream: one [`Event::Received`] per arrival, with
    /// exactly the bytes that came (owned), the last one `Ok(0)` at end of stream or an
    /// error (`Interrupted` after [`cancel`](Self::cancel)). On io_uring a multishot recv
    /// into a ring of provided buffers (Linux 6.0; one SQE for the connection's life),
    /// single recvs where the kernel has none; on the fallback, reads on readiness.
    pub fn recv_multi<S: AsFd + Send + Sync + 'static>(&mut self, socket: Arc<S>) -> OpId {
        self.conn(ops::RecvMulti::new(socket))
    }

    /// Receives once, into a buffer the engine picks only when bytes have arrived: one
    /// [`Event::Received`] whose `buf` holds exactly them (`Ok(0)` and an empty `buf` at
    /// end of stream). A connection waiting with it owns no receive buffer — what an
    /// idle keep-alive connection costs is then its own state, not 16 KiB of buffer
    /// (`ferry serve` holds idle connections this way). On io_uring a single recv with
    /// a buffer selected from the ring's provided buffers (64 × 16 KiB, registered on
    /// first use), copied out and given back at once; own 16 KiB buffers where the
    /// kernel has no buffer rings; on the fallback, a read on readiness.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::sync::Arc;
    /// use ferry_engine::{Event, LocalEngine};
    /// let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
    /// let mut ring = LocalEngine::new()?;
    /// let op = ring.recv_pooled(Arc::new(b));
    /// a.write_all(b"hello")?;
    /// let got = loop {
    ///     ring.turn(None)?;
    ///     if let Some(Event::Received { buf, result, .. }) = ring.events().next() {
    ///         assert_eq!(result?, 5);
    ///         break buf;
    ///     }
    /// };
    /// assert_eq!(got, b"hello");
    /// # let _ = op;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn recv_pooled<S: AsFd + Send + Sync + 'static>(&mut self, socket: Arc<S>) -> OpId {
        self.conn(ops::RecvPooled::new(socket))
    }

    /// Sends all of `buf`: one [`Event::Sent`] when it is out (or failed).
    pub fn send<S: AsFd + Send + Sync + 'static>(&mut self, socket: Arc<S>, buf: Vec<u8>) -> OpId {
        self.conn(ops::SendAll::new(socket, buf))
    }

    /// Connects `socket` (a fresh, unconnected stream socket) to `addr`: one
    /// [`Event::Connected`]. Bound it with a `timeout` and `cancel` (the event then says
    /// `Interrupted`).
    ///
    /// ```
    /// use std::net::TcpListener;
    /// use std::sync::Arc;
    /// use ferry_engine::{Event, LocalEngine};
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let socket = Arc::new(socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?);
    /// let mut ring = LocalEngine::new()?;
    /// let op = ring.connect(socket.clone(), listener.local_addr()?);
    /// let result = loop {
    ///     ring.turn(None)?;
    ///     if let Some(Event::Connected { result, .. }) = ring.events().find(|e| matches!(e, Event::Connected { op: o, .. } if *o == op)) {
    ///         break result;
    ///     }
    /// };
    /// result?;
    /// let (_peer, from) = listener.accept()?;
    /// assert_eq!(from, socket.local_addr()?.as_socket().unwrap());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<S: AsFd + Send + Sync + 'static>(
        &mut self,
        socket: Arc<S>,
        addr: SocketAddr,
    ) -> OpId {
        self.conn(ops::Connect::new(socket, addr))
    }

    /// An [`Event::Timer`] after `after`.
    pub fn timeout(&mut self, after: Duration) -> OpId {
        self.conn(ops::Timeout::new(after))
    }

    /// Closes `fd` on the ring: one [`Event::Closed`].
    pub fn close(&mut self, fd: OwnedFd) -> OpId {
        self.conn(ops::Close::new(fd))
    }

    /// Cancels a connection op; its event then says `Interrupted` (unless it finished
    /// first). For transfers use [`LocalHandle::cancel`].
    pub fn cancel(&mut self, op: OpId) {
        self.exec.cancel_conn(op.0);
    }

    fn conn(&mut self, op: Box<dyn ConnOp>) -> OpId {
        let id = self.next_id();
        self.exec.start_conn(id, op);
        OpId(id)
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> EngineStats {
        self.ctx
            .recorder
            .snapshot(self.runs_on.backend(), self.ctx.pool.stats())
    }
}

impl AsFd for LocalEngine {
    /// Readable when completions wait: register it in epoll / mio / tokio and call
    /// `turn(Some(Duration::ZERO))` when it is.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.exec.fd()
    }
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        self.exec.shutdown();
    }
}

/// A transfer on a [`LocalEngine`]: a `Future` (woken by the engine's `turn`), or
/// `ring.wait(handle)`. `cancel()` as on `Engine`.
pub struct LocalHandle {
    inner: TransferHandle,
}

impl fmt::Debug for LocalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LocalHandle").field(&self.inner).finish()
    }
}

impl LocalHandle {
    fn new(slot: Arc<Slot>) -> Self {
        LocalHandle {
            inner: TransferHandle::new(slot),
        }
    }

    /// The id of [`Event::TransferDone`] for this transfer.
    pub fn id(&self) -> OpId {
        OpId(self.inner.id())
    }

    /// Asks the engine to stop the transfer (seen at the next turn); it then fails
    /// with `Interrupted` unless it finished first. Callable from any thread.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether the result is ready.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// Body bytes delivered (see `TransferHandle::progress`).
    pub fn progress(&self) -> Progress {
        self.inner.progress()
    }

    /// The result, if the transfer finished; the handle back otherwise.
    pub fn try_take(self) -> Result<io::Result<Completed>, LocalHandle> {
        if self.is_finished() {
            Ok(self.inner.wait())
        } else {
            Err(self)
        }
    }
}

impl Future for LocalHandle {
    type Output = io::Result<Completed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}
