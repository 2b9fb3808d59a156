//! `Engine`: submission (checks, backpressure, the inline attempt) in front of one
//! executor, and statistics.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Ctx, Executor};
use crate::backend_kind::Backend;
use crate::gate::Gate;
use crate::handle::{Slot, TransferHandle};
use crate::job::Job;
use crate::plan::Plan;
use crate::resolve::{resolve, FdCache};
use crate::stats::EngineStats;
use crate::transfer::Transfer;

/// Runs many transfers at once; see the [crate documentation](crate).
///
/// `Send + Sync`: share it in an `Arc`. Dropping it cancels the transfers still in
/// flight (they fail with `Interrupted`), waits until the kernel has finished with every
/// fd and buffer, then joins its threads.
pub struct Engine {
    backend: Backend,
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
            .field("backend", &self.backend)
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
            backend: exec.kind(),
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
        self.backend
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
        if !self.gate.acquire(wait) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "max_in_flight transfers are running; retry when one completes, or use submit() to wait",
            ));
        }
        let submitted = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (gate, rec) = (self.gate.clone(), self.ctx.recorder.clone());
        rec.in_flight.fetch_add(1, Ordering::Relaxed);
        let slot = Slot::new(
            id,
            self.canceller.clone(),
            Box::new(move || {
                rec.in_flight.fetch_sub(1, Ordering::Relaxed);
                gate.release();
            }),
        );
        let caps = self.exec.caps(r.kind);
        let small = self.ctx.config.small_threshold;
        let plan = Plan::new(&r, t.header, t.trailer, caps, small);
        let mut job = Job::new(
            id,
            r.kind,
            (r.src_kind, r.dst_kind),
            plan,
            (t.src, t.dst),
            t.timeout.map(|d| submitted + d),
            submitted,
            slot.clone(),
        );
        let rec = &self.ctx.recorder;
        if crate::inline::eligible(&job) {
            if crate::inline::attempt(&mut job, &self.ctx.pool) {
                rec.inline_done.fetch_add(1, Ordering::Relaxed);
                job.finish(rec);
                return Ok(TransferHandle::new(slot));
            }
            rec.inline_handoff.fetch_add(1, Ordering::Relaxed);
        }
        job.own_streams();
        self.exec.submit(job);
        Ok(TransferHandle::new(slot))
    }

    /// A snapshot of the statistics; cheap, callable from any thread.
    pub fn stats(&self) -> EngineStats {
        self.ctx
            .recorder
            .snapshot(self.backend, self.ctx.pool.stats())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.exec.shutdown();
    }
}
