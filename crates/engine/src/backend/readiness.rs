//! `LocalEngine`'s executor where io_uring is unavailable: the same plan, run with
//! non-blocking syscalls on the owner's thread, driven by readiness (epoll). A step
//! that would wait registers its fd; `turn` waits in `epoll_wait` and resumes what
//! became ready. The epoll fd is the engine's `AsFd`.
//!
//! Regular-file reads may still wait for the disk here (there is no asynchronous read
//! without io_uring); sockets and pipes never block the thread.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::backend::drive::{drive, Issued};
use crate::backend::ops::{ConnOp, Direction, Ready};
use crate::backend::{steps, Ctx, LocalExec};
use crate::backend_kind::RunsOn;
use crate::events::{Event, OpId};
use crate::job::Job;
use crate::plan::{Caps, Side, Step};
use crate::sys;
use crate::transfer::TransferKind;

/// The epoll token of the cancel eventfd (other tokens are fd numbers).
const NOTIFY: u64 = u64::MAX;

/// Ids waiting on one fd, and the events asked for.
#[derive(Default)]
struct Waiters {
    ids: Vec<u64>,
    events: u32,
}

pub(crate) struct Readiness {
    ctx: Ctx,
    epoll: OwnedFd,
    notify: Arc<OwnedFd>,
    cancels: (Sender<u64>, Receiver<u64>),
    jobs: HashMap<u64, Job>,
    conns: HashMap<u64, Box<dyn ConnOp>>,
    runnable: VecDeque<u64>,
    waits: HashMap<RawFd, Waiters>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Events of ops ended outside a turn (cancelled), delivered at the next one.
    pending: Vec<Event>,
    tokens: Vec<u64>,
    /// Jobs waiting in a `Poll` step, and for which side.
    polling: HashMap<u64, Side>,
}

impl Readiness {
    pub(crate) fn new(ctx: Ctx) -> io::Result<Readiness> {
        let epoll = sys::epoll_create()?;
        let notify = sys::eventfd()?;
        let ep = epoll.as_fd();
        sys::epoll_ctl(
            ep,
            libc::EPOLL_CTL_ADD,
            notify.as_raw_fd(),
            libc::EPOLLIN as u32,
            NOTIFY,
        )?;
        Ok(Readiness {
            ctx,
            epoll,
            notify: Arc::new(notify),
            cancels: crossbeam_channel::unbounded(),
            jobs: HashMap::new(),
            conns: HashMap::new(),
            runnable: VecDeque::new(),
            waits: HashMap::new(),
            timers: BinaryHeap::new(),
            pending: Vec::new(),
            tokens: Vec::new(),
            polling: HashMap::new(),
        })
    }

    /// `id` waits until `fd` is readable (`out`: writable).
    fn wait_for(&mut self, fd: RawFd, out: bool, id: u64) -> io::Result<()> {
        wait_for(&self.epoll, &mut self.waits, fd, out, id)
    }

    fn run_all(&mut self, out: &mut Vec<Event>) {
        while let Some(id) = self.runnable.pop_front() {
            if self.jobs.contains_key(&id) {
                self.run_job(id, out);
            } else if self.conns.contains_key(&id) {
                self.run_conn(id, out);
            }
        }
    }

    /// Runs job `id`'s plan until it must wait or ends.
    fn run_job(&mut self, id: u64, out: &mut Vec<Event>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let (ctx, epoll, waits, polling, timers) = (
            &self.ctx,
            &self.epoll,
            &mut self.waits,
            &mut self.polling,
            &mut self.timers,
        );
        let done = drive(job, |job, step| match step {
            Step::Poll(side) => {
                ctx.recorder.eagain.fetch_add(1, Ordering::Relaxed);
                if side == Side::Src {
                    job.release_idle_pipe();
                }
                let fd = match side {
                    Side::Src => job.src.as_fd().as_raw_fd(),
                    Side::Dst => job.dst.as_fd().as_raw_fd(),
                };
                if let Some(t) = job.next_timer() {
                    timers.push(Reverse((t, id)));
                }
                match wait_for(epoll, waits, fd, side == Side::Dst, id) {
                    Ok(()) => {
                        polling.insert(id, side);
                        Issued::Pending
                    }
                    Err(e) => Issued::Ran(Err(e.raw_os_error().unwrap_or(libc::EIO))),
                }
            }
            _ => Issued::Ran(steps::run(job, step, &ctx.pool, false)),
        });
        if done {
            self.polling.remove(&id);
            let job = self.jobs.remove(&id).expect("present");
            job.finish(&self.ctx.recorder);
            out.push(Event::TransferDone { op: OpId(id) });
        }
    }

    /// Carries connection op `id` as far as it goes without waiting.
    fn run_conn(&mut self, id: u64, out: &mut Vec<Event>) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        match c.run(OpId(id), out) {
            Ready::Done => {}
            Ready::Yield => {
                self.conns.insert(id, c);
                self.runnable.push_back(id);
            }
            Ready::Sleep(due) => {
                self.timers.push(Reverse((due, id)));
                self.conns.insert(id, c);
            }
            Ready::Wait => {
                let waited = match c.waits_on() {
                    Some((fd, direction)) => {
                        self.wait_for(fd, direction == Direction::Writable, id)
                    }
                    None => Err(io::Error::other("an op that cannot wait would block")),
                };
                match waited {
                    Ok(()) => {
                        self.conns.insert(id, c);
                    }
                    Err(e) => out.push(c.ended(OpId(id), e)),
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            // A job's `check_stop` decides; a connection op (a timeout) runs again.
            if self.jobs.contains_key(&id) || self.conns.contains_key(&id) {
                self.runnable.push_back(id);
            }
        }
    }

    fn take_cancels(&mut self) {
        while let Ok(id) = self.cancels.1.try_recv() {
            if self.jobs.contains_key(&id) {
                self.runnable.push_back(id);
            }
        }
    }
}

impl LocalExec for Readiness {
    fn runs_on(&self) -> RunsOn {
        RunsOn::ReadinessLoop
    }

    fn caps(&self, _kind: TransferKind) -> Caps {
        Caps::SYSCALLS
    }

    fn submit(&mut self, job: Job) {
        let id = job.id;
        self.jobs.insert(id, job);
        self.runnable.push_back(id);
    }

    fn start_conn(&mut self, id: u64, mut op: Box<dyn ConnOp>) {
        op.prepare_readiness();
        self.conns.insert(id, op);
        self.runnable.push_back(id);
    }

    fn cancel_conn(&mut self, id: u64) {
        if let Some(mut c) = self.conns.remove(&id) {
            let e = io::Error::new(io::ErrorKind::Interrupted, "operation cancelled");
            self.pending.push(c.ended(OpId(id), e));
        }
    }

    fn turn(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
        let before = out.len();
        out.append(&mut self.pending);
        self.take_cancels();
        self.run_all(out);
        let now = Instant::now();
        let mut until = timeout.map(|d| now + d);
        if let Some(Reverse((t, _))) = self.timers.peek() {
            until = Some(until.map_or(*t, |u| u.min(*t)));
        }
        let ms = match until {
            _ if out.len() > before || !self.runnable.is_empty() => 0,
            None => -1,
            Some(u) => {
                u.saturating_duration_since(now)
                    .as_millis()
                    .min(i32::MAX as u128) as i32
                    + i32::from(u > now)
            }
        };
        let mut tokens = std::mem::take(&mut self.tokens);
        sys::epoll_wait(self.epoll.as_fd(), &mut tokens, ms)?;
        for &t in &tokens {
            if t == NOTIFY {
                sys::eventfd_drain(self.notify.as_fd());
                continue;
            }
            let fd = t as RawFd;
            if let Some(w) = self.waits.remove(&fd) {
                let _ = sys::epoll_ctl(self.epoll.as_fd(), libc::EPOLL_CTL_DEL, fd, 0, 0);
                for id in w.ids {
                    // A job's wait is over: its Poll step completes.
                    if let (Some(side), Some(job)) =
                        (self.polling.remove(&id), self.jobs.get_mut(&id))
                    {
                        job.plan.complete(Step::Poll(side), Ok(1));
                    }
                    self.runnable.push_back(id);
                }
            }
        }
        tokens.clear();
        self.tokens = tokens;
        if self.timers.len() > 2 * (self.jobs.len() + self.conns.len()) + 64 {
            // Timers of ended ops (an idle timeout pushed at each wait) would stay until
            // they pass: drop them.
            let (jobs, conns) = (&self.jobs, &self.conns);
            self.timers
                .retain(|Reverse((_, id))| jobs.contains_key(id) || conns.contains_key(id));
            self.timers.shrink_to(self.timers.len() * 2);
        }
        for cap in [self.jobs.capacity(), self.conns.capacity()] {
            if cap > 256 && (self.jobs.len() + self.conns.len()) * 8 < cap {
                // A crowd of connections left: give their room back.
                self.jobs.shrink_to(self.jobs.len() * 2);
                self.conns.shrink_to(self.conns.len() * 2);
                self.waits.shrink_to(self.waits.len() * 2);
                break;
            }
        }
        self.fire_timers();
        self.take_cancels();
        self.run_all(out);
        Ok(())
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    fn canceller(&self) -> Arc<dyn Fn(u64) + Send + Sync> {
        let (tx, notify) = (self.cancels.0.clone(), self.notify.clone());
        Arc::new(move |id| {
            if tx.send(id).is_ok() {
                sys::eventfd_signal(notify.as_fd());
            }
        })
    }

    fn shutdown(&mut self) {
        // Nothing is in the kernel between two syscalls: stop and finish everything.
        for (_, mut job) in self.jobs.drain() {
            job.plan
                .stop(io::ErrorKind::Interrupted, "engine shut down");
            job.finish(&self.ctx.recorder);
        }
        self.conns.clear();
    }
}

/// Adds `id` to the waiters of `fd` (readable, or writable with `out`) in the epoll set.
fn wait_for(
    epoll: &OwnedFd,
    waits: &mut HashMap<RawFd, Waiters>,
    fd: RawFd,
    out: bool,
    id: u64,
) -> io::Result<()> {
    let ev = if out { libc::EPOLLOUT } else { libc::EPOLLIN } as u32;
    let w = waits.entry(fd).or_default();
    w.ids.push(id);
    let events = w.events | ev;
    let op = if w.events == 0 {
        libc::EPOLL_CTL_ADD
    } else {
        libc::EPOLL_CTL_MOD
    };
    w.events = events;
    let ep = epoll.as_fd();
    match sys::epoll_ctl(ep, op, fd, events, fd as u64) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            sys::epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, events, fd as u64)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            sys::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, events, fd as u64)
        }
        r => r,
    }
}
