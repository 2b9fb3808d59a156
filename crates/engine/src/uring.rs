//! The io_uring backend: one ring per driver thread, a state machine per transfer.
//!
//! Each live transfer has exactly one operation in flight (plus, while it is being
//! stopped, an `AsyncCancel`). A transfer lives in the driver's slab from the moment
//! the driver receives it until the CQE of its last operation has been reaped; only
//! then are its fds, buffers and pipe released (see `Job::finish`). So the kernel
//! never sees a closed or reused fd, nor a freed buffer.
//!
//! Plans (see docs/engine.md):
//! * small file bodies (≤ `small_threshold`): `READ` into one buffer laid out as
//!   header | body | trailer, then `SEND` (`WRITE` for pipes and files) of all of it;
//! * everything else: `SPLICE` src → pooled pipe ("fill"), `SPLICE` pipe → dst
//!   ("drain"), header before with `SEND(MSG_MORE)`, trailer after;
//! * `-EAGAIN` from any op: `POLL_ADD` on the fd it waited for, then the op again;
//!   a blocking stream source is polled before every fill so that no io-wq worker
//!   parks on an idle socket;
//! * timeouts and cancels: the driver's own deadline heap + `AsyncCancel`, re-sent
//!   every 100 ms until the op completes (LinkTimeout does not bound a SPLICE).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use ferry_pipes::PooledPipe;
use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};
use slab::Slab;

use crate::engine::{shutdown_error, Backend, BackendImpl, Ctx, Job, Outcome};
use crate::handle::TransferError;
use crate::transfer::FdKind;

const TAG_SHIFT: u32 = 32;
const TAG_OP: u64 = 0;
const TAG_CANCEL: u64 = 1;
const TAG_WAKE: u64 = 2;
/// The second op (the drain) of a linked fill → drain pair.
const TAG_OP2: u64 = 3;
/// How often an unanswered AsyncCancel is sent again.
const RECANCEL: Duration = Duration::from_millis(100);

fn ud(tag: u64, key: usize) -> u64 {
    (tag << TAG_SHIFT) | key as u64
}

enum Msg {
    Submit(Box<Job>),
    Cancel(u64),
    Shutdown,
}

struct DriverHandle {
    tx: Sender<Msg>,
    wake: Arc<Wake>,
    thread: Option<JoinHandle<()>>,
}

/// An eventfd the driver reads through the ring; written only when the driver sleeps.
struct Wake {
    fd: OwnedFd,
    sleeping: AtomicBool,
}

impl Wake {
    fn new() -> io::Result<Wake> {
        // SAFETY: eventfd has no memory arguments; we own the returned fd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Wake {
            // SAFETY: `fd` was just created and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            sleeping: AtomicBool::new(false),
        })
    }

    /// Called after queueing a message: wakes the driver if it is (about to be) asleep.
    fn wake(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our eventfd.
            unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }
}

pub(crate) struct Uring {
    drivers: Vec<DriverHandle>,
}

impl Uring {
    pub(crate) fn start(ctx: Ctx) -> io::Result<Uring> {
        let mut drivers = Vec::new();
        for i in 0..ctx.config.threads.max(1) {
            let (tx, rx) = crossbeam_channel::unbounded();
            let wake = Arc::new(Wake::new()?);
            let (ready_tx, ready_rx) = crossbeam_channel::bounded::<io::Result<()>>(1);
            let (ctx2, wake2) = (ctx.clone(), wake.clone());
            let thread = std::thread::Builder::new()
                .name(format!("ferry-ring-{i}"))
                .spawn(move || match Driver::new(ctx2, rx, wake2) {
                    Ok(mut d) => {
                        let _ = ready_tx.send(Ok(()));
                        d.run();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                })?;
            let ready = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("ring thread died during setup")));
            let mut handle = DriverHandle {
                tx,
                wake,
                thread: Some(thread),
            };
            if let Err(e) = ready {
                if let Some(t) = handle.thread.take() {
                    let _ = t.join();
                }
                let mut me = Uring { drivers };
                me.shutdown();
                return Err(e);
            }
            drivers.push(handle);
        }
        Ok(Uring { drivers })
    }

    fn driver_for(&self, id: u64) -> &DriverHandle {
        &self.drivers[(id % self.drivers.len() as u64) as usize]
    }
}

impl BackendImpl for Uring {
    fn kind(&self) -> Backend {
        Backend::IoUring
    }

    fn submit(&self, job: Job) {
        let d = self.driver_for(job.slot.id);
        // The driver outlives every submit (it stops only in `shutdown`, under &mut).
        if d.tx.send(Msg::Submit(Box::new(job))).is_ok() {
            d.wake.wake();
        }
    }

    fn canceller(&self) -> Box<dyn Fn(u64) + Send + Sync> {
        let routes: Vec<(Sender<Msg>, Arc<Wake>)> = self
            .drivers
            .iter()
            .map(|d| (d.tx.clone(), d.wake.clone()))
            .collect();
        Box::new(move |id| {
            let (tx, wake) = &routes[(id % routes.len() as u64) as usize];
            if tx.send(Msg::Cancel(id)).is_ok() {
                wake.wake();
            }
        })
    }

    fn shutdown(&mut self) {
        for d in &self.drivers {
            let _ = d.tx.send(Msg::Shutdown);
            d.wake.wake();
        }
        for d in &mut self.drivers {
            if let Some(t) = d.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Ring setup with the best flags this kernel takes, stepping down on EINVAL.
fn new_ring(entries: u32) -> io::Result<IoUring> {
    let cq = entries * 4;
    let attempts: [fn(&mut io_uring::Builder); 3] = [
        |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_taskrun_flag()
                .setup_submit_all();
        },
        |b| {
            b.setup_coop_taskrun()
                .setup_taskrun_flag()
                .setup_submit_all();
        },
        |_| {},
    ];
    let mut last = None;
    for f in attempts {
        let mut b = IoUring::builder();
        b.setup_cqsize(cq).setup_clamp();
        f(&mut b);
        match b.build(entries) {
            Ok(r) => return Ok(r),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("io_uring setup failed")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Header,
    Trailer,
    SmallRead,
    SmallSend,
    Fill,
    Drain,
    Poll,
    /// A fill linked (IO_HARDLINK) to a drain: two CQEs.
    Pair,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    Body,
    Trailer,
    Done,
}

/// The buffer of the small plan: header | body | trailer.
struct Small {
    buf: Vec<u8>,
    hlen: usize,
    /// Body bytes expected (buffer room).
    body_len: usize,
    /// Body bytes read so far.
    filled: usize,
    /// Bytes of `buf` sent so far.
    sent: usize,
    read_done: bool,
}

struct Xfer {
    job: Job,
    started: Instant,
    phase: Phase,
    hdr_sent: usize,
    trl_sent: usize,
    small: Option<Small>,
    pipe: Option<PooledPipe>,
    in_pipe: usize,
    /// Where the next fill reads (file sources).
    src_off: Option<u64>,
    /// Where the next write lands (file destinations).
    dst_off: Option<u64>,
    /// Body bytes delivered to dst.
    body: u64,
    /// Body bytes taken from src.
    read: u64,
    eof: bool,
    /// A blocking stream source has been polled readable for the next fill.
    src_ready: bool,
    in_flight: Option<Op>,
    /// Results of a linked pair's fill and drain, as their CQEs arrive.
    pair_res: [Option<i32>; 2],
    stop: Option<io::Error>,
    cancel_sent: Option<Instant>,
}

impl Xfer {
    fn new(job: Job, threshold: u64) -> Xfer {
        let plan = &job.plan;
        // With `len` the buffer is `len` bytes, so a shorter file shows as an early EOF.
        let small = match (plan.src_kind, plan.len.or(plan.src_avail)) {
            (FdKind::File, Some(n)) if n <= threshold => {
                let (hlen, n) = (job.header.len(), n as usize);
                let mut buf = vec![0u8; hlen + n + job.trailer.len()];
                buf[..hlen].copy_from_slice(&job.header);
                buf[hlen + n..].copy_from_slice(&job.trailer);
                Some(Small {
                    buf,
                    hlen,
                    body_len: n,
                    filled: 0,
                    sent: 0,
                    read_done: n == 0,
                })
            }
            _ => None,
        };
        Xfer {
            src_off: plan.src_off,
            dst_off: plan.dst_off,
            phase: if small.is_some() {
                Phase::Body
            } else {
                Phase::Header
            },
            small,
            job,
            started: Instant::now(),
            hdr_sent: 0,
            trl_sent: 0,
            pipe: None,
            in_pipe: 0,
            body: 0,
            read: 0,
            eof: false,
            src_ready: false,
            in_flight: None,
            pair_res: [None, None],
            stop: None,
            cancel_sent: None,
        }
    }

    fn len_reached(&self) -> bool {
        self.job.plan.len.is_some_and(|l| self.read >= l)
    }

    /// Whether bytes follow the drain in flight (then `SPLICE_F_MORE` lets TCP fill
    /// segments). Unknown (a stream without `len`): no, so the last chunk never waits.
    fn more_follows(&self) -> bool {
        !self.job.trailer.is_empty() || self.job.plan.body_hint().is_some_and(|h| self.read < h)
    }

    fn dst_fd(&self) -> types::Fd {
        types::Fd(self.job.plan.dst_fd)
    }

    /// A write of `buf` to dst: SEND on sockets, WRITE elsewhere (at dst_off on files).
    fn write_op(&self, buf: &[u8], more: bool) -> squeue::Entry {
        let len = buf.len().min(u32::MAX as usize) as u32;
        match self.job.plan.dst_kind {
            FdKind::Socket => opcode::Send::new(self.dst_fd(), buf.as_ptr(), len)
                .flags(if more { libc::MSG_MORE } else { 0 })
                .build(),
            _ => opcode::Write::new(self.dst_fd(), buf.as_ptr(), len)
                .offset(self.dst_off.unwrap_or(u64::MAX))
                .build(),
        }
    }
}

/// What to do after an event.
enum Next {
    Submit(Op, squeue::Entry),
    /// fill, drain: submitted together, the fill hard-linked to the drain.
    Pair(squeue::Entry, squeue::Entry),
    Finish,
}

struct Driver {
    ring: IoUring,
    ctx: Ctx,
    rx: Receiver<Msg>,
    wake: Arc<Wake>,
    wake_buf: Box<u64>,
    wake_armed: bool,
    xfers: Slab<Xfer>,
    by_id: HashMap<u64, usize>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    cancelling: Vec<usize>,
    /// Entries waiting for SQ room; `true` = hard-linked to the next (kept together).
    backlog: Vec<(squeue::Entry, bool)>,
    cqes: Vec<(u64, i32)>,
    shutting_down: bool,
}

impl Driver {
    fn new(ctx: Ctx, rx: Receiver<Msg>, wake: Arc<Wake>) -> io::Result<Driver> {
        let ring = new_ring(ctx.config.ring_entries)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::Splice::CODE, "SPLICE"),
            (opcode::Read::CODE, "READ"),
            (opcode::Write::CODE, "WRITE"),
            (opcode::Send::CODE, "SEND"),
            (opcode::PollAdd::CODE, "POLL_ADD"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring lacks IORING_OP_{name}"),
                ));
            }
        }
        // Every SPLICE runs on an io-wq worker: cap them (kernels < 5.15 lack this).
        let w = ctx.config.iowq_max_workers;
        let _ = ring.submitter().register_iowq_max_workers(&mut [w, w]);
        Ok(Driver {
            ring,
            ctx,
            rx,
            wake,
            wake_buf: Box::new(0),
            wake_armed: false,
            xfers: Slab::new(),
            by_id: HashMap::new(),
            deadlines: BinaryHeap::new(),
            cancelling: Vec::new(),
            backlog: Vec::new(),
            cqes: Vec::with_capacity(256),
            shutting_down: false,
        })
    }

    fn push(&mut self, e: squeue::Entry) {
        self.backlog.push((e, false));
    }

    /// Moves queued entries into the SQ; returns whether any are left.
    fn flush_backlog(&mut self) -> io::Result<()> {
        let mut i = 0;
        while i < self.backlog.len() {
            let mut sq = self.ring.submission();
            while i < self.backlog.len() {
                let (e, linked) = &self.backlog[i];
                // A chain must not be split across two submits: both or neither.
                if *linked && sq.capacity() - sq.len() < 2 {
                    break;
                }
                // SAFETY: every entry's buffers and fds are owned by a live Xfer in the
                // slab (or by the driver: `wake_buf`), and stay alive until its CQE.
                if unsafe { sq.push(e) }.is_err() {
                    break;
                }
                i += 1;
            }
            drop(sq);
            if i < self.backlog.len() {
                self.ring.submit()?;
            }
        }
        self.backlog.clear();
        Ok(())
    }

    fn arm_wake(&mut self) {
        let buf: *mut u64 = &mut *self.wake_buf;
        let e = opcode::Read::new(types::Fd(self.wake.fd.as_raw_fd()), buf.cast(), 8)
            .build()
            .user_data(ud(TAG_WAKE, 0));
        self.push(e);
        self.wake_armed = true;
    }

    fn run(&mut self) {
        self.arm_wake();
        loop {
            self.drain_messages();
            self.check_deadlines();
            if self.shutting_down && self.xfers.is_empty() {
                if !self.wake_armed {
                    break;
                }
                if self.cancelling.is_empty() {
                    // cancel the eventfd read once; its CQE ends the loop
                    let e = opcode::AsyncCancel::new(ud(TAG_WAKE, 0))
                        .build()
                        .user_data(ud(TAG_CANCEL, usize::MAX >> 32));
                    self.push(e);
                    self.cancelling.push(usize::MAX);
                }
            }
            if let Err(e) = self.flush_backlog() {
                self.fatal(e);
                return;
            }
            if let Err(e) = self.wait() {
                self.fatal(e);
                return;
            }
            self.reap();
        }
    }

    /// The ring itself failed (should not happen): fail everything, stop.
    fn fatal(&mut self, e: io::Error) {
        let keys: Vec<usize> = self.xfers.iter().map(|(k, _)| k).collect();
        for k in keys {
            let x = self.xfers.remove(k);
            let msg = format!("io_uring failed: {e}");
            let err = TransferError::io(io::ErrorKind::Other, x.body, msg);
            // The ring is gone with its requests: nothing of ours is in the kernel now.
            self.finish_xfer(x, Some(err));
        }
    }

    fn wait(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let mut until = self.deadlines.peek().map(|Reverse((t, _))| *t);
        if !self.cancelling.is_empty() {
            let r = now + RECANCEL;
            until = Some(until.map_or(r, |u| u.min(r)));
        }
        // Announce sleep, then re-check the channel (pairs with Wake::wake).
        self.wake.sleeping.store(true, Ordering::SeqCst);
        if !self.rx.is_empty() {
            self.wake.sleeping.store(false, Ordering::SeqCst);
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
        self.wake.sleeping.store(false, Ordering::SeqCst);
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

    fn drain_messages(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Submit(job) => self.start(*job),
                Msg::Cancel(id) => {
                    if let Some(&k) = self.by_id.get(&id) {
                        let body = self.xfers[k].body;
                        let err = TransferError::io(
                            io::ErrorKind::Interrupted,
                            body,
                            "transfer cancelled",
                        );
                        self.stop(k, err);
                    }
                }
                Msg::Shutdown => {
                    self.shutting_down = true;
                    let keys: Vec<usize> = self.xfers.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        let err = shutdown_error(self.xfers[k].body);
                        self.stop(k, err);
                    }
                }
            }
        }
    }

    fn start(&mut self, job: Job) {
        if self.shutting_down {
            job.fail_before_start(&self.ctx, shutdown_error(0));
            return;
        }
        let id = job.slot.id;
        let deadline = job.deadline;
        let cancelled = job.slot.cancel_requested();
        let x = Xfer::new(job, self.ctx.config.small_threshold);
        let key = self.xfers.insert(x);
        self.by_id.insert(id, key);
        if let Some(d) = deadline {
            self.deadlines.push(Reverse((d, id)));
        }
        if cancelled {
            let err = TransferError::io(io::ErrorKind::Interrupted, 0, "transfer cancelled");
            self.stop(key, err);
            return;
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
            if let Some(&k) = self.by_id.get(&id) {
                let body = self.xfers[k].body;
                let err = TransferError::io(io::ErrorKind::TimedOut, body, "transfer timed out");
                self.stop(k, err);
            }
        }
        // Re-send cancels that have not been answered by the op's completion.
        let mut i = 0;
        while i < self.cancelling.len() {
            let k = self.cancelling[i];
            match self.xfers.get_mut(k) {
                Some(x) if x.in_flight.is_some() => {
                    if x.cancel_sent
                        .is_some_and(|t| now.duration_since(t) >= RECANCEL)
                    {
                        x.cancel_sent = Some(now);
                        let pair = x.in_flight == Some(Op::Pair);
                        self.push_cancels(k, pair);
                    }
                    i += 1;
                }
                _ if k == usize::MAX => i += 1,
                _ => {
                    self.cancelling.swap_remove(i);
                }
            }
        }
    }

    /// Marks a transfer as failing with `err` and cancels its op in flight.
    fn stop(&mut self, k: usize, err: io::Error) {
        let x = &mut self.xfers[k];
        if x.stop.is_some() {
            return;
        }
        x.stop = Some(err);
        if x.in_flight.is_some() {
            x.cancel_sent = Some(Instant::now());
            let pair = x.in_flight == Some(Op::Pair);
            self.push_cancels(k, pair);
            self.cancelling.push(k);
        } else {
            let x = self.xfers.remove(k);
            let err = x.stop.as_ref().map(copy_err);
            self.finish_xfer(x, err);
        }
    }

    /// AsyncCancel for the op(s) of transfer `k` (both of a pair).
    fn push_cancels(&mut self, k: usize, pair: bool) {
        for tag in [TAG_OP, TAG_OP2].into_iter().take(if pair { 2 } else { 1 }) {
            let e = opcode::AsyncCancel::new(ud(tag, k))
                .build()
                .user_data(ud(TAG_CANCEL, k));
            self.push(e);
        }
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c: cqueue::Entry| (c.user_data(), c.result())),
        );
        for &(data, res) in &cqes {
            let (tag, key) = (data >> TAG_SHIFT, (data & 0xffff_ffff) as usize);
            match tag {
                TAG_WAKE => {
                    self.wake_armed = false;
                    if !self.shutting_down {
                        self.arm_wake();
                    }
                }
                TAG_CANCEL => {
                    if key == (usize::MAX >> 32) {
                        self.cancelling.retain(|&k| k != usize::MAX);
                    }
                }
                TAG_OP2 => self.on_pair_cqe(key, 1, res),
                _ if self
                    .xfers
                    .get(key)
                    .is_some_and(|x| x.in_flight == Some(Op::Pair)) =>
                {
                    self.on_pair_cqe(key, 0, res)
                }
                _ => self.on_cqe(key, res),
            }
        }
        cqes.clear();
        self.cqes = cqes;
    }

    fn on_cqe(&mut self, k: usize, res: i32) {
        let Some(x) = self.xfers.get_mut(k) else {
            return;
        };
        let Some(op) = x.in_flight.take() else {
            return;
        };
        if x.stop.is_some() {
            // Account for what the op did, then fail.
            if res > 0 {
                apply(x, op, res as usize);
            }
            let x = self.xfers.remove(k);
            let err = x.stop.as_ref().map(|e| copy_err_bytes(e, x.body));
            self.finish_xfer(x, err);
            return;
        }
        if res < 0 {
            let errno = -res;
            match errno {
                libc::EAGAIN => {
                    self.ctx.recorder.eagain.fetch_add(1, Ordering::Relaxed);
                    let (fd, ev) = if op == Op::Fill {
                        (x.job.plan.src_fd, libc::POLLIN)
                    } else {
                        (x.job.plan.dst_fd, libc::POLLOUT)
                    };
                    let e = opcode::PollAdd::new(types::Fd(fd), ev as u32).build();
                    self.submit_op(k, Op::Poll, e);
                    return;
                }
                libc::EINTR => {} // re-plan the same step
                _ => {
                    let body = x.body;
                    // -512 (ERESTARTSYS) and other kernel-internal codes: interrupted.
                    let err = if errno >= 512 {
                        TransferError::io(
                            io::ErrorKind::Interrupted,
                            body,
                            format!("interrupted (kernel code {errno})"),
                        )
                    } else {
                        TransferError::os(errno, body)
                    };
                    let x = self.xfers.remove(k);
                    self.finish_xfer(x, Some(err));
                    return;
                }
            }
        } else if op == Op::Poll {
            if x.job.plan.src_kind != FdKind::File {
                x.src_ready = true;
            }
        } else {
            let asked_more = apply(x, op, res as usize);
            if asked_more {
                self.ctx.recorder.short.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.advance(k);
    }

    /// A CQE of a linked fill (`idx` 0) → drain (`idx` 1) pair; acts when both are in.
    fn on_pair_cqe(&mut self, k: usize, idx: usize, res: i32) {
        let Some(x) = self.xfers.get_mut(k) else {
            return;
        };
        x.pair_res[idx] = Some(res);
        let [Some(r1), Some(r2)] = x.pair_res else {
            return;
        };
        x.pair_res = [None, None];
        x.in_flight = None;
        if r1 >= 0 {
            apply(x, Op::Fill, r1 as usize);
        }
        if r2 > 0 {
            apply(x, Op::Drain, r2 as usize);
        }
        if x.stop.is_some() {
            let x = self.xfers.remove(k);
            let err = x.stop.as_ref().map(|e| copy_err_bytes(e, x.body));
            self.finish_xfer(x, err);
            return;
        }
        // -EAGAIN / -ECANCELED of either hop are not errors: re-plan (polling first).
        let benign = |r: i32| r >= 0 || matches!(-r, libc::EAGAIN | libc::ECANCELED | libc::EINTR);
        let fatal = [r1, r2].into_iter().find(|&r| !benign(r));
        if let Some(r) = fatal {
            let errno = -r;
            let err = if errno >= 512 {
                TransferError::io(
                    io::ErrorKind::Interrupted,
                    x.body,
                    format!("interrupted (kernel code {errno})"),
                )
            } else {
                TransferError::os(errno, x.body)
            };
            let x = self.xfers.remove(k);
            self.finish_xfer(x, Some(err));
            return;
        }
        let poll = if r2 == -libc::EAGAIN && x.in_pipe > 0 {
            Some((x.job.plan.dst_fd, libc::POLLOUT)) // the destination is full
        } else if r1 == -libc::EAGAIN && x.in_pipe == 0 {
            Some((x.job.plan.src_fd, libc::POLLIN)) // nothing to read yet
        } else {
            None
        };
        if let Some((fd, ev)) = poll {
            self.ctx.recorder.eagain.fetch_add(1, Ordering::Relaxed);
            let e = opcode::PollAdd::new(types::Fd(fd), ev as u32).build();
            self.submit_op(k, Op::Poll, e);
            return;
        }
        self.advance(k);
    }

    fn submit_op(&mut self, k: usize, op: Op, e: squeue::Entry) {
        self.xfers[k].in_flight = Some(op);
        self.push(e.user_data(ud(TAG_OP, k)));
    }

    /// Plans and submits the next op of transfer `k`, or finishes it.
    fn advance(&mut self, k: usize) {
        let next = match plan_next(&mut self.xfers[k], &self.ctx) {
            Ok(n) => n,
            Err(e) => {
                let x = self.xfers.remove(k);
                self.finish_xfer(x, Some(e));
                return;
            }
        };
        match next {
            Next::Submit(op, e) => self.submit_op(k, op, e),
            Next::Pair(fill, drain) => {
                self.xfers[k].in_flight = Some(Op::Pair);
                let fill = fill
                    .user_data(ud(TAG_OP, k))
                    .flags(squeue::Flags::IO_HARDLINK);
                self.backlog.push((fill, true));
                self.push(drain.user_data(ud(TAG_OP2, k)));
            }
            Next::Finish => {
                let x = self.xfers.remove(k);
                self.finish_xfer(x, None);
            }
        }
    }

    /// Called once the transfer has no op in the kernel.
    fn finish_xfer(&mut self, mut x: Xfer, error: Option<io::Error>) {
        self.by_id.remove(&x.job.slot.id);
        if let Some(p) = x.pipe.take() {
            if error.is_some() || x.in_pipe > 0 {
                p.discard(); // may hold bytes the kernel moved for a failed transfer
            }
        }
        let (header, trailer) = match &x.small {
            Some(s) => {
                let h = s.sent.min(s.hlen) as u64;
                let t = s.sent.saturating_sub(s.hlen + s.filled) as u64;
                (h, t)
            }
            None => (x.hdr_sent as u64, x.trl_sent as u64),
        };
        let out = Outcome {
            started: x.started,
            body: x.body,
            header,
            trailer,
            error,
        };
        x.job.finish(&self.ctx, out);
    }
}

/// io::Error is not Clone: rebuild it with the same kind and message.
fn copy_err(e: &io::Error) -> io::Error {
    match TransferError::of(e) {
        Some(t) => t.clone().into_io(e.kind()),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

fn copy_err_bytes(e: &io::Error, bytes: u64) -> io::Error {
    match TransferError::of(e) {
        Some(t) => {
            let mut t = t.clone();
            t.bytes = bytes;
            t.into_io(e.kind())
        }
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Applies a successful result of `op` to the state. Returns true when the op moved
/// fewer bytes than it asked for without reaching an end (a "short" op).
fn apply(x: &mut Xfer, op: Op, n: usize) -> bool {
    match op {
        Op::Header => {
            x.hdr_sent += n;
            if let Some(o) = &mut x.dst_off {
                *o += n as u64;
            }
            x.hdr_sent < x.job.header.len()
        }
        Op::Trailer => {
            x.trl_sent += n;
            if let Some(o) = &mut x.dst_off {
                *o += n as u64;
            }
            x.trl_sent < x.job.trailer.len()
        }
        Op::SmallRead => {
            let s = x.small.as_mut().expect("small plan");
            if n == 0 {
                s.read_done = true;
                return false;
            }
            s.filled += n;
            x.read += n as u64;
            if s.filled >= s.body_len {
                s.read_done = true;
                return false;
            }
            true
        }
        Op::SmallSend => {
            let s = x.small.as_mut().expect("small plan");
            let before = s.sent;
            s.sent += n;
            let body_start = s.hlen;
            let body_end = s.hlen + s.filled;
            let delivered = s.sent.clamp(body_start, body_end) - before.clamp(body_start, body_end);
            x.body += delivered as u64;
            if let Some(o) = &mut x.dst_off {
                *o += n as u64;
            }
            s.sent < s.buf.len()
        }
        Op::Fill => {
            if n == 0 {
                x.eof = true;
                return false;
            }
            x.in_pipe += n;
            x.read += n as u64;
            if let Some(o) = &mut x.src_off {
                *o += n as u64;
            }
            x.src_ready = false;
            false
        }
        Op::Drain => {
            x.in_pipe -= n.min(x.in_pipe);
            x.body += n as u64;
            if let Some(o) = &mut x.dst_off {
                *o += n as u64;
            }
            x.in_pipe > 0
        }
        Op::Poll | Op::Pair => false,
    }
}

fn plan_next(x: &mut Xfer, ctx: &Ctx) -> io::Result<Next> {
    loop {
        match x.phase {
            Phase::Header => {
                if x.hdr_sent < x.job.header.len() {
                    let more = x.job.plan.more_after_header() || !x.job.trailer.is_empty();
                    let e = x.write_op(&x.job.header[x.hdr_sent..], more);
                    return Ok(Next::Submit(Op::Header, e));
                }
                x.phase = Phase::Body;
            }
            Phase::Body if x.small.is_some() => {
                let plan_len = x.job.plan.len;
                let s = x.small.as_mut().expect("small plan");
                if !s.read_done {
                    let start = s.hlen + s.filled;
                    let buf = &mut s.buf[start..s.hlen + s.body_len];
                    let off = x.src_off.unwrap_or(0) + s.filled as u64;
                    let e = opcode::Read::new(
                        types::Fd(x.job.plan.src_fd),
                        buf.as_mut_ptr(),
                        buf.len() as u32,
                    )
                    .offset(off)
                    .build();
                    return Ok(Next::Submit(Op::SmallRead, e));
                }
                if s.filled < s.body_len {
                    // The file was shorter than expected.
                    if plan_len.is_some() {
                        return Err(TransferError::io(
                            io::ErrorKind::UnexpectedEof,
                            0,
                            "source ended before len",
                        ));
                    }
                    let tail = s.hlen + s.body_len;
                    s.buf.copy_within(tail.., s.hlen + s.filled);
                    let keep = s.buf.len() - (s.body_len - s.filled);
                    s.buf.truncate(keep);
                    s.body_len = s.filled;
                }
                if s.sent < s.buf.len() {
                    let e = x.write_op(
                        &x.small.as_ref().expect("small").buf
                            [x.small.as_ref().expect("small").sent..],
                        false,
                    );
                    return Ok(Next::Submit(Op::SmallSend, e));
                }
                x.trl_sent = x.job.trailer.len();
                x.phase = Phase::Done;
            }
            Phase::Body => {
                if x.in_pipe > 0 {
                    let pipe = x.pipe.as_ref().expect("pipe while bytes are in it");
                    let mut flags = libc::SPLICE_F_NONBLOCK;
                    if x.more_follows() {
                        flags |= libc::SPLICE_F_MORE;
                    }
                    let off_out = x.dst_off.map_or(-1, |o| o as i64);
                    let e = opcode::Splice::new(
                        types::Fd(pipe.reader().as_raw_fd()),
                        -1,
                        x.dst_fd(),
                        off_out,
                        x.in_pipe as u32,
                    )
                    .flags(flags)
                    .build();
                    return Ok(Next::Submit(Op::Drain, e));
                }
                if x.eof || x.len_reached() {
                    if let Some(len) = x.job.plan.len {
                        if x.body < len {
                            return Err(TransferError::io(
                                io::ErrorKind::UnexpectedEof,
                                x.body,
                                format!("source ended before len ({len} bytes)"),
                            ));
                        }
                    }
                    if let Some(p) = x.pipe.take() {
                        drop(p); // empty: back to the pool (checked with FIONREAD)
                    }
                    x.phase = Phase::Trailer;
                    continue;
                }
                if x.pipe.is_none() {
                    x.pipe = Some(ctx.pool.get().map_err(|e| {
                        TransferError::io(e.kind(), x.body, format!("no pipe for splice: {e}"))
                    })?);
                }
                let stream = x.job.plan.src_kind != FdKind::File;
                if stream && !x.job.plan.src_nonblocking && !x.src_ready {
                    // A blocking socket would park an io-wq worker: wait for data first.
                    let e = opcode::PollAdd::new(types::Fd(x.job.plan.src_fd), libc::POLLIN as u32)
                        .build();
                    return Ok(Next::Submit(Op::Poll, e));
                }
                let pipe = x.pipe.as_ref().expect("pipe");
                let left = x.job.plan.len.map_or(u64::MAX, |l| l - x.read);
                let want = left.min(pipe.size() as u64) as u32;
                let off_in = x.src_off.map_or(-1, |o| o as i64);
                let e = opcode::Splice::new(
                    types::Fd(x.job.plan.src_fd),
                    off_in,
                    types::Fd(pipe.writer().as_raw_fd()),
                    -1,
                    want,
                )
                .flags(libc::SPLICE_F_NONBLOCK)
                .build();
                if ctx.config.link_splices {
                    // Hard-linked drain: runs right after the fill in the same io-wq
                    // worker, moving whatever the fill produced (NONBLOCK: an empty pipe
                    // gives -EAGAIN instead of waiting).
                    let more = !x.job.trailer.is_empty()
                        || x.job
                            .plan
                            .body_hint()
                            .is_some_and(|h| x.read + u64::from(want) < h);
                    let mut flags = libc::SPLICE_F_NONBLOCK;
                    if more {
                        flags |= libc::SPLICE_F_MORE;
                    }
                    let off_out = x.dst_off.map_or(-1, |o| o as i64);
                    let drain = opcode::Splice::new(
                        types::Fd(pipe.reader().as_raw_fd()),
                        -1,
                        x.dst_fd(),
                        off_out,
                        want,
                    )
                    .flags(flags)
                    .build();
                    return Ok(Next::Pair(e, drain));
                }
                return Ok(Next::Submit(Op::Fill, e));
            }
            Phase::Trailer => {
                if x.trl_sent < x.job.trailer.len() {
                    let e = x.write_op(&x.job.trailer[x.trl_sent..], false);
                    return Ok(Next::Submit(Op::Trailer, e));
                }
                x.phase = Phase::Done;
            }
            Phase::Done => return Ok(Next::Finish),
        }
    }
}
