//! Backpressure: at most `max_in_flight` transfers at once.

use std::sync::{Condvar, Mutex};

/// Counts transfers in flight; `acquire` waits (or refuses) at the bound.
pub(crate) struct Gate {
    /// (in flight, submitters waiting)
    count: Mutex<(usize, usize)>,
    cv: Condvar,
    max: usize,
}

impl Gate {
    pub(crate) fn new(max: usize) -> Self {
        Gate {
            count: Mutex::new((0, 0)),
            cv: Condvar::new(),
            max,
        }
    }

    /// Takes a slot; with `wait` blocks the thread until one frees, else `false`.
    pub(crate) fn acquire(&self, wait: bool) -> bool {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while n.0 >= self.max {
            if !wait {
                return false;
            }
            n.1 += 1;
            n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner());
            n.1 -= 1;
        }
        n.0 += 1;
        true
    }

    /// Frees a slot, waking one waiting submitter (a futex call only if one waits).
    pub(crate) fn release(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        n.0 -= 1;
        let waiters = n.1;
        drop(n);
        if waiters > 0 {
            self.cv.notify_one();
        }
    }
}
