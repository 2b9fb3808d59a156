//! The OS layer: creating a pipe pair, sizing it and asking how many bytes it holds.
//!
//! Contract: [`new_pipe`] returns `(reader, writer, capacity)` with `O_CLOEXEC` (and
//! `O_NONBLOCK` when asked) set, where `capacity` is what the pipe really has after
//! trying to grow it to `want` bytes (0 = leave the default). [`unread_bytes`] returns
//! how many bytes are waiting in the pipe.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(not(target_os = "linux"))]
mod unix;
#[cfg(not(target_os = "linux"))]
pub(crate) use unix::*;
