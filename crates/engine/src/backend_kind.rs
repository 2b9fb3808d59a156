//! `Backend`: which machinery runs the transfers, and the `FERRY_BACKEND` override.

use std::io;

/// Which machinery runs the transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring where it works, else blocking. `FERRY_BACKEND=io_uring|blocking`
    /// overrides this choice.
    Auto,
    /// io_uring rings; building fails where io_uring is unavailable.
    IoUring,
    /// Threads (or, for `LocalEngine`, a readiness loop) making plain syscalls.
    Blocking,
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
