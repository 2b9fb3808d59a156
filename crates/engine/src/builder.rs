//! `EngineBuilder`: the settings, and the choice of executor.

use std::io;

use crate::backend::blocking::Blocking;
use crate::backend::{Config, Ctx, Executor};
use crate::backend_kind::Backend;
use crate::engine::Engine;

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
        EngineBuilder {
            backend: Backend::Auto,
            config: Config::default(),
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
        let ctx = Ctx::new(self.config.clone(), self.pipe_size, self.pipe_pool_capacity)?;
        let threads = ctx.config.threads.max(1) * 4;
        let (exec, fallback_reason) = crate::backend::choose(
            self.backend,
            || start_uring(ctx.clone()),
            || -> io::Result<Box<dyn Executor>> {
                Ok(Box::new(Blocking::start(
                    ctx.clone(),
                    threads,
                    "ferry-blk",
                )?))
            },
            "the blocking backend",
        )?;
        Ok(Engine::from_parts(exec, ctx, fallback_reason))
    }
}

#[cfg(ferry_uring)]
fn start_uring(ctx: Ctx) -> io::Result<Box<dyn Executor>> {
    Ok(Box::new(crate::backend::uring::Uring::start(ctx)?))
}

#[cfg(not(ferry_uring))]
fn start_uring(_ctx: Ctx) -> io::Result<Box<dyn Executor>> {
    Err(crate::backend::uring_not_compiled())
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
}
