//! Waking a driver that sleeps in `io_uring_enter`: an eventfd the driver reads
//! through its ring, written only when the driver said it is about to sleep.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

pub(crate) struct Wake {
    pub fd: OwnedFd,
    sleeping: AtomicBool,
}

impl Wake {
    pub(crate) fn new() -> io::Result<Wake> {
        Ok(Wake {
            fd: sys::eventfd()?,
            sleeping: AtomicBool::new(false),
        })
    }

    /// Called after queueing a message: wakes the driver if it is (about to be) asleep.
    pub(crate) fn wake(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            sys::eventfd_signal(self.fd.as_fd());
        }
    }

    /// Wakes the driver's eventfd read even if it is not asleep in the ring (a
    /// `LocalEngine`'s owner may sleep elsewhere; the read's CQE then shows up).
    pub(crate) fn signal_anyway(&self) {
        sys::eventfd_signal(self.fd.as_fd());
    }

    /// The driver announces sleep (then re-checks its channel before entering).
    pub(crate) fn set_sleeping(&self, on: bool) {
        self.sleeping.store(on, Ordering::SeqCst);
    }
}
