//! `Engine`, its builder, backend selection, submission and backpressure.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ferry_pipes::{PipePool, PoolConfig};

use crate::handle::{Completed, Slot, TransferError, TransferHandle};
use crate::stats::{EngineStats, Recorder};
use crate::transfer::{Plan, SharedFd, Transfer};

/// Which machinery runs the transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring where it works, else blocking. `FERRY_BACKEND=io_uring|blocking`
    /// overrides this choice.
    Auto,
    /// io_uring rings; building fails where io_uring is unavailable.
    IoUring,
    /// A thread pool making blocking `sendfile`/`splice`/`copy_file_range` calls.
    Blocking,
}

/// Settings shared by both backends.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub threads: usize,
    pub max_in_flight: usize,
    pub small_threshold: u64,
    pub ring_entries: u32,
    pub iowq_max_workers: u32,
    pub link_splices: bool,
}

/// Builds an [`Engine`]; from [`Engine::builder`].
#[derive(Debug, Clone)]
pub struct EngineBuilder {
    backend: Backend,
    config: Config,
    pipe_size: usize,
    pipe_pool_capacity: usize,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        EngineBuilder {
            backend: Backend::Auto,
            config: Config {
                threads: cores,
                max_in_flight: 4096,
                small_threshold: 64 * 1024,
                ring_entries: 512,
                iowq_max_workers: 16,
                link_splices: true,
            },
            pipe_size: 1 << 20,
            pipe_pool_capacity: 64,
        }
    }
}

impl EngineBuilder {
    /// Which backend to use (default [`Backend::Auto`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Worker threads: rings (io_uring) or blocking workers (default: one per core for
    /// io_uring; the blocking backend uses 4 per core, since each holds one transfer).
    pub fn threads(mut self, n: usize) -> Self {
        self.config.threads = n.max(1);
        self
    }

    /// Most transfers in flight; `submit` waits and `try_submit` fails with
    /// `WouldBlock` at the bound (default 4096).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n.max(1);
        self
    }

    /// Bodies up to this many bytes go through a buffer (io_uring `READ` + `SEND`, no
    /// io-wq hand-off); larger ones are spliced through a pooled pipe (default 64 KiB).
    pub fn small_threshold(mut self, bytes: u64) -> Self {
        self.config.small_threshold = bytes;
        self
    }

    /// Capacity of each pooled pipe (default 1 MiB, clamped to pipe-max-size).
    pub fn pipe_size(mut self, bytes: usize) -> Self {
        self.pipe_size = bytes;
        self
    }

    /// Idle pipes kept in the engine's pool (default 64).
    pub fn pipe_pool_capacity(mut self, n: usize) -> Self {
        self.pipe_pool_capacity = n;
        self
    }

    /// Submission queue entries per ring (default 512; the CQ gets 4×).
    pub fn ring_entries(mut self, n: u32) -> Self {
        self.config.ring_entries = n.clamp(8, 32768);
        self
    }

    /// Cap on io-wq workers per ring for sockets and pipes (default 16); every
    /// `SPLICE` runs on one of these.
    pub fn iowq_max_workers(mut self, n: u32) -> Self {
        self.config.iowq_max_workers = n.max(1);
        self
    }

    /// io_uring: submit each pipe fill hard-linked to its drain (one ring round trip per
    /// chunk instead of two). Default on; `false` runs the plain one-op state machine.
    pub fn link_splices(mut self, on: bool) -> Self {
        self.config.link_splices = on;
        self
    }

    /// Builds the engine and starts its threads.
    ///
    /// `Backend::IoUring` where io_uring is unavailable is an error (`Unsupported` or the
    /// kernel's error); `Backend::Auto` then falls back to blocking and says so in
    /// [`Engine::fallback_reason`].
    pub fn build(self) -> io::Result<Engine> {
        let pool = PipePool::new(PoolConfig {
            capacity: self.pipe_pool_capacity,
            pipe_size: self.pipe_size,
            nonblocking: true,
        })?;
        let recorder = Arc::new(Recorder::default());
        let gate = Arc::new(Gate::new(self.config.max_in_flight));
        let ctx = Ctx {
            recorder: recorder.clone(),
            pool: pool.clone(),
            config: self.config.clone(),
        };
        let wanted = match (self.backend, std::env::var("FERRY_BACKEND")) {
            (Backend::Auto, Ok(v)) => match v.as_str() {
                "io_uring" | "uring" | "iouring" => Backend::IoUring,
                "blocking" => Backend::Blocking,
                "" | "auto" => Backend::Auto,
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("FERRY_BACKEND={other}: expected io_uring, blocking or auto"),
                    ))
                }
            },
            (b, _) => b,
        };
        let mut fallback_reason = None;
        let helper_ctx = ctx.clone();
        let imp: Box<dyn BackendImpl> = match wanted {
            Backend::Blocking => Box::new(crate::blocking::Blocking::start(ctx)?),
            Backend::IoUring => start_uring(ctx)?,
            Backend::Auto => match start_uring(ctx.clone()) {
                Ok(imp) => imp,
                Err(e) => {
                    let reason = format!("io_uring unavailable ({e}); using the blocking backend");
                    fallback_reason = Some(reason);
                    Box::new(crate::blocking::Blocking::start(ctx)?)
                }
            },
        };
        // io_uring has no copy_file_range opcode: file → file runs on a few blocking
        // workers with copy_file_range (measured 3.0 vs 1.9 GB/s through io-wq splices).
        let file_helper = match imp.kind() {
            Backend::IoUring => {
                let mut c = helper_ctx;
                c.config.threads = 1;
                Some(crate::blocking::Blocking::start(c)?)
            }
            _ => None,
        };
        Ok(Engine {
            file_helper,
            canceller: Arc::from(imp.canceller()),
            fd_cache: Default::default(),
            backend: imp.kind(),
            imp,
            gate,
            recorder,
            pool,
            next_id: AtomicU64::new(1),
            fallback_reason,
            small_threshold: self.config.small_threshold,
        })
    }
}

#[cfg(target_os = "linux")]
fn start_uring(ctx: Ctx) -> io::Result<Box<dyn BackendImpl>> {
    Ok(Box::new(crate::uring::Uring::start(ctx)?))
}

#[cfg(not(target_os = "linux"))]
fn start_uring(_ctx: Ctx) -> io::Result<Box<dyn BackendImpl>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "io_uring exists only on Linux",
    ))
}

/// What the backends share: stats, the pipe pool, settings.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub recorder: Arc<Recorder>,
    pub pool: PipePool,
    pub config: Config,
}

/// A checked transfer on its way to a backend.
pub(crate) struct Job {
    pub plan: Plan,
    /// Fds this job switched to O_NONBLOCK; switched back before the handle completes.
    pub made_nonblocking: Vec<std::os::fd::RawFd>,
    pub src: SharedFd,
    pub dst: SharedFd,
    pub header: Vec<u8>,
    pub trailer: Vec<u8>,
    pub deadline: Option<Instant>,
    pub submitted: Instant,
    pub slot: Arc<Slot>,
    /// Bytes the inline path already sent before handing the rest to the backend.
    pub pre: crate::inline::Sent,
}

/// How a job ended, for [`Job::finish`].
pub(crate) struct Outcome {
    pub started: Instant,
    pub body: u64,
    pub header: u64,
    pub trailer: u64,
    pub error: Option<io::Error>,
}

impl Job {
    /// Records stats and delivers the result. Call after the kernel is done with every
    /// fd and buffer of the job (the job's `Arc`s are dropped here).
    pub(crate) fn finish(self, ctx: &Ctx, out: Outcome) {
        let mut out = out;
        let pre = self.pre;
        if pre != crate::inline::Sent::default() {
            out.header += pre.header;
            out.body += pre.body;
            out.trailer += pre.trailer;
            if let Some(e) = out.error.take() {
                out.error = Some(crate::handle::TransferError::rebase(e, out.body));
            }
        }
        let queued = out.started.saturating_duration_since(self.submitted);
        let elapsed = out.started.elapsed();
        ctx.recorder.record(
            self.plan.kind,
            out.body,
            out.error.is_none(),
            queued,
            elapsed,
        );
        let result = match out.error {
            Some(e) => Err(e),
            None => Ok(Completed {
                bytes: out.body,
                header_bytes: out.header,
                trailer_bytes: out.trailer,
                kind: self.plan.kind,
                queued,
                elapsed,
            }),
        };
        for &fd in &self.made_nonblocking {
            set_nonblocking(fd, false);
        }
        let slot = self.slot.clone();
        drop(self); // release fds and buffers before anyone is woken
        slot.complete(result);
    }

    /// Fails a job that never reached the kernel (e.g. submitted during shutdown).
    pub(crate) fn fail_before_start(self, ctx: &Ctx, error: io::Error) {
        let out = Outcome {
            started: Instant::now(),
            body: 0,
            header: 0,
            trailer: 0,
            error: Some(error),
        };
        self.finish(ctx, out);
    }

    /// The error a cancelled or timed-out job fails with, if it should stop now.
    pub(crate) fn stop_reason(&self, now: Instant, body: u64) -> Option<io::Error> {
        if self.slot.cancel_requested() {
            Some(TransferError::io(
                io::ErrorKind::Interrupted,
                body,
                "transfer cancelled",
            ))
        } else if self.deadline.is_some_and(|d| now >= d) {
            Some(TransferError::io(
                io::ErrorKind::TimedOut,
                body,
                "transfer timed out",
            ))
        } else {
            None
        }
    }
}

/// Sets or clears O_NONBLOCK on `fd` (best effort: the fd is alive, held by the job).
pub(crate) fn set_nonblocking(fd: std::os::fd::RawFd, on: bool) -> bool {
    // SAFETY: F_GETFL/F_SETFL on an fd kept open by the job's Arc.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 {
            return false;
        }
        let new = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        new == fl || libc::fcntl(fd, libc::F_SETFL, new) == 0
    }
}

/// The error of transfers stopped because the engine is being dropped.
pub(crate) fn shutdown_error(body: u64) -> io::Error {
    TransferError::io(io::ErrorKind::Interrupted, body, "engine shut down")
}

/// What a backend provides to the engine.
pub(crate) trait BackendImpl: Send + Sync {
    fn kind(&self) -> Backend;
    /// Hands a job over; the backend must finish it eventually (also at shutdown).
    fn submit(&self, job: Job);
    /// Tells the backend the transfer `id` was asked to cancel (its flag is already set).
    fn canceller(&self) -> Box<dyn Fn(u64) + Send + Sync>;
    /// Stops accepting work, cancels what runs, waits for the kernel, joins threads.
    fn shutdown(&mut self);
}

/// Bounds the transfers in flight.
pub(crate) struct Gate {
    /// (in flight, submitters waiting)
    count: Mutex<(usize, usize)>,
    cv: Condvar,
    max: usize,
}

impl Gate {
    fn new(max: usize) -> Self {
        Gate {
            count: Mutex::new((0, 0)),
            cv: Condvar::new(),
            max,
        }
    }

    fn acquire(&self, wait: bool) -> bool {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while n.0 >= self.max {
            if !wait {
                return false;
            }
            n.1 += 1;
            n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner());
            n.1 -= 1;
        }
        n.0 += 1;
        true
    }

    fn release(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        n.0 -= 1;
        let waiters = n.1;
        drop(n);
        if waiters > 0 {
            self.cv.notify_one(); // a futex syscall: only when someone waits
        }
    }
}

/// Runs many transfers at once; see the [crate documentation](crate).
///
/// `Send + Sync`: share it in an `Arc`. Dropping it cancels the transfers still in
/// flight (they fail with `Interrupted`), waits until the kernel has finished with every
/// fd and buffer, then joins its threads.
pub struct Engine {
    backend: Backend,
    imp: Box<dyn BackendImpl>,
    gate: Arc<Gate>,
    recorder: Arc<Recorder>,
    pool: PipePool,
    next_id: AtomicU64,
    fallback_reason: Option<String>,
    small_threshold: u64,
    canceller: Arc<dyn Fn(u64) + Send + Sync>,
    fd_cache: crate::transfer::FdCache,
    /// Runs file → file transfers of an io_uring engine (see `build`).
    file_helper: Option<crate::blocking::Blocking>,
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
    /// An engine with the default settings and [`Backend::Auto`].
    pub fn new() -> io::Result<Engine> {
        Engine::builder().build()
    }

    /// A builder for the settings.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The backend really in use: [`Backend::IoUring`] or [`Backend::Blocking`].
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Why `Backend::Auto` fell back to the blocking backend, if it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Starts a transfer; waits while `max_in_flight` transfers are running.
    ///
    /// Bad fds or arguments fail here with `InvalidInput` naming the argument (a socket
    /// or pipe with a `src_offset`, a directory, a write-only source, an `O_APPEND`
    /// destination, …). Everything else is reported through the handle.
    pub fn submit(&self, transfer: Transfer) -> io::Result<TransferHandle> {
        self.submit_inner(transfer, true)
    }

    /// Like [`submit`](Self::submit) but fails with `WouldBlock` instead of waiting
    /// when `max_in_flight` transfers are running.
    pub fn try_submit(&self, transfer: Transfer) -> io::Result<TransferHandle> {
        self.submit_inner(transfer, false)
    }

    fn submit_inner(&self, t: Transfer, wait: bool) -> io::Result<TransferHandle> {
        let plan = t.plan(&self.fd_cache)?;
        if !self.gate.acquire(wait) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "max_in_flight transfers are running",
            ));
        }
        let submitted = Instant::now();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let gate = self.gate.clone();
        let rec = self.recorder.clone();
        rec.in_flight.fetch_add(1, Ordering::Relaxed);
        let slot = Slot::new(
            id,
            self.canceller.clone(),
            Box::new(move || {
                rec.in_flight.fetch_sub(1, Ordering::Relaxed);
                gate.release();
            }),
        );
        let mut plan = plan;
        let (mut header, mut trailer) = (t.header, t.trailer);
        let mut pre = crate::inline::Sent::default();
        match crate::inline::attempt(&plan, &header, &trailer, self.small_threshold) {
            crate::inline::Inline::Skipped => {}
            crate::inline::Inline::Progress {
                sent,
                complete: true,
                started,
            } => {
                let elapsed = started.elapsed();
                self.recorder
                    .record(plan.kind, sent.body, true, Duration::ZERO, elapsed);
                slot.complete(Ok(Completed {
                    bytes: sent.body,
                    header_bytes: sent.header,
                    trailer_bytes: sent.trailer,
                    kind: plan.kind,
                    queued: Duration::ZERO,
                    elapsed,
                }));
                return Ok(TransferHandle::new(slot));
            }
            crate::inline::Inline::Progress { sent, .. } => {
                // The backend does the rest: what is left of each part.
                header.drain(..sent.header as usize);
                trailer.drain(..sent.trailer as usize);
                let hint = plan.body_hint().unwrap_or(0);
                plan.src_off = plan.src_off.map(|o| o + sent.body);
                plan.len = Some(hint - sent.body);
                plan.src_avail = plan.src_avail.map(|a| a.saturating_sub(sent.body));
                pre = sent;
            }
            crate::inline::Inline::Failed(e, started) => {
                self.recorder
                    .record(plan.kind, 0, false, Duration::ZERO, started.elapsed());
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                slot.complete(Err(TransferError::os(errno, 0)));
                return Ok(TransferHandle::new(slot));
            }
        }
        let made_nonblocking = plan.make_streams_nonblocking();
        let job = Job {
            pre,
            made_nonblocking,
            plan,
            src: t.src,
            dst: t.dst,
            header,
            trailer,
            deadline: t.timeout.map(|d| submitted + d),
            submitted,
            slot: slot.clone(),
        };
        match &self.file_helper {
            Some(h) if job.plan.kind == crate::transfer::TransferKind::FileToFile => h.submit(job),
            _ => self.imp.submit(job),
        }
        Ok(TransferHandle::new(slot))
    }

    /// A snapshot of the statistics; cheap, callable from any thread.
    pub fn stats(&self) -> EngineStats {
        self.recorder.snapshot(self.backend, self.pool.stats())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.imp.shutdown();
        if let Some(h) = &mut self.file_helper {
            h.shutdown();
        }
    }
}

/// Poll granularity of blocking waits: how soon a cancel or timeout is noticed.
pub(crate) const TICK: Duration = Duration::from_millis(20);
