//! The blocking executor: a pool of threads, each running one job's plan at a time
//! with plain syscalls (`sendfile`, `splice` through a pooled pipe, `copy_file_range`,
//! `pread` + `send`). Used where io_uring is unavailable or forced off, and by the
//! io_uring engine for file → file (io_uring has no `copy_file_range` opcode).
//!
//! Streams are non-blocking while a job owns them, and every wait is a `poll` of at
//! most [`TICK`], so a cancel, a timeout or the engine's shutdown is noticed within
//! one tick. A regular file's read can still wait for the disk (the kernel decides).

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::drive::{drive, Issued};
use super::{steps, Ctx, Executor, TICK};
use crate::backend_kind::RunsOn;
use crate::job::Job;
use crate::plan::{Caps, Side, Step};
use crate::transfer::TransferKind;

pub(crate) struct Blocking {
    ctx: Ctx,
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

/// Told the id of each job a worker finished (a `LocalEngine` ring's file helper: the
/// owner's next turn reports it).
pub(crate) type Notify = Arc<dyn Fn(u64) + Send + Sync>;

impl Blocking {
    /// Starts `n` worker threads named `{name}-{i}`.
    pub(crate) fn start(ctx: Ctx, n: usize, name: &str) -> io::Result<Blocking> {
        Blocking::start_notifying(ctx, n, name, None)
    }

    /// [`start`](Self::start), with `notify` told of each job finished.
    pub(crate) fn start_notifying(
        ctx: Ctx,
        n: usize,
        name: &str,
        notify: Option<Notify>,
    ) -> io::Result<Blocking> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let stopping = Arc::new(AtomicBool::new(false));
        let mut me = Blocking {
            ctx: ctx.clone(),
            tx: Some(tx),
            threads: Vec::with_capacity(n),
            stopping: stopping.clone(),
        };
        for i in 0..n.max(1) {
            let (rx, ctx, stopping) = (rx.clone(), ctx.clone(), stopping.clone());
            let notify = notify.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker(rx, ctx, stopping, notify));
            match spawned {
                Ok(t) => me.threads.push(t),
                Err(e) => {
                    me.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(me)
    }
}

impl Executor for Blocking {
    fn runs_on(&self) -> RunsOn {
        RunsOn::ThreadPool
    }

    fn caps(&self, _kind: TransferKind) -> Caps {
        Caps::SYSCALLS
    }

    fn submit(&self, job: Job) {
        let job = match &self.tx {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => job,
        };
        job.fail(
            &self.ctx.recorder,
            io::ErrorKind::Interrupted,
            "engine shut down",
        );
    }

    fn canceller(&self) -> Arc<dyn Fn(u64) + Send + Sync> {
        Arc::new(|_| {}) // workers look at the slot's flag before every step and tick
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.tx = None; // workers drain the queue (failing each job) and exit
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(rx: Receiver<Job>, ctx: Ctx, stopping: Arc<AtomicBool>, notify: Option<Notify>) {
    for mut job in rx.iter() {
        run(&mut job, &ctx, &stopping);
        let id = job.id;
        job.finish(&ctx.recorder);
        if let Some(n) = &notify {
            n(id);
        }
    }
}

/// Runs the job's plan to its end with syscalls.
fn run(job: &mut Job, ctx: &Ctx, stopping: &AtomicBool) {
    drive(job, |job, step| {
        if stopping.load(Ordering::Acquire) {
            job.plan
                .stop(io::ErrorKind::Interrupted, "engine shut down");
            return Issued::Again;
        }
        match step {
            Step::Poll(side) => {
                if side == Side::Src {
                    job.release_idle_pipe();
                }
                // Asked again every tick while waiting: count the wait once, when it ends.
                match wait(job, side) {
                    Some(r) => {
                        ctx.recorder.eagain.fetch_add(1, Ordering::Relaxed);
                        Issued::Ran(r)
                    }
                    None => Issued::Again,
                }
            }
            _ => Issued::Ran(steps::run(job, step, &ctx.pool, false)),
        }
    });
}

/// Polls one side for at most a tick (less when the deadline is nearer); `None` when
/// it is not ready yet (the caller checks cancel/deadline and asks again).
fn wait(job: &Job, side: Side) -> Option<Result<usize, i32>> {
    let mut ms = TICK.as_millis() as i32;
    if let Some(d) = job.next_timer() {
        let left = d.saturating_duration_since(Instant::now());
        ms = ms.min(left.as_millis() as i32 + 1);
    }
    let (fd, writable) = match side {
        Side::Src => (job.src.as_fd(), false),
        Side::Dst => (job.dst.as_fd(), true),
    };
    match crate::sys::poll(fd, writable, ms) {
        Ok(true) => Some(Ok(1)),
        Ok(false) => None,
        Err(e) => Some(Err(e)),
    }
}
