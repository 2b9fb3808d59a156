//! The blocking backend: a pool of threads, each running one transfer at a time with
//! plain syscalls from `ferry-compat` (sendfile, splice through a pooled pipe,
//! copy_file_range). Used off Linux, where io_uring is unavailable, and when forced.
//!
//! Every wait is a `poll` of at most [`TICK`], so a cancel, a timeout or the engine's
//! shutdown is noticed within one tick. A syscall on a *blocking* fd can still block
//! longer (the kernel decides); use non-blocking fds for tight timeouts.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use ferry_compat::{SpliceFlags, MAX_CHUNK};

use crate::engine::{shutdown_error, Backend, BackendImpl, Ctx, Job, Outcome, TICK};
use crate::handle::TransferError;
use crate::transfer::FdKind;

/// Bytes per syscall of the body: a cancel or timeout is checked between calls.
const STEP: usize = 1 << 20;
/// copy_file_range moves file → file without touching a socket buffer: larger steps
/// (about 5 ms each here) cut the per-call cost while keeping cancels prompt.
const FILE_STEP: usize = 16 << 20;

pub(crate) struct Blocking {
    ctx: Ctx,
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
}

impl Blocking {
    pub(crate) fn start(ctx: Ctx) -> io::Result<Blocking> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let stopping = Arc::new(AtomicBool::new(false));
        let n = ctx.config.threads.max(1) * 4;
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (rx, ctx, stopping) = (rx.clone(), ctx.clone(), stopping.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("ferry-blk-{i}"))
                    .spawn(move || worker(rx, ctx, stopping))?,
            );
        }
        Ok(Blocking {
            ctx,
            tx: Some(tx),
            threads,
            stopping,
        })
    }
}

impl BackendImpl for Blocking {
    fn kind(&self) -> Backend {
        Backend::Blocking
    }

    fn submit(&self, job: Job) {
        let job = match &self.tx {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(e) => e.into_inner(),
            },
            None => job,
        };
        job.fail_before_start(&self.ctx, shutdown_error(0));
    }

    fn canceller(&self) -> Box<dyn Fn(u64) + Send + Sync> {
        Box::new(|_| {}) // workers watch the slot's flag at every tick
    }

    fn shutdown(&mut self) {
        self.stopping.store(true, Ordering::Release);
        self.tx = None; // workers drain the queue (failing each job) and exit
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(rx: Receiver<Job>, ctx: Ctx, stopping: Arc<AtomicBool>) {
    for job in rx.iter() {
        let started = Instant::now();
        let mut run = Run {
            job: &job,
            ctx: &ctx,
            stopping: &stopping,
            body: 0,
            header: 0,
            trailer: 0,
        };
        let error = run.run().err();
        let out = Outcome {
            started,
            body: run.body,
            header: run.header,
            trailer: run.trailer,
            error,
        };
        job.finish(&ctx, out);
    }
}

struct Run<'a> {
    job: &'a Job,
    ctx: &'a Ctx,
    stopping: &'a AtomicBool,
    body: u64,
    header: u64,
    trailer: u64,
}

impl Run<'_> {
    /// Fails if the transfer was cancelled, timed out or the engine is stopping.
    fn check(&self) -> io::Result<()> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(shutdown_error(self.body));
        }
        match self.job.stop_reason(Instant::now(), self.body) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn os_err(&self, e: io::Error) -> io::Error {
        match e.raw_os_error() {
            Some(errno) => TransferError::os(errno, self.body),
            None => e,
        }
    }

    /// Waits until `fd` is ready, checking cancel/timeout every tick.
    fn wait(&self, fd: BorrowedFd<'_>, events: libc::c_short) -> io::Result<()> {
        self.ctx.recorder.eagain.fetch_add(1, Ordering::Relaxed);
        loop {
            self.check()?;
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events,
                revents: 0,
            };
            // SAFETY: one valid pollfd; the fd is kept open by the job's Arc.
            let n = unsafe { libc::poll(&mut pfd, 1, TICK.as_millis() as i32) };
            if n > 0 {
                return Ok(());
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }

    fn run(&mut self) -> io::Result<()> {
        self.check()?;
        let job = self.job;
        let dst = job.dst.as_fd();
        let more = job.plan.more_after_header() || !job.trailer.is_empty();
        let mut dst_off = job.plan.dst_off;
        self.header = self.write_all(dst, &job.header, more, &mut dst_off)?;
        match job.plan.src_kind {
            FdKind::File => self.file_body(&mut dst_off)?,
            _ => self.stream_body(&mut dst_off)?,
        }
        if let Some(len) = job.plan.len {
            if self.body < len {
                return Err(TransferError::io(
                    io::ErrorKind::UnexpectedEof,
                    self.body,
                    format!("source ended before len ({len} bytes)"),
                ));
            }
        }
        self.trailer = self.write_all(dst, &job.trailer, false, &mut dst_off)?;
        Ok(())
    }

    fn write_all(
        &self,
        dst: BorrowedFd<'_>,
        mut buf: &[u8],
        more: bool,
        dst_off: &mut Option<u64>,
    ) -> io::Result<u64> {
        let total = buf.len() as u64;
        while !buf.is_empty() {
            self.check()?;
            let r = match (self.job.plan.dst_kind, *dst_off) {
                (FdKind::Socket, _) => {
                    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
                    // SAFETY: `buf` is valid for reads of its length during the call.
                    unsafe { libc::send(dst.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) }
                }
                (_, Some(off)) => {
                    // SAFETY: as above; pwrite at an offset we own for this transfer.
                    unsafe {
                        libc::pwrite(
                            dst.as_raw_fd(),
                            buf.as_ptr().cast(),
                            buf.len(),
                            off as libc::off_t,
                        )
                    }
                }
                // SAFETY: as above.
                _ => unsafe { libc::write(dst.as_raw_fd(), buf.as_ptr().cast(), buf.len()) },
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => self.wait(dst, libc::POLLOUT)?,
                    _ => return Err(self.os_err(e)),
                }
                continue;
            }
            if r == 0 {
                return Err(TransferError::io(
                    io::ErrorKind::WriteZero,
                    self.body,
                    "write returned 0",
                ));
            }
            buf = &buf[r as usize..];
            if let Some(o) = dst_off {
                *o += r as u64;
            }
        }
        Ok(total)
    }

    /// How many bytes the next call may ask for.
    fn want(&self) -> usize {
        let step = if self.job.plan.dst_kind == FdKind::File {
            FILE_STEP
        } else {
            STEP
        };
        let left = self.job.plan.len.map_or(u64::MAX, |l| l - self.body);
        left.min(step as u64).min(MAX_CHUNK as u64) as usize
    }

    fn done(&self) -> bool {
        self.job.plan.len.is_some_and(|l| self.body >= l)
    }

    fn file_body(&mut self, dst_off: &mut Option<u64>) -> io::Result<()> {
        let (src, dst) = (self.job.src.as_fd(), self.job.dst.as_fd());
        let start = self.job.plan.src_off.unwrap_or(0);
        let mut use_cfr = self.job.plan.dst_kind == FdKind::File;
        while !self.done() {
            self.check()?;
            let off = start + self.body;
            let want = self.want();
            let r = if use_cfr {
                let r = ferry_compat::copy_file_range(src, dst, want, Some(off), *dst_off);
                match r {
                    // Not supported for these files: copy through the pipe instead.
                    Err(ref e)
                        if matches!(
                            e.raw_os_error(),
                            Some(
                                libc::EXDEV
                                    | libc::EINVAL
                                    | libc::EOPNOTSUPP
                                    | libc::ENOSYS
                                    | libc::EPERM
                            )
                        ) =>
                    {
                        use_cfr = false;
                        continue;
                    }
                    // A first-call 0 below EOF also means "unsupported" (old kernels, /proc).
                    Ok(0) if self.body == 0 && self.job.plan.src_avail.is_some_and(|a| a > 0) => {
                        use_cfr = false;
                        continue;
                    }
                    r => r,
                }
            } else if self.job.plan.dst_kind == FdKind::File {
                return self.via_pipe(dst_off, Some(off));
            } else {
                ferry_compat::sendfile(dst, src, Some(off), want)
            };
            match r {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    self.body += n as u64;
                    if let Some(o) = dst_off {
                        *o += n as u64;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(dst, libc::POLLOUT)?,
                Err(e) => return Err(self.os_err(e)),
            }
        }
        Ok(())
    }

    fn stream_body(&mut self, dst_off: &mut Option<u64>) -> io::Result<()> {
        self.via_pipe(dst_off, None)
    }

    /// src → pooled pipe → dst with `splice`. A pipe left holding bytes (error,
    /// cancel) is discarded, never returned to the pool.
    fn via_pipe(&mut self, dst_off: &mut Option<u64>, mut src_off: Option<u64>) -> io::Result<()> {
        let (src, dst) = (self.job.src.as_fd(), self.job.dst.as_fd());
        let pipe = self.ctx.pool.get().map_err(|e| self.os_err(e))?;
        let mut in_pipe = 0usize;
        let mut eof = false;
        let res = (|| {
            let nb = SpliceFlags::NONBLOCK;
            while in_pipe > 0 || (!eof && !self.done()) {
                self.check()?;
                if in_pipe == 0 {
                    let want = self.want().min(pipe.size());
                    match ferry_compat::splice(src, pipe.writer(), want, src_off, None, nb) {
                        Ok(0) => eof = true,
                        Ok(n) => {
                            in_pipe = n;
                            if let Some(o) = &mut src_off {
                                *o += n as u64;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.wait(src, libc::POLLIN)?
                        }
                        Err(e) => return Err(self.os_err(e)),
                    }
                } else {
                    // MORE only when bytes are known to follow: a stream of unknown length
                    // must not leave its last chunk corked.
                    let hint = self.job.plan.body_hint();
                    let more = !self.job.trailer.is_empty()
                        || hint.is_some_and(|h| self.body + (in_pipe as u64) < h);
                    let flags = if more { nb | SpliceFlags::MORE } else { nb };
                    match ferry_compat::splice(pipe.reader(), dst, in_pipe, None, *dst_off, flags) {
                        Ok(0) => {
                            return Err(TransferError::io(
                                io::ErrorKind::WriteZero,
                                self.body,
                                "splice into dst returned 0",
                            ))
                        }
                        Ok(n) => {
                            in_pipe -= n;
                            self.body += n as u64;
                            if let Some(o) = dst_off {
                                *o += n as u64;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.wait(dst, libc::POLLOUT)?
                        }
                        Err(e) => return Err(self.os_err(e)),
                    }
                }
            }
            Ok(())
        })();
        if res.is_err() || in_pipe > 0 {
            pipe.discard();
        }
        res
    }
}
