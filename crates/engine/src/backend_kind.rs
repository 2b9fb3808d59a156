//! `Backend`: whether io_uring runs the transfers (the choice, with the `FERRY_BACKEND`
//! override), and `RunsOn`: the executor that really runs them, which differs between
//! `Engine` and `LocalEngine` for the same backend.

use std::fmt;
use std::io;

/// Which machinery runs the transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring where it works, else blocking. `FERRY_BACKEND=io_uring|blocking`
    /// overrides this choice.
    Auto,
    /// io_uring rings; building fails where io_uring is unavailable.
    IoUring,
    /// No io_uring: plain syscalls. For `Engine` a pool of threads making blocking
    /// calls ([`RunsOn::ThreadPool`]); for `LocalEngine` an epoll readiness loop on the
    /// owner's thread making non-blocking ones ([`RunsOn::ReadinessLoop`]).
    Blocking,
}

/// The executor that really runs an engine's transfers: `Engine::runs_on`,
/// `LocalEngine::runs_on`. [`Backend`] says whether io_uring is used; this says how.
/// `Display` gives a phrase for logs ("an epoll readiness loop on the owner's thread").
///
/// ```
/// use ferry_engine::{Backend, Engine, RunsOn};
/// let engine = Engine::builder().backend(Backend::Blocking).build()?;
/// assert_eq!(engine.runs_on(), RunsOn::ThreadPool);
/// assert_eq!(engine.runs_on().backend(), Backend::Blocking);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunsOn {
    /// `Engine` with io_uring: rings, each driven by a thread of its own.
    RingThreads,
    /// `Engine` without io_uring: threads making blocking syscalls.
    ThreadPool,
    /// `LocalEngine` with io_uring: one ring driven by its owner's thread.
    OwnerRing,
    /// `LocalEngine` without io_uring: an epoll loop on its owner's thread making
    /// non-blocking syscalls.
    ReadinessLoop,
}

impl RunsOn {
    /// The backend this executor belongs to: `IoUring` or `Blocking`.
    pub fn backend(self) -> Backend {
        match self {
            RunsOn::RingThreads | RunsOn::OwnerRing => Backend::IoUring,
            RunsOn::ThreadPool | RunsOn::ReadinessLoop => Backend::Blocking,
        }
    }
}

impl fmt::Display for RunsOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunsOn::RingThreads => "io_uring rings on threads of their own",
            RunsOn::ThreadPool => "a pool of threads making blocking syscalls",
            RunsOn::OwnerRing => "an io_uring ring driven by its owner's thread",
            RunsOn::ReadinessLoop => "an epoll readiness loop on its owner's thread",
        })
    }
}

impl Backend {
    /// `Auto` with the `FERRY_BACKEND` override applied; explicit choices unchanged.
    pub(crate) fn with_env_override(self) -> io::Result<Backend> {
        if self != Backend::Auto {
            return Ok(self);
        }
        match std::env::var("FERRY_BACKEND").as_deref() {
            Ok("io_uring" | "uring" | "iouring") => Ok(Backend::IoUring),
            Ok("blocking") => Ok(Backend::Blocking),
            Ok("" | "auto") | Err(_) => Ok(Backend::Auto),
            Ok(other) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("FERRY_BACKEND={other}: expected io_uring, blocking or auto"),
            )),
        }
    }
}
