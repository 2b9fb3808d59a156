//! The pool itself: configuration, the idle queue, pooled pipe handles and counters.

use crossbeam_queue::ArrayQueue;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use crate::sys;

/// How a [`PipePool`] makes and keeps pipes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most idle pipes kept for reuse; a pipe returned to a full pool is closed.
    /// `0` keeps none (every `get` makes a new pipe).
    pub capacity: usize,
    /// Capacity asked for each pipe with `F_SETPIPE_SZ`, in bytes; clamped to
    /// `/proc/sys/fs/pipe-max-size`. `0` keeps the kernel default (64 KiB on Linux).
    pub pipe_size: usize,
    /// Open both ends `O_NONBLOCK` (the default: the engine drives pipes by readiness).
    pub nonblocking: bool,
}

impl Default for PoolConfig {
    /// 64 idle pipes of 1 MiB, non-blocking: 64 MiB at most, which is the default
    /// per-user pipe budget of Linux (`pipe-user-pages-soft`).
    fn default() -> Self {
        PoolConfig {
            capacity: 64,
            pipe_size: 1 << 20,
            nonblocking: true,
        }
    }
}

/// A snapshot of a pool's counters, from [`PipePool::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `get` calls served by an idle pipe.
    pub hits: u64,
    /// `get` calls that had to create a pipe.
    pub misses: u64,
    /// Pipes closed on return because they still held bytes (or could not be checked).
    pub discarded: u64,
    /// Pipes closed on return because the pool already held `capacity` idle pipes.
    pub overflowed: u64,
    /// Pipes created smaller than asked: the kernel refused `F_SETPIPE_SZ`, usually
    /// because the per-user pipe budget (`pipe-user-pages-soft`) is spent.
    pub undersized: u64,
    /// Capacity of the most recently created pipe, in bytes (0 before the first).
    pub last_pipe_size: usize,
    /// Pipes waiting in the pool now.
    pub idle: usize,
    /// Pipes handed out and not yet returned.
    pub outstanding: usize,
}

struct Pipe {
    reader: OwnedFd,
    writer: OwnedFd,
    size: usize,
}

struct Shared {
    config: PoolConfig,
    /// The size really asked of the kernel (config.pipe_size clamped to pipe-max-size).
    asked: usize,
    idle: Option<ArrayQueue<Pipe>>,
    hits: AtomicU64,
    misses: AtomicU64,
    discarded: AtomicU64,
    overflowed: AtomicU64,
    undersized: AtomicU64,
    last_pipe_size: AtomicUsize,
    outstanding: AtomicUsize,
}

/// A bounded, thread-safe pool of kernel pipe pairs.
///
/// Cloning is cheap and gives another handle to the same pool. See the
/// [crate documentation](crate) for an example.
#[derive(Clone)]
pub struct PipePool {
    shared: Arc<Shared>,
}

impl fmt::Debug for PipePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipePool")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl PipePool {
    /// Makes an empty pool; pipes are created on demand by [`get`](Self::get).
    ///
    /// Never fails today; the `Result` leaves room for a pool that pre-creates pipes.
    pub fn new(config: PoolConfig) -> io::Result<PipePool> {
        let asked = match sys::max_pipe_size() {
            Some(max) if config.pipe_size > max => max,
            _ => config.pipe_size,
        };
        let idle = (config.capacity > 0).then(|| ArrayQueue::new(config.capacity));
        Ok(PipePool {
            shared: Arc::new(Shared {
                config,
                asked,
                idle,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                discarded: AtomicU64::new(0),
                overflowed: AtomicU64::new(0),
                undersized: AtomicU64::new(0),
                last_pipe_size: AtomicUsize::new(0),
                outstanding: AtomicUsize::new(0),
            }),
        })
    }

    /// The configuration this pool was made with.
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The capacity each new pipe asks for: `pipe_size` clamped to `pipe-max-size`.
    pub fn target_size(&self) -> usize {
        self.shared.asked
    }

    /// Takes an idle pipe, or creates one (`pipe2` + `F_SETPIPE_SZ`).
    ///
    /// The pipe is empty. Fails only when a new pipe cannot be created (`EMFILE`,
    /// `ENFILE`); a pipe smaller than asked is not an error (see [`PooledPipe::size`]).
    pub fn get(&self) -> io::Result<PooledPipe> {
        let s = &self.shared;
        let pipe = match s.idle.as_ref().and_then(ArrayQueue::pop) {
            Some(p) => {
                s.hits.fetch_add(1, Relaxed);
                p
            }
            None => {
                let (reader, writer, size) = sys::new_pipe(s.config.nonblocking, s.asked)?;
                s.misses.fetch_add(1, Relaxed);
                if s.asked > 0 && size < s.asked {
                    s.undersized.fetch_add(1, Relaxed);
                }
                s.last_pipe_size.store(size, Relaxed);
                Pipe {
                    reader,
                    writer,
                    size,
                }
            }
        };
        s.outstanding.fetch_add(1, Relaxed);
        Ok(PooledPipe {
            pipe: Some(pipe),
            pool: Arc::downgrade(&self.shared),
        })
    }

    /// A snapshot of the counters. Cheap: a few relaxed atomic loads.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            hits: s.hits.load(Relaxed),
            misses: s.misses.load(Relaxed),
            discarded: s.discarded.load(Relaxed),
            overflowed: s.overflowed.load(Relaxed),
            undersized: s.undersized.load(Relaxed),
            last_pipe_size: s.last_pipe_size.load(Relaxed),
            idle: s.idle.as_ref().map_or(0, ArrayQueue::len),
            outstanding: s.outstanding.load(Relaxed),
        }
    }
}

/// A pipe pair borrowed from a [`PipePool`]; dropping it returns it.
///
/// On drop the pipe goes back to the pool only if `FIONREAD` says it is empty and the
/// pool has room; otherwise both ends are closed. Use [`discard`](Self::discard) when
/// you already know the pipe is dirty (a failed or cancelled transfer) to skip the check.
pub struct PooledPipe {
    pipe: Option<Pipe>,
    /// Weak: once every `PipePool` handle is gone the idle pipes are closed, and a pipe
    /// returned after that is closed too.
    pool: Weak<Shared>,
}

impl fmt::Debug for PooledPipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.pipe();
        f.debug_struct("PooledPipe")
            .field("reader", &p.reader)
            .field("writer", &p.writer)
            .field("size", &p.size)
            .finish()
    }
}

impl PooledPipe {
    fn pipe(&self) -> &Pipe {
        // The Option is only emptied inside `drop`/`discard`, which consume `self`.
        self.pipe.as_ref().expect("pipe present until drop")
    }

    /// The read end.
    pub fn reader(&self) -> BorrowedFd<'_> {
        self.pipe().reader.as_fd()
    }

    /// The write end.
    pub fn writer(&self) -> BorrowedFd<'_> {
        self.pipe().writer.as_fd()
    }

    /// Capacity in bytes really obtained (`F_GETPIPE_SZ`); may be less than asked.
    ///
    /// Note that the kernel counts capacity in page slots: data arriving from a socket
    /// in small segments can fill the slots before `size()` bytes are in the pipe.
    pub fn size(&self) -> usize {
        self.pipe().size
    }

    /// Closes the pipe instead of returning it (counted as `discarded`).
    pub fn discard(mut self) {
        let pipe = self.pipe.take();
        if let Some(pool) = self.pool.upgrade() {
            pool.outstanding.fetch_sub(1, Relaxed);
            pool.discarded.fetch_add(1, Relaxed);
        }
        drop(pipe);
    }
}

impl Drop for PooledPipe {
    fn drop(&mut self) {
        let Some(pipe) = self.pipe.take() else {
            return; // already discarded
        };
        let Some(pool) = self.pool.upgrade() else {
            return; // the pool is gone: close
        };
        pool.outstanding.fetch_sub(1, Relaxed);
        match sys::unread_bytes(pipe.reader.as_fd()) {
            Ok(0) => {}
            _ => {
                pool.discarded.fetch_add(1, Relaxed);
                return; // dirty or uncheckable: closed by dropping `pipe`
            }
        }
        let full = match &pool.idle {
            Some(q) => q.push(pipe).is_err(),
            None => true,
        };
        if full {
            pool.overflowed.fetch_add(1, Relaxed);
        }
    }
}
