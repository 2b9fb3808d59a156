//! `Engine`: submission (checks, backpressure, the inline attempt) in front of one
//! executor, and statistics.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::backend::inline::Start;
use crate::backend::{Ctx, Executor};
use crate::backend_kind::{Backend, RunsOn};
use crate::gate::{Gate, Refused};
use crate::group::Group;
use crate::handle::TransferHandle;
use crate::proxy::{Proxy, ProxyHandle};
use crate::resolve::{resolve, FdCache};
use crate::resolved::Resolved;
use crate::stats::EngineStats;
use crate::transfer::Transfer;

/// Runs many transfers at once; see the [crate documentation](crate).
///
/// `Send + Sync`: share it in an `Arc`. Dropping it cancels the transfers still in
/// flight (they fail with `Interrupted`), waits until the kernel has finished with every
/// fd and buffer, then joins its threads.
pub struct Engine {
    runs_on: RunsOn,
    exec: Box<dyn Executor>,
    ctx: Ctx,
    gate: Arc<Gate>,
    next_id: AtomicU64,
    fallback_reason: Option<String>,
    canceller: Arc<dyn Fn(u64) + Send + Sync>,
    fd_cache: FdCache,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("runs_on", &self.runs_on)
            .field("fallback_reason", &self.fallback_reason)
            .finish()
    }
}

impl Engine {
    pub(crate) fn from_parts(
        exec: Box<dyn Executor>,
        ctx: Ctx,
        fallback_reason: Option<String>,
    ) -> Engine {
        Engine {
            runs_on: exec.runs_on(),
            canceller: exec.canceller(),
            gate: Arc::new(Gate::new(ctx.config.max_in_flight)),
            exec,
            ctx,
            next_id: AtomicU64::new(1),
            fallback_reason,
            fd_cache: FdCache::default(),
        }
    }

    /// The backend really in use: [`Backend::IoUring`] or [`Backend::Blocking`].
    pub fn backend(&self) -> Backend {
        self.runs_on.backend()
    }

    /// The executor really in use: [`RunsOn::RingThreads`] or [`RunsOn::ThreadPool`].
    pub fn runs_on(&self) -> RunsOn {
        self.runs_on
    }

    /// Why `Backend::Auto` fell back to the blocking backend, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Starts a transfer; **blocks the calling thread** while `max_in_flight`
    /// transfers are running (use [`try_submit`](Self::try_submit) on an event loop).
    ///
    /// Bad fds or arguments fail here with `InvalidInput` naming the argument (a socket
    /// or pipe with a `src_offset`, a directory, a write-only source, an `O_APPEND`
    /// destination, …). Everything else is reported through the handle.
    pub fn submit(&self, transfer: Transfer) -> io::Result<TransferHandle> {
        self.submit_inner(transfer, true)
    }

    /// Like [`submit`](Self::submit) but fails with `WouldBlock` instead of waiting
    /// when `max_in_flight` transfers are running. A slot frees when any transfer of
    /// this engine completes: retry after one of your handles completes (its
    /// `wait` returns or its future is ready), or call `submit` from a thread that
    /// may block.
    pub fn try_submit(&self, transfer: Transfer) -> io::Result<TransferHandle> {
        self.submit_inner(transfer, false)
    }

    fn submit_inner(&self, t: Transfer, wait: bool) -> io::Result<TransferHandle> {
        let r = resolve(&t, &self.fd_cache)?;
        self.gate.acquire(wait).map_err(refused)?;
        Ok(self.start(t, &r, None))
    }

    /// Starts a transfer without blocking the thread: the future waits for a free slot
    /// (woken when one frees) and resolves to the handle. Bad input fails at the first
    /// poll; an engine that was [`shut down`](Self::shutdown) fails at once.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # let engine = ferry_engine::Engine::new()?;
    /// # let file = Arc::new(tempfile::tempfile()?);
    /// # let (_r, w) = std::io::pipe()?;
    /// # let transfer = ferry_engine::Transfer::new(file, Arc::new(w)).len(Some(0));
    /// # let block_on = |f| ferry_testkit::block_on(f);
    /// let done = block_on(async {
    ///     let handle = engine.submit_async(transfer).await?;
    ///     handle.cancel_on_drop().await
    /// })?;
    /// # assert_eq!(done.bytes, 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn submit_async(&self, transfer: Transfer) -> SubmitAsync<'_> {
        SubmitAsync {
            engine: self,
            transfer: Some(transfer),
            resolved: None,
            waiter: None,
        }
    }

    /// Stops taking new work: every later `submit`, `try_submit`, `submit_async` and
    /// `proxy` fails (`NotConnected`, "engine is shut down"), and tasks waiting in
    /// `submit_async` are woken with that error. Transfers in flight run on; dropping
    /// the engine cancels what is left.
    pub fn shutdown(&self) {
        self.gate.close();
    }

    /// Starts a two-way proxy between two connected sockets; see [`Proxy`].
    ///
    /// `InvalidInput` naming the argument for a non-socket, a listening socket, or the
    /// same socket twice. Waits like `submit` for two slots of `max_in_flight`.
    pub fn proxy(&self, proxy: Proxy) -> io::Result<ProxyHandle> {
        let [(up, ru), (down, rd)] = proxy.resolve(&self.fd_cache)?;
        self.gate.acquire(true).map_err(refused)?;
        if let Err(e) = self.gate.acquire(true) {
            self.gate.release();
            return Err(refused(e));
        }
        let group = Arc::new(Group::default());
        let hu = self.start(up, &ru, Some(group.clone()));
        let hd = self.start(down, &rd, Some(group.clone()));
        Ok(ProxyHandle::new(hu, hd, group))
    }

    /// Runs a resolved transfer whose gate slot is taken: the inline attempt, else an
    /// executor.
    fn start(&self, t: Transfer, r: &Resolved, group: Option<Arc<Group>>) -> TransferHandle {
        let gate = self.gate.clone();
        let start = Start {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            canceller: self.canceller.clone(),
            group,
            done: Box::new(move || gate.release()),
        };
        let caps = self.exec.caps(r.kind);
        let (slot, job) = crate::backend::inline::start(start, t, r, caps, &self.ctx, None);
        if let Some(job) = job {
            self.exec.submit(job);
        }
        TransferHandle::new(slot)
    }
    /// A snapshot of the statistics; cheap, callable from any thread.
    pub fn stats(&self) -> EngineStats {
        self.ctx
            .recorder
            .snapshot(self.runs_on.backend(), self.ctx.pool.stats())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.exec.shutdown();
    }
}

fn refused(why: Refused) -> io::Error {
    match why {
        Refused::Full => io::Error::new(
            io::ErrorKind::WouldBlock,
            "max_in_flight transfers are running; retry when one completes, or use submit() or submit_async() to wait",
        ),
        Refused::Closed => io::Error::new(io::ErrorKind::NotConnected, "engine is shut down"),
    }
}

/// The future of [`Engine::submit_async`]: resolves to the transfer's handle once a
/// slot is free. Dropping it before then submits nothing.
#[must_use = "a future does nothing unless polled"]
pub struct SubmitAsync<'a> {
    engine: &'a Engine,
    transfer: Option<Transfer>,
    resolved: Option<Resolved>,
    /// Our place in the gate's queue while waiting: dropped, we leave it (or pass a
    /// wake-up we got on).
    waiter: Option<u64>,
}

impl fmt::Debug for SubmitAsync<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitAsync")
            .field("transfer", &self.transfer)
            .field("waiting", &self.waiter.is_some())
            .finish()
    }
}

impl Future for SubmitAsync<'_> {
    type Output = io::Result<TransferHandle>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = &mut *self;
        let Some(t) = me.transfer.as_ref() else {
            return Poll::Ready(Err(io::Error::other("SubmitAsync polled after completion")));
        };
        if me.resolved.is_none() {
            match resolve(t, &me.engine.fd_cache) {
                Ok(r) => me.resolved = Some(r),
                Err(e) => {
                    me.transfer = None;
                    return Poll::Ready(Err(e));
                }
            }
        }
        match me.engine.gate.poll_acquire(cx, &mut me.waiter) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(why)) => {
                me.transfer = None;
                Poll::Ready(Err(refused(why)))
            }
            Poll::Ready(Ok(())) => {
                let t = me.transfer.take().expect("checked above");
                let r = me.resolved.take().expect("resolved above");
                Poll::Ready(Ok(me.engine.start(t, &r, None)))
            }
        }
    }
}

impl Drop for SubmitAsync<'_> {
    fn drop(&mut self) {
        self.engine.gate.forget(self.waiter.take());
    }
}
