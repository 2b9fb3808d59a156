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
use crate::backend::{steps, Ctx, LocalExec};
use crate::backend_kind::Backend;
use crate::events::{ended, ConnOp, Event, OpId};
use crate::job::Job;
use crate::modes::NonBlocking;
use crate::plan::{Caps, Side, Step};
use crate::sys;
use crate::transfer::TransferKind;

/// The epoll token of the cancel eventfd (other tokens are fd numbers).
const NOTIFY: u64 = u64::MAX;

/// Where a non-blocking `connect` is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Connecting {
    /// Not called yet.
    NotStarted,
    /// Called once (its result decides).
    Called,
    /// In progress: waiting for writability, then `SO_ERROR` says how it ended.
    InProgress,
}

struct Conn {
    op: ConnOp,
    /// Bytes of a `Send` already written.
    sent: usize,
    /// A `Connect`'s stage.
    connecting: Connecting,
    /// A listener is switched to non-blocking while accepted on.
    _mode: Option<NonBlocking>,
}

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
    conns: HashMap<u64, Conn>,
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
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        let op = OpId(id);
        let mut c = match c {
            Conn {
                op: ConnOp::Close(fd),
                ..
            } => {
                let result = sys::close(fd);
                return out.push(Event::Closed { op, result });
            }
            c => c,
        };
        let wait = match &mut c.op {
            ConnOp::Accept(l) => loop {
                match sys::accept(l.as_fd()) {
                    Ok(fd) => out.push(Event::Accepted { op, conn: Ok(fd) }),
                    Err(libc::EAGAIN) => break Some((l.as_fd().as_raw_fd(), false)),
                    Err(libc::ECONNABORTED) => continue,
                    Err(e) => {
                        out.push(Event::Accepted {
                            op,
                            conn: Err(io::Error::from_raw_os_error(e)),
                        });
                        break None;
                    }
                }
            },
            ConnOp::Recv(fd, buf) => match sys::recv(fd.as_fd(), buf) {
                Err(libc::EAGAIN) => Some((fd.as_fd().as_raw_fd(), false)),
                r => {
                    let result = r.map_err(io::Error::from_raw_os_error);
                    let buf = std::mem::take(buf);
                    out.push(Event::Received { op, buf, result });
                    None
                }
            },
            ConnOp::RecvPooled(fd) => {
                // Read into the thread's scratch buffer; the event gets exactly the bytes.
                let mut scratch = [0u8; 16 * 1024];
                match sys::recv(fd.as_fd(), &mut scratch) {
                    Err(libc::EAGAIN) => Some((fd.as_fd().as_raw_fd(), false)),
                    r => {
                        let result = r.map_err(io::Error::from_raw_os_error);
                        let buf = match &result {
                            Ok(n) => scratch[..*n].to_vec(),
                            Err(_) => Vec::new(),
                        };
                        out.push(Event::Received { op, buf, result });
                        None
                    }
                }
            }
            ConnOp::RecvMulti(fd) => {
                // Everything readable now (bounded, so other ops get their turn), then
                // wait for more.
                let mut buf = vec![0u8; 16 * 1024];
                let mut wait = None;
                for _ in 0..16 {
                    match sys::recv(fd.as_fd(), &mut buf) {
                        Ok(0) => {
                            out.push(Event::Received {
                                op,
                                buf: Vec::new(),
                                result: Ok(0),
                            });
                            return;
                        }
                        Ok(n) => out.push(Event::Received {
                            op,
                            buf: buf[..n].to_vec(),
                            result: Ok(n),
                        }),
                        Err(libc::EAGAIN) => {
                            wait = Some((fd.as_fd().as_raw_fd(), false));
                            break;
                        }
                        Err(e) => {
                            let result = Err(io::Error::from_raw_os_error(e));
                            out.push(Event::Received {
                                op,
                                buf: Vec::new(),
                                result,
                            });
                            return;
                        }
                    }
                }
                if wait.is_none() {
                    self.conns.insert(id, c);
                    self.runnable.push_back(id);
                    return;
                }
                wait
            }
            ConnOp::Send(fd, buf) => loop {
                if c.sent == buf.len() {
                    let buf = std::mem::take(buf);
                    out.push(Event::Sent {
                        op,
                        result: Ok(buf.len()),
                        buf,
                    });
                    break None;
                }
                match sys::send(fd.as_fd(), &buf[c.sent..], false, true) {
                    Ok(n) => c.sent += n,
                    Err(libc::EAGAIN) => break Some((fd.as_fd().as_raw_fd(), true)),
                    Err(e) => {
                        let buf = std::mem::take(buf);
                        let result = Err(io::Error::from_raw_os_error(e));
                        out.push(Event::Sent { op, buf, result });
                        break None;
                    }
                }
            },
            ConnOp::Connect(fd, addr) => {
                // First run: start the (non-blocking) connect; after writability, its result.
                let result = if c.connecting == Connecting::NotStarted {
                    c.connecting = Connecting::Called;
                    sys::connect(fd.as_fd(), &sys::RawAddr::new(addr))
                } else {
                    sys::socket_error(fd.as_fd())
                };
                match result {
                    Err(libc::EINPROGRESS | libc::EAGAIN) if c.connecting == Connecting::Called => {
                        c.connecting = Connecting::InProgress;
                        Some((fd.as_fd().as_raw_fd(), true))
                    }
                    r => {
                        let result = r.map_err(io::Error::from_raw_os_error);
                        out.push(Event::Connected { op, result });
                        None
                    }
                }
            }
            ConnOp::Timeout(d) => {
                // First run: arm the timer; it fires in `turn`.
                self.timers.push(Reverse((Instant::now() + *d, id)));
                self.conns.insert(id, c);
                return;
            }
            ConnOp::Close(_) => None, // handled above
        };
        if let Some((fd, writable)) = wait {
            self.conns.insert(id, c);
            if let Err(e) = self.wait_for(fd, writable, id) {
                let c = self.conns.remove(&id).expect("just put back");
                out.push(ended(id, c.op, e));
            }
        }
    }

    fn fire_timers(&mut self, out: &mut Vec<Event>) {
        let now = Instant::now();
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            if self.jobs.contains_key(&id) {
                self.runnable.push_back(id); // check_stop decides
            } else if let Some(c) = self.conns.remove(&id) {
                match c.op {
                    ConnOp::Timeout(_) => out.push(Event::Timer {
                        op: OpId(id),
                        result: Ok(()),
                    }),
                    other => {
                        self.conns.insert(id, Conn { op: other, ..c });
                    }
                }
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
    fn kind(&self) -> Backend {
        Backend::Blocking
    }

    fn caps(&self, _kind: TransferKind) -> Caps {
        Caps::SYSCALLS
    }

    fn submit(&mut self, job: Job) {
        let id = job.id;
        self.jobs.insert(id, job);
        self.runnable.push_back(id);
    }

    fn start_conn(&mut self, id: u64, op: ConnOp) {
        let mode = match &op {
            // Readiness needs non-blocking sockets; the caller's mode is back afterwards.
            ConnOp::Accept(fd) | ConnOp::Connect(fd, _) => NonBlocking::acquire(fd),
            _ => None,
        };
        self.conns.insert(
            id,
            Conn {
                op,
                sent: 0,
                connecting: Connecting::NotStarted,
                _mode: mode,
            },
        );
        self.runnable.push_back(id);
    }

    fn cancel_conn(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            let e = io::Error::new(io::ErrorKind::Interrupted, "operation cancelled");
            self.pending.push(ended(id, c.op, e));
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
        self.fire_timers(out);
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
