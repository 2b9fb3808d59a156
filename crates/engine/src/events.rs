//! What a [`LocalEngine`](crate::LocalEngine) reports from its ring: one [`Event`] per
//! finished operation, named by the [`OpId`] its call returned.

use std::io;
use std::os::fd::OwnedFd;

/// Names one operation of a `LocalEngine`: a transfer or a connection op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub(crate) u64);

/// A finished operation of a `LocalEngine`, from [`LocalEngine::events`](crate::LocalEngine::events).
/// Non-exhaustive: new kinds of ops bring new events.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A connection accepted by `accept`. The op goes on (multishot) until it is
    /// cancelled or an accept fails: an `Err` is always its last event, and the engine
    /// never starts it again by itself. `Interrupted` means cancelled; `EMFILE`,
    /// `ENFILE`, `ENOBUFS` or `ENOMEM` (`raw_os_error`) mean the process or the system
    /// is out of fds or memory — the connections wait in the listen queue until the
    /// owner calls `accept` again, best after a back-off or once a connection closed
    /// (docs/local.md, "Running out of fds").
    Accepted {
        /// The `accept` op.
        op: OpId,
        /// The new connection (close-on-exec), or why accepting failed.
        conn: io::Result<OwnedFd>,
    },
    /// `recv` finished: `n` bytes at the start of `buf` (`Ok(0)`: the peer closed).
    /// For `recv_pooled`: `buf` holds exactly the bytes (empty at end of stream or on
    /// an error). For `recv_multi`: one event per arrival (`buf` holds exactly the bytes), the
    /// op's last one `Ok(0)` at end of stream or an error (`Interrupted` if cancelled).
    Received {
        /// The `recv` op.
        op: OpId,
        /// The buffer given to `recv`, back.
        buf: Vec<u8>,
        /// Bytes received, or the kernel's error.
        result: io::Result<usize>,
    },
    /// `send` finished: all of `buf` went out (`Ok(buf.len())`) or the error.
    Sent {
        /// The `send` op.
        op: OpId,
        /// The buffer given to `send`, back.
        buf: Vec<u8>,
        /// Bytes sent (all of them on success), or the kernel's error.
        result: io::Result<usize>,
    },
    /// `connect` finished: the socket is connected (`Ok`), or why not (`ECONNREFUSED`,
    /// `ETIMEDOUT`, `Interrupted` when cancelled …).
    Connected {
        /// The `connect` op.
        op: OpId,
        /// The kernel's answer.
        result: io::Result<()>,
    },
    /// A `timeout` expired (`Ok`), or was cancelled (`Err(Interrupted)`).
    Timer {
        /// The `timeout` op.
        op: OpId,
        /// `Ok` when it expired.
        result: io::Result<()>,
    },
    /// `close` finished.
    Closed {
        /// The `close` op.
        op: OpId,
        /// The kernel's answer.
        result: io::Result<()>,
    },
    /// A transfer finished: its handle is ready (`LocalEngine::wait` or `.await` it).
    TransferDone {
        /// The transfer's id (`LocalHandle::id`).
        op: OpId,
    },
}
