//! Idle timeouts: a clock that every transfer sharing it pushes forward whenever it
//! moves bytes (a proxy's two directions share one), and that fails them with
//! `TimedOut` once nothing moved for the timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When bytes last moved, for one or more transfers.
#[derive(Debug)]
pub(crate) struct IdleClock {
    timeout: Duration,
    base: Instant,
    /// Nanoseconds from `base` to the last activity.
    last: AtomicU64,
}

impl IdleClock {
    pub(crate) fn new(timeout: Duration) -> IdleClock {
        IdleClock {
            timeout,
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Bytes moved now.
    pub(crate) fn touch(&self) {
        let ns = self.base.elapsed().as_nanos() as u64;
        self.last.fetch_max(ns, Ordering::Relaxed);
    }

    /// When the timeout expires if nothing moves before.
    pub(crate) fn expires(&self) -> Instant {
        self.base + Duration::from_nanos(self.last.load(Ordering::Relaxed)) + self.timeout
    }

    /// Whether nothing has moved for the timeout.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        now >= self.expires()
    }
}
