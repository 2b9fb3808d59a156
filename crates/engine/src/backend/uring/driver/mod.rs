//! The driver of one ring: a thread that takes jobs from a channel, turns each job's
//! plan steps into SQEs, submits and reaps in batches, and completes jobs once the
//! kernel is done with them.
//!
//! A job lives in the driver's table from the moment it arrives until the CQE of its
//! last op has been reaped; only then is it finished (fds, buffers, pipe released,
//! handle woken). Each job has one op in flight, or one hard-linked fill → drain pair.
//! Ops are named in `user_data` by the job's id (never reused), not by its table
//! slot, so a late cancel can never hit another job that took the slot.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use io_uring::{cqueue, opcode, types, IoUring};
use slab::Slab;

use super::conn::ConnTable;
use super::sqe::{self, Backlog};
use super::wake::Wake;
use crate::backend::drive::{drive, Issued};
use crate::backend::Ctx;
use crate::error::{errno_of, from_ret};
use crate::events::Event;
use crate::job::Job;
use crate::plan::Step;
use crate::resolved::FdKind;

/// `user_data` = tag in the top 8 bits, job id below.
const TAG_SHIFT: u32 = 56;
const ID_MASK: u64 = (1 << TAG_SHIFT) - 1;
const TAG_OP: u64 = 0;
/// The drain hard-linked behind a fill.
const TAG_LINKED: u64 = 1;
const TAG_CANCEL: u64 = 2;
const TAG_WAKE: u64 = 3;
/// A connection op of a `LocalEngine` (accept, recv, send, timeout, close).
const TAG_CONN: u64 = 4;
/// How often an unanswered `AsyncCancel` is sent again.
const RECANCEL: Duration = Duration::from_millis(100);

fn ud(tag: u64, id: u64) -> u64 {
    (tag << TAG_SHIFT) | (id & ID_MASK)
}

/// What reaches a driver through its channel.
pub(crate) enum Msg {
    Submit(Box<Job>),
    Cancel(u64),
    /// Local mode: transfer `id`, run on another thread, has completed.
    Done(u64),
    Shutdown,
    /// Tests: behave as if the ring failed.
    #[cfg(test)]
    Fail,
}

/// A job in the driver's table and the op(s) it has in the kernel.
struct Running {
    job: Job,
    /// The step in flight, and the drain linked behind it (a fill → drain pair).
    in_flight: Option<(Step, Option<Step>)>,
    /// CQE results of a pair as they arrive (fill, drain).
    pair: [Option<i32>; 2],
    cancel_sent: Option<Instant>,
}

/// File bodies are spliced on the ring's thread only while at most this many jobs
/// are running: one large response then pays no io-wq hop, while many go as
/// hard-linked pairs on io-wq workers, which spread them over the cores (the
/// measurements behind the number: docs/local.md, "Small and large bodies").
const DIRECT_FILE_JOBS: usize = 2;

pub(crate) struct Driver {
    ring: IoUring,
    ctx: Ctx,
    rx: Receiver<Msg>,
    wake: Arc<Wake>,
    /// The eventfd read lands here (owned by the driver, alive until its CQE).
    wake_buf: Box<u64>,
    wake_armed: bool,
    wake_cancel_sent: bool,
    jobs: Slab<Running>,
    by_id: HashMap<u64, usize>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Ids of stopped jobs whose op has not completed yet (cancel re-sent).
    cancelling: Vec<u64>,
    backlog: Backlog,
    cqes: Vec<(u64, i32, u32)>,
    shutting_down: bool,
    /// Driven by its owner's thread (`LocalEngine`), not by a thread of its own.
    local: bool,
    /// The ring failed: nothing more is submitted.
    dead: bool,
    /// Local mode: connection ops, their events, and ids of jobs finished.
    conns: ConnTable,
    pub(crate) events: Vec<Event>,
    pub(crate) finished: Vec<u64>,
}

impl Driver {
    pub(crate) fn new(ctx: Ctx, rx: Receiver<Msg>, wake: Arc<Wake>) -> io::Result<Driver> {
        let ring = super::ring::new_ring(ctx.config.ring_entries, ctx.config.iowq_max_workers)?;
        let conns = ConnTable::new(&ring);
        Ok(Driver {
            ring,
            ctx,
            rx,
            wake,
            wake_buf: Box::new(0),
            wake_armed: false,
            wake_cancel_sent: false,
            jobs: Slab::new(),
            by_id: HashMap::new(),
            deadlines: BinaryHeap::new(),
            cancelling: Vec::new(),
            backlog: Backlog::default(),
            cqes: Vec::with_capacity(256),
            shutting_down: false,
            local: false,
            dead: false,
            conns,
            events: Vec::new(),
            finished: Vec::new(),
        })
    }

    fn arm_wake(&mut self) {
        let buf: *mut u64 = &mut *self.wake_buf;
        let fd = types::Fd(self.wake.fd.as_fd().as_raw_fd());
        let e = opcode::Read::new(fd, buf.cast(), 8).build();
        self.backlog.push(e.user_data(ud(TAG_WAKE, 0)));
        self.wake_armed = true;
    }

    /// The driver thread's loop; returns when shut down. If the ring fails, the
    /// thread stays to fail every job that still arrives until the engine shuts down:
    /// a job sent while the thread exited would be dropped with the channel, its
    /// handle never completing.
    pub(crate) fn run(&mut self) {
        if let Err(e) = self.serve() {
            self.fatal(e);
            self.refuse_until_shutdown();
        }
    }

    fn serve(&mut self) -> io::Result<()> {
        self.arm_wake();
        loop {
            self.drain_messages()?;
            self.check_deadlines();
            if self.shutting_down && self.jobs.is_empty() {
                if !self.wake_armed {
                    return Ok(());
                }
                if !self.wake_cancel_sent {
                    // Cancel the eventfd read; its CQE ends the loop.
                    let e = opcode::AsyncCancel::new(ud(TAG_WAKE, 0)).build();
                    self.backlog.push(e.user_data(ud(TAG_CANCEL, 0)));
                    self.wake_cancel_sent = true;
                }
            }
            self.backlog.flush(&mut self.ring)?;
            self.wait(None)?;
            self.reap();
        }
    }

    /// After a fatal error (thread mode): fails each job as it arrives, until
    /// `Shutdown` or until every sender is gone.
    fn refuse_until_shutdown(&mut self) {
        if self.shutting_down {
            return; // the drain in `fatal` already took the `Shutdown`
        }
        while let Ok(msg) = self.rx.recv() {
            match msg {
                Msg::Submit(job) => {
                    job.fail(&self.ctx.recorder, io::ErrorKind::Other, "io_uring failed")
                }
                Msg::Shutdown => return,
                _ => {}
            }
        }
    }

    /// The ring itself failed (it should not): jobs with nothing in the kernel are
    /// finished; jobs with ops in flight are abandoned — their handles fail, but what
    /// the kernel may still use is leaked, never freed. Then new jobs are refused.
    fn fatal(&mut self, e: io::Error) {
        self.dead = true;
        // The jobs fail with the ring's error kind (what `io_uring_enter` said).
        let kind = match e.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => io::ErrorKind::Other,
            k => k,
        };
        // Connection ops' buffers and fds may be in the kernel: leaked, never freed.
        std::mem::forget(std::mem::take(&mut self.conns));
        for r in self.jobs.drain() {
            if r.in_flight.is_none() {
                r.job.fail(&self.ctx.recorder, kind, "io_uring failed");
            } else {
                r.job.abandon(&self.ctx.recorder);
            }
        }
        self.by_id.clear();
        // Whatever is queued already is failed here; later jobs are failed as they
        // come (`refuse_until_shutdown` in thread mode, `start` in local mode).
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Submit(job) => {
                    job.fail(&self.ctx.recorder, io::ErrorKind::Other, "io_uring failed")
                }
                Msg::Shutdown => self.shutting_down = true,
                _ => {}
            }
        }
        if self.wake_armed {
            // The eventfd read may still be in the kernel: keep its buffer forever.
            std::mem::forget(std::mem::take(&mut self.wake_buf));
        }
    }

    fn wait(&mut self, cap: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        let mut until = self.deadlines.peek().map(|Reverse((t, _))| *t);
        if let Some(c) = cap {
            let c = now + c;
            until = Some(until.map_or(c, |u| u.min(c)));
        }
        if !self.cancelling.is_empty() {
            let r = now + RECANCEL;
            until = Some(until.map_or(r, |u| u.min(r)));
        }
        if until.is_some_and(|t| t <= now) {
            // Nothing to wait for (events already waiting, a deadline due): a wait with
            // a zero timeout would still arm the kernel's timer, sleep and be woken by
            // its interrupt (one context switch and one timer interrupt per request on
            // a ring serving one connection). Only submit and run deferred task work.
            return self.poll_nowait();
        }
        // Announce sleep, then re-check the channel (pairs with Wake::wake).
        self.wake.set_sleeping(true);
        if !self.rx.is_empty() {
            self.wake.set_sleeping(false);
            self.ring.submit()?;
            return Ok(());
        }
        let res = match until {
            Some(t) => {
                let ts = types::Timespec::from(t.saturating_duration_since(now));
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submit_and_wait(1),
        };
        self.wake.set_sleeping(false);
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Submits what is queued and lets the kernel post what it has ready, without
    /// waiting: no enter at all when nothing is queued and the kernel flags no task
    /// work (`IORING_SQ_TASKRUN`, set up with every flag set that defers it; a ring
    /// without it runs task work on the way back to user space).
    fn poll_nowait(&mut self) -> io::Result<()> {
        let pending = {
            let sq = self.ring.submission();
            !sq.is_empty() || sq.taskrun() || sq.cq_overflow()
        };
        if !pending {
            return Ok(());
        }
        // `submit` adds GETEVENTS (which runs deferred task work) when the flag is set.
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn drain_messages(&mut self) -> io::Result<()> {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Submit(job) => self.start(*job),
                Msg::Cancel(id) => {
                    if let Some(&k) = self.by_id.get(&id) {
                        self.stop(k, io::ErrorKind::Interrupted, "transfer cancelled");
                    }
                }
                Msg::Done(id) if self.local => self.finished.push(id),
                Msg::Done(_) => {}
                Msg::Shutdown => {
                    self.shutting_down = true;
                    let keys: Vec<usize> = self.jobs.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        self.stop(k, io::ErrorKind::Interrupted, "engine shut down");
                    }
                }
                #[cfg(test)]
                Msg::Fail => return Err(io::Error::other("injected ring failure")),
            }
        }
        Ok(())
    }

    fn start(&mut self, mut job: Job) {
        if self.dead {
            return job.fail(&self.ctx.recorder, io::ErrorKind::Other, "io_uring failed");
        }
        if self.shutting_down {
            job.fail(
                &self.ctx.recorder,
                io::ErrorKind::Interrupted,
                "engine shut down",
            );
            return;
        }
        job.start();
        let (id, timer) = (job.id, job.next_timer());
        let key = self.jobs.insert(Running {
            job,
            in_flight: None,
            pair: [None, None],
            cancel_sent: None,
        });
        self.by_id.insert(id, key);
        if let Some(t) = timer {
            self.deadlines.push(Reverse((t, id)));
        }
        self.advance(key);
    }

    fn check_deadlines(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, id))) = self.deadlines.peek().copied() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            let Some(&k) = self.by_id.get(&id) else {
                continue;
            };
            let job = &mut self.jobs[k].job;
            if job.check_stop(now) {
                self.cancel_or_finish(k);
            } else if let Some(t) = job.next_timer().filter(|_| !job.plan.is_done()) {
                // The idle clock moved on: look again when it can next expire.
                self.deadlines.push(Reverse((t.max(now), id)));
            }
        }
        // Send again the cancels that no completion has answered yet.
        let mut i = 0;
        while i < self.cancelling.len() {
            let id = self.cancelling[i];
            let due = match self.by_id.get(&id).map(|&k| &mut self.jobs[k]) {
                Some(r) if r.in_flight.is_some() => {
                    let due = r
                        .cancel_sent
                        .is_none_or(|t| now.duration_since(t) >= RECANCEL);
                    if due {
                        r.cancel_sent = Some(now);
                    }
                    Some(due.then(|| r.in_flight.is_some_and(|(_, l)| l.is_some())))
                }
                _ => None,
            };
            match due {
                None => {
                    self.cancelling.swap_remove(i);
                }
                Some(resend) => {
                    if let Some(pair) = resend {
                        self.push_cancels(id, pair);
                    }
                    i += 1;
                }
            }
        }
    }

    /// Stops job `k` with `kind`; cancels its op(s) in the kernel, or finishes it now
    /// if it has none.
    fn stop(&mut self, k: usize, kind: io::ErrorKind, why: &'static str) {
        let r = &mut self.jobs[k];
        if r.job.plan.is_done() {
            return;
        }
        r.job.plan.stop(kind, why);
        self.cancel_or_finish(k);
    }

    /// Job `k` was just stopped: cancel its op(s) in the kernel, or finish it now.
    fn cancel_or_finish(&mut self, k: usize) {
        let r = &mut self.jobs[k];
        match r.in_flight {
            Some((_, linked)) => {
                r.cancel_sent = Some(Instant::now());
                let id = r.job.id;
                self.push_cancels(id, linked.is_some());
                self.cancelling.push(id);
            }
            None => self.finish(k),
        }
    }

    /// `AsyncCancel` of the op(s) of job `id` (both of a pair).
    fn push_cancels(&mut self, id: u64, pair: bool) {
        let tags: &[u64] = if pair {
            &[TAG_OP, TAG_LINKED]
        } else {
            &[TAG_OP]
        };
        for &tag in tags {
            let e = opcode::AsyncCancel::new(ud(tag, id)).build();
            self.backlog.push(e.user_data(ud(TAG_CANCEL, id)));
        }
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c: cqueue::Entry| (c.user_data(), c.result(), c.flags())),
        );
        for &(data, res, flags) in &cqes {
            let (tag, id) = (data >> TAG_SHIFT, data & ID_MASK);
            match tag {
                TAG_WAKE => {
                    self.wake_armed = false;
                    if !self.shutting_down {
                        self.arm_wake();
                    }
                }
                TAG_OP | TAG_LINKED => {
                    if let Some(&k) = self.by_id.get(&id) {
                        self.on_cqe(k, tag == TAG_LINKED, res);
                    }
                }
                TAG_CONN => {
                    let ud = ud(TAG_CONN, id);
                    let (backlog, events) = (&mut self.backlog, &mut self.events);
                    self.conns.on_cqe(id, res, flags, ud, backlog, events);
                }
                _ => {} // an AsyncCancel's own result
            }
        }
        cqes.clear();
        self.cqes = cqes;
    }

    fn on_cqe(&mut self, k: usize, linked_cqe: bool, res: i32) {
        let r = &mut self.jobs[k];
        let Some((step, linked)) = r.in_flight else {
            return;
        };
        match linked {
            Some(drain) => {
                r.pair[usize::from(linked_cqe)] = Some(res);
                let [Some(fill_res), Some(drain_res)] = r.pair else {
                    return; // the other CQE of the pair is still to come
                };
                r.pair = [None, None];
                r.in_flight = None;
                r.job.plan.complete(step, from_ret(fill_res as isize));
                r.job
                    .plan
                    .complete_linked_drain(drain, from_ret(drain_res as isize));
            }
            None => {
                r.in_flight = None;
                r.job.plan.complete(step, from_ret(res as isize));
            }
        }
        r.job.report_progress();
        self.advance(k);
    }

    /// Submits the next op of job `k`, or finishes it.
    fn advance(&mut self, k: usize) {
        let link = self.ctx.config.link_splices;
        let busy = self.jobs.len() > DIRECT_FILE_JOBS;
        let (ctx, backlog) = (&self.ctx, &mut self.backlog);
        let r = &mut self.jobs[k];
        let (job, in_flight) = (&mut r.job, &mut r.in_flight);
        let id = job.id;
        let done = drive(job, |job, step| match step {
            // Splices between non-blocking streams and a pooled (non-blocking) pipe
            // never wait: make them here, as plain syscalls. An io_uring SPLICE always
            // runs on an io-wq worker — a thread hop per chunk, which cost a proxy twice
            // HAProxy's CPU per MiB. A file is read here only when the range is in the
            // page cache; otherwise the fill stays a ring op (a page-cache miss would
            // block this thread).
            Step::Fill { .. } | Step::Drain { .. } | Step::Gather { .. } | Step::Read { .. }
                if direct(job, step, busy) =>
            {
                Issued::Ran(crate::backend::steps::run(job, step, &ctx.pool, false))
            }
            Step::Fill { max, .. } => {
                if job.pipe.is_none() {
                    match ctx.pool.get() {
                        Ok(p) => job.pipe = Some(p),
                        Err(e) => return Issued::Ran(Err(errno_of(&e))),
                    }
                }
                let len = max.min(job.pipe.as_ref().map_or(0, |p| p.size()));
                let Some(fill) = sqe::entry(job, step, len) else {
                    return Issued::Ran(Err(libc::EOPNOTSUPP));
                };
                let fill = fill.user_data(ud(TAG_OP, id));
                if link {
                    // The drain runs right after the fill in the same io-wq worker and
                    // moves whatever the fill produced (one round trip a chunk).
                    let drain = job.plan.linked_drain(len);
                    let d = sqe::entry(job, drain, 0).expect("pipe present");
                    backlog.push_linked(fill, d.user_data(ud(TAG_LINKED, id)));
                    *in_flight = Some((step, Some(drain)));
                } else {
                    backlog.push(fill);
                    *in_flight = Some((step, None));
                }
                Issued::Pending
            }
            _ => {
                if let Step::Poll(side) = step {
                    ctx.recorder.eagain.fetch_add(1, Ordering::Relaxed);
                    if side == crate::plan::Side::Src {
                        job.release_idle_pipe();
                    }
                }
                match sqe::entry(job, step, 0) {
                    Some(e) => {
                        backlog.push(e.user_data(ud(TAG_OP, id)));
                        *in_flight = Some((step, None));
                        Issued::Pending
                    }
                    // No opcode for it (sendfile, copy_file_range): step down.
                    None => Issued::Ran(Err(libc::EOPNOTSUPP)),
                }
            }
        });
        if done {
            self.finish(k);
        }
    }

    /// Job `k` has no op in the kernel: complete it.
    fn finish(&mut self, k: usize) {
        let r = self.jobs.remove(k);
        self.by_id.remove(&r.job.id);
        if self.deadlines.len() > 2 * self.jobs.len() + 64 {
            // Deadlines of ended jobs would stay until they pass (a proxy's idle timeout
            // is minutes): at a high rate of short connections, megabytes. Drop them.
            let by_id = &self.by_id;
            self.deadlines
                .retain(|Reverse((_, id))| by_id.contains_key(id));
            self.deadlines.shrink_to(self.deadlines.len() * 2);
        }
        if self.jobs.capacity() > 256 && self.jobs.len() * 8 < self.jobs.capacity() {
            // A crowd of transfers ended: give their room back (a `Running` is ~0.5 KiB).
            self.jobs.shrink_to_fit();
            self.by_id.shrink_to(self.by_id.len() * 2);
        }
        if self.local {
            self.finished.push(r.job.id);
        }
        r.job.finish(&self.ctx.recorder);
    }
}

/// Whether `step` cannot wait, so it is made here: a splice filling from a
/// non-blocking stream, or from a file range that is entirely in the page cache
/// (`cachestat`, asked per fill: the disk is never waited for on this thread) while
/// the ring is not `busy` (see [`DIRECT_FILE_JOBS`]), or draining into a non-blocking stream
/// (the pipe is always non-blocking); or a gather send of a body the job holds in
/// memory.
fn direct(job: &Job, step: Step, busy: bool) -> bool {
    match step {
        Step::Gather { .. } => true, // a MSG_DONTWAIT sendmsg from memory
        Step::Fill { .. } | Step::Drain { .. } if job.src_kind == FdKind::File && busy => false,
        Step::Fill {
            src_off: Some(off),
            max,
        } if job.src_kind == FdKind::File => {
            // Only the bytes the file is expected to hold: a range past its end has no
            // pages, and the read that finds the end (nothing expected) never waits.
            let len = max.min(job.pipe.as_ref().map_or(max, |p| p.size())) as u64;
            let len = job.plan.expected_left().map_or(len, |left| len.min(left));
            crate::sys::all_cached(job.src.as_fd(), off, len)
        }
        Step::Fill { .. } => job.src_kind != FdKind::File && job.nonblocking.0,
        // A relay's read of a non-blocking stream: a ring READ would wait in the kernel
        // holding the 16 KiB buffer for as long as the connection is idle; made here it
        // is answered EAGAIN, and the wait is a POLL_ADD with no buffer (the plan lets
        // the buffer go while it polls).
        Step::Read { .. } => {
            job.src_kind != FdKind::File
                && job.nonblocking.0
                && job.plan.strategy() == crate::plan::Strategy::Relay
        }
        Step::Drain { .. } => job.dst_kind != FdKind::File && job.nonblocking.1,
        _ => false,
    }
}

mod owner;

#[cfg(test)]
mod tests;
