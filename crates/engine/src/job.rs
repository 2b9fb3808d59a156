//! `Job`: a submitted transfer on its way through an executor — the plan, the fds and
//! pipe the kernel may use, the deadline, and the handle's slot. [`Job::finish`] is
//! the only way a transfer completes (inline, blocking and io_uring alike).

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ferry_pipes::PooledPipe;

use crate::handle::{Completed, Slot};
use crate::idle::IdleClock;
use crate::modes::NonBlocking;
use crate::plan::Plan;
use crate::resolved::FdKind;
use crate::stats::Recorder;
use crate::transfer::{SharedFd, TransferKind};

/// A transfer in an executor's hands.
pub(crate) struct Job {
    #[cfg_attr(not(ferry_uring), allow(dead_code))]
    pub id: u64,
    pub kind: TransferKind,
    pub src_kind: FdKind,
    pub dst_kind: FdKind,
    pub plan: Plan,
    pub src: SharedFd,
    pub dst: SharedFd,
    /// The pooled pipe of the splice strategy, taken on the first fill.
    pub pipe: Option<PooledPipe>,
    /// Streams (src, dst) kept non-blocking while this job owns them (see `modes`);
    /// inline, not a `Vec`: an idle proxied pair holds two jobs, and a heap block each
    /// was ~80 bytes of its memory.
    modes: [Option<NonBlocking>; 2],
    /// (src, dst) are streams known to be non-blocking (held by `modes`): a splice on
    /// them never waits, so an executor may make it as a plain syscall.
    pub nonblocking: (bool, bool),
    pub deadline: Option<Instant>,
    pub submitted: Instant,
    /// When an executor first worked on it.
    pub started: Option<Instant>,
    pub slot: Arc<Slot>,
    /// Idle timeout: no body byte moved for its duration → `TimedOut`.
    pub idle: Option<Arc<IdleClock>>,
    /// `shutdown(dst, SHUT_WR)` when the body ended at the source's EOF.
    pub half_close: bool,
    /// A small file body (at most `small_threshold`): the inline attempt may run it.
    pub small: bool,
    /// The source file's whole contents (a body cache's snapshot) for the memory
    /// strategy's gather sends.
    pub memory: Option<Arc<[u8]>>,
}

impl Job {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        kind: TransferKind,
        kinds: (FdKind, FdKind),
        plan: Plan,
        fds: (SharedFd, SharedFd),
        deadline: Option<Instant>,
        submitted: Instant,
        slot: Arc<Slot>,
    ) -> Job {
        Job {
            id,
            kind,
            src_kind: kinds.0,
            dst_kind: kinds.1,
            plan,
            src: fds.0,
            dst: fds.1,
            pipe: None,
            modes: [None, None],
            nonblocking: (false, false),
            deadline,
            submitted,
            started: None,
            slot,
            idle: None,
            half_close: false,
            small: false,
            memory: None,
        }
    }

    /// Before a backend takes over: streams become non-blocking (counted per fd) so
    /// that every wait is a poll the executor can cancel or time out.
    pub(crate) fn own_streams(&mut self) {
        if self.src_kind != FdKind::File && self.modes[0].is_none() {
            if let Some(g) = NonBlocking::acquire(&self.src) {
                self.modes[0] = Some(g);
                self.plan.src_became_nonblocking();
                self.nonblocking.0 = true;
            }
        }
        if self.dst_kind != FdKind::File && self.modes[1].is_none() {
            if let Some(g) = NonBlocking::acquire(&self.dst) {
                self.modes[1] = Some(g);
                self.nonblocking.1 = true;
            }
        }
    }

    /// Marks the start of work (queueing time ends here).
    pub(crate) fn start(&mut self) {
        self.started.get_or_insert_with(Instant::now);
    }

    /// Stops the plan if the transfer was cancelled, its deadline passed or it was
    /// idle too long; true if this call stopped it.
    pub(crate) fn check_stop(&mut self, now: Instant) -> bool {
        if self.plan.is_done() {
            false
        } else if self.slot.cancel_requested() {
            self.plan
                .stop(io::ErrorKind::Interrupted, "transfer cancelled");
            true
        } else if self.deadline.is_some_and(|d| now >= d) {
            self.plan
                .stop(io::ErrorKind::TimedOut, "transfer timed out");
            true
        } else if self.idle.as_ref().is_some_and(|c| c.expired(now)) {
            self.plan
                .stop(io::ErrorKind::TimedOut, "idle timeout: no byte moved");
            true
        } else {
            false
        }
    }

    /// `check_stop` at the present instant, reading the clock only when the job has a
    /// deadline or an idle timeout (most have neither: one clock read per step saved).
    pub(crate) fn check_stop_now(&mut self) -> bool {
        let now = if self.deadline.is_some() || self.idle.is_some() {
            Instant::now()
        } else {
            // Only cancel can stop it; the instant is not looked at.
            self.started.unwrap_or_else(Instant::now)
        };
        self.check_stop(now)
    }

    /// The next instant at which `check_stop` may stop the job by itself.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let idle = self.idle.as_ref().map(|c| c.expires());
        match (self.deadline, idle) {
            (Some(d), Some(i)) => Some(d.min(i)),
            (d, i) => d.or(i),
        }
    }

    /// Gives an empty pipe back to the pool while the job waits for its source, so
    /// idle streams (a proxy's quiet direction) hold no pipe.
    pub(crate) fn release_idle_pipe(&mut self) {
        if self.plan.in_pipe() == 0 {
            self.pipe = None;
        }
    }

    /// Publishes the body bytes delivered so far (`TransferHandle::progress`).
    pub(crate) fn report_progress(&self) {
        let bytes = self.plan.body_bytes();
        let before = self.slot.progress.swap(bytes, Ordering::AcqRel);
        if bytes > before {
            if let Some(c) = &self.idle {
                c.touch();
            }
        }
    }

    /// Completes the transfer: discards a pipe that may hold bytes, gives the streams
    /// their mode back, records stats, releases fds and buffers, then wakes the
    /// handle. Call only once the kernel has finished with every fd and buffer.
    pub(crate) fn finish(mut self, recorder: &Recorder) {
        let result = self.settle(recorder, true);
        let slot = self.slot.clone();
        drop(self); // fds and buffers go before anyone is woken
        slot.complete(result);
    }

    /// Completes the handle of a job whose ops may still be in a kernel that can no
    /// longer be asked (the ring failed): the job's fds, buffers and pipe are leaked,
    /// never freed while the kernel might use them.
    #[cfg_attr(not(ferry_uring), allow(dead_code))]
    pub(crate) fn abandon(mut self, recorder: &Recorder) {
        self.plan
            .stop(io::ErrorKind::Other, "io_uring failed; transfer abandoned");
        let result = self.settle(recorder, false);
        let slot = self.slot.clone();
        std::mem::forget(self);
        slot.complete(result);
    }

    /// The result, with stats recorded; with `release`, the pipe (discarded if it may
    /// hold bytes) and the streams' modes are given back.
    fn settle(&mut self, recorder: &Recorder, release: bool) -> io::Result<Completed> {
        let error = self.plan.take_error();
        if release {
            if error.is_none() && self.half_close {
                // The source ended: tell the destination's peer (a proxy's half-close).
                let _ = crate::sys::shutdown_write(self.dst.as_fd());
            }
            if let Some(pipe) = self.pipe.take() {
                if error.is_some() || self.plan.in_pipe() > 0 {
                    pipe.discard();
                }
            }
            self.modes = [None, None];
            self.nonblocking = (false, false);
        }
        self.report_progress();
        let started = self.started.unwrap_or(self.submitted);
        let queued = started.saturating_duration_since(self.submitted);
        let elapsed = started.elapsed();
        let body = self.plan.body_bytes();
        recorder
            .short
            .fetch_add(self.plan.short_writes(), Ordering::Relaxed);
        recorder.record(self.kind, body, error.is_none(), queued, elapsed);
        match error {
            Some(e) => Err(e),
            None => Ok(Completed {
                bytes: body,
                header_bytes: self.plan.header_bytes(),
                trailer_bytes: self.plan.trailer_bytes(),
                kind: self.kind,
                queued,
                elapsed,
            }),
        }
    }

    /// Fails the job with `kind` (`why`) and completes it; nothing of it may be in
    /// the kernel.
    pub(crate) fn fail(mut self, recorder: &Recorder, kind: io::ErrorKind, why: &'static str) {
        self.plan.stop(kind, why);
        self.finish(recorder);
    }
}
