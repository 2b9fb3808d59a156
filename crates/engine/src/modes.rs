//! `O_NONBLOCK` while the engine owns a stream, counted per fd.
//!
//! A blocking socket or pipe is switched to non-blocking for as long as any transfer
//! uses it, so that no thread or io-wq worker ever parks in a syscall the engine
//! cannot cancel or time out; it is switched back when the *last* transfer using it
//! ends. Two transfers over one socket pair (a → b and b → a, a proxy) therefore
//! never see the mode flipped under them. Counted per fd number: the guard keeps the
//! fd open, so its number cannot be reused while counted. (A `dup` of the fd is a
//! different number sharing the same open file description: use one fd per socket
//! with the engine.)

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{LazyLock, Mutex};

use crate::sys;
use crate::transfer::SharedFd;

struct Entry {
    users: usize,
    /// The fd was blocking before the first user: switch it back after the last.
    restore: bool,
}

static MODES: LazyLock<Mutex<HashMap<RawFd, Entry>>> = LazyLock::new(Default::default);

/// One transfer's claim that `fd` stays non-blocking.
pub(crate) struct NonBlocking {
    fd: SharedFd,
}

impl NonBlocking {
    /// Makes `fd` non-blocking (if it is not already) for the guard's lifetime;
    /// `None` when its flags cannot be changed (the transfer then polls first).
    pub(crate) fn acquire(fd: &SharedFd) -> Option<NonBlocking> {
        let raw = fd.as_fd().as_raw_fd();
        let mut modes = MODES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = modes.get_mut(&raw) {
            e.users += 1;
        } else {
            let blocking = sys::get_blocking(fd.as_fd()).ok()?;
            if blocking {
                sys::set_blocking(fd.as_fd(), false).ok()?;
            }
            modes.insert(
                raw,
                Entry {
                    users: 1,
                    restore: blocking,
                },
            );
        }
        Some(NonBlocking { fd: fd.clone() })
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        let raw = self.fd.as_fd().as_raw_fd();
        let mut modes = MODES.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = modes.get_mut(&raw) else {
            return;
        };
        e.users -= 1;
        if e.users == 0 {
            let restore = e.restore;
            modes.remove(&raw);
            if restore {
                // Best effort: the fd is open (we hold it); a failure leaves it
                // non-blocking, which the caller's next blocking call would show.
                let _ = sys::set_blocking(self.fd.as_fd(), true);
            }
        }
    }
}
