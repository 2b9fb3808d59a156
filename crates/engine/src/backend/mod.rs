//! The backend contract: what every executor of transfers owes the engine.
//!
//! An executor receives [`Job`]s — a checked transfer with its [`Plan`](crate::plan::Plan),
//! its fds (`Arc`s), its handle's slot and deadline — and runs the plan through the one
//! step loop, [`drive::drive`]: it supplies how a step is carried out (a syscall, an
//! io_uring op, a readiness wait) and, for a step left pending, gives the result to
//! `job.plan.complete(step, result)` when it comes and drives again, until the plan is
//! done. It never decides transfer semantics itself (EOF
//! before `len`, `MORE`, byte accounting, which side to poll): the plan does.
//!
//! Every executor must:
//! 1. **complete each job exactly once**, through [`Job::finish`], and only after the
//!    kernel has released everything the job owns: no op of the job in flight, no
//!    syscall on its fds running. Until then the job (its fds, buffers, pipe) stays
//!    alive, even if the ring fails (then it is leaked, never freed early);
//! 2. **honour cancel and deadline at every step**: before each step, and while
//!    waiting, `job.check_stop(now)`; a wait lasts at most until the deadline (or a
//!    short tick), and an op in the kernel is asked to stop (`AsyncCancel`);
//! 3. **report bytes moved even when stopping**: the result of an op that finished
//!    while being cancelled is still given to the plan;
//! 4. **never put a pipe that may hold bytes back in the pool**: `Job::finish` discards
//!    the pipe of a failed job or one with bytes in it; an executor never returns a
//!    pipe any other way;
//! 5. **keep the caller's thread free** (except the inline attempt, which makes only
//!    calls that cannot block: `MSG_DONTWAIT` sends, `RWF_NOWAIT` reads);
//! 6. **at shutdown**, fail what has not started and stop what runs (`Interrupted`,
//!    "engine shut down"), wait for the kernel, then join its threads.
//!
//! Executors, all here: [`blocking`] (threads making syscalls; also runs file → file for
//! an io_uring engine, since io_uring has no `copy_file_range`), `uring` (a ring per
//! driver thread, or one driven by a `LocalEngine`'s owner), [`readiness`] (a
//! `LocalEngine` without io_uring: non-blocking syscalls on epoll readiness), and the
//! inline attempt ([`inline`]) on the submitting thread. A `LocalEngine`'s connection
//! ops (accept, recv, send, connect, timeout, close) are in [`ops`], one per file, each
//! with its io_uring and its readiness side.

pub(crate) mod blocking;
pub(crate) mod drive;
pub(crate) mod inline;
pub(crate) mod ops;
#[cfg(target_os = "linux")]
pub(crate) mod readiness;
pub(crate) mod steps;
#[cfg(ferry_uring)]
pub(crate) mod uring;

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use ferry_pipes::{PipePool, PoolConfig};

use crate::backend_kind::{Backend, RunsOn};
use crate::events::Event;
use crate::job::Job;
use crate::plan::Caps;
use crate::stats::Recorder;
use crate::transfer::TransferKind;
use ops::ConnOp;

/// How long a blocking wait lasts at most: how soon a cancel is noticed.
pub(crate) const TICK: Duration = Duration::from_millis(20);

/// Settings of the executors.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub threads: usize,
    pub max_in_flight: usize,
    pub small_threshold: u64,
    pub ring_entries: u32,
    pub iowq_max_workers: u32,
    pub link_splices: bool,
}

/// What the executors share: stats, the pipe pool, settings.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub recorder: Arc<Recorder>,
    pub pool: PipePool,
    pub config: Config,
}

impl Default for Config {
    /// `Engine`'s defaults: one ring (or four workers) per core.
    fn default() -> Config {
        Config {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_in_flight: 4096,
            small_threshold: 64 * 1024,
            ring_entries: 512,
            iowq_max_workers: 16,
            link_splices: true,
        }
    }
}

impl Ctx {
    /// Fresh stats and a pipe pool of `pool_capacity` idle non-blocking pipes of
    /// `pipe_size` bytes.
    pub(crate) fn new(config: Config, pipe_size: usize, pool_capacity: usize) -> io::Result<Ctx> {
        Ok(Ctx {
            recorder: Arc::new(Recorder::default()),
            pool: PipePool::new(PoolConfig {
                capacity: pool_capacity,
                pipe_size,
                nonblocking: true,
            })?,
            config,
        })
    }
}

/// An executor driven by its owner's thread (`LocalEngine`): the same contract, plus
/// connection ops, and nothing happens between two `turn`s (except in the kernel).
pub(crate) trait LocalExec {
    fn runs_on(&self) -> RunsOn;
    fn caps(&self, kind: TransferKind) -> Caps;
    fn submit(&mut self, job: Job);
    fn start_conn(&mut self, id: u64, op: Box<dyn ConnOp>);
    fn cancel_conn(&mut self, id: u64);
    /// Submits, waits at most `timeout` for a completion, reaps; events (transfers
    /// done included) are appended to `out`.
    fn turn(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()>;
    /// Readable when completions wait (for epoll / mio / tokio).
    fn fd(&self) -> BorrowedFd<'_>;
    fn canceller(&self) -> Arc<dyn Fn(u64) + Send + Sync>;
    /// Stops everything, waits for the kernel.
    fn shutdown(&mut self);
}

/// An executor of jobs; see the [module documentation](self) for the contract.
pub(crate) trait Executor: Send + Sync {
    /// What really runs.
    fn runs_on(&self) -> RunsOn;
    /// What this executor can do for a transfer of `kind` (the plan's strategy).
    fn caps(&self, kind: TransferKind) -> Caps;
    /// Takes a job; it will be completed exactly once (also at shutdown).
    fn submit(&self, job: Job);
    /// A function that tells the executor that transfer `id` was asked to cancel (its
    /// flag is already set in the slot).
    fn canceller(&self) -> Arc<dyn Fn(u64) + Send + Sync>;
    /// Stops taking work, stops what runs, waits for the kernel, joins threads.
    fn shutdown(&mut self);
}

/// The executor `backend` asks for (after the `FERRY_BACKEND` override), the one choice
/// `Engine` and `LocalEngine` share: io_uring, the portable executor, or — `Auto` —
/// io_uring where it starts, else the portable one with the reason why (for
/// `fallback_reason`). `portable_name` says which portable executor that is.
pub(crate) fn choose<E>(
    backend: Backend,
    uring: impl Fn() -> io::Result<E>,
    portable: impl FnOnce() -> io::Result<E>,
    portable_name: &str,
) -> io::Result<(E, Option<String>)> {
    match backend.with_env_override()? {
        Backend::Blocking => Ok((portable()?, None)),
        Backend::IoUring => Ok((uring()?, None)),
        Backend::Auto => match uring() {
            Ok(e) => Ok((e, None)),
            Err(e) => {
                let why = format!("io_uring unavailable ({e}); using {portable_name}");
                Ok((portable()?, Some(why)))
            }
        },
    }
}

/// What starting io_uring says in a build without it.
#[cfg(not(ferry_uring))]
pub(crate) fn uring_not_compiled() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "io_uring is not compiled in (not Linux, or --cfg ferry_force_fallback)",
    )
}
