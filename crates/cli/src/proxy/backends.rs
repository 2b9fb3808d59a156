//! The backends: round robin per thread, skipping a backend whose connect failed within
//! the last [`DOWN_FOR`]. Whether a backend is up is shared by every thread, so that it
//! goes down and comes back once for the whole process, and each change is said once
//! in the error log (with the error that took it down). A backend marked down is tried
//! again once its mark has passed; the first connect that succeeds brings it up.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error_log::{self, Kind, Level};

/// How long a backend that failed a connect is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(2);

/// What every thread knows of the backends.
#[derive(Debug)]
pub struct Health {
    addrs: Vec<SocketAddr>,
    /// Times are milliseconds since `epoch`.
    epoch: Instant,
    down: Vec<AtomicBool>,
    /// Skipped until then (ms since `epoch`).
    down_until: Vec<AtomicU64>,
    /// When it went down (ms since `epoch`), for the line that says it came back.
    down_since: Vec<AtomicU64>,
}

impl Health {
    pub fn new(addrs: Vec<SocketAddr>) -> Arc<Health> {
        let n = addrs.len();
        let zeros = || (0..n).map(|_| AtomicU64::new(0)).collect();
        Arc::new(Health {
            addrs,
            epoch: Instant::now(),
            down: (0..n).map(|_| AtomicBool::new(false)).collect(),
            down_until: zeros(),
            down_since: zeros(),
        })
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

/// One thread's view: its place in the round robin.
#[derive(Debug)]
pub struct Backends {
    health: Arc<Health>,
    next: usize,
}

impl Backends {
    /// `start` spreads the threads' first picks over the list.
    pub fn new(health: Arc<Health>, start: usize) -> Backends {
        let n = health.addrs.len();
        Backends {
            health,
            next: start % n.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.health.addrs.len()
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.health.addrs[i]
    }

    /// The next backend in turn that is not marked down; when all are, the next in turn
    /// anyway (a backend that came back is found without waiting out its mark).
    pub fn pick(&mut self, now: Instant) -> (usize, SocketAddr) {
        let n = self.len();
        let now = self.health.ms(now);
        let h = &self.health;
        let up = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| h.down_until[i].load(Ordering::Relaxed) <= now);
        let i = up.unwrap_or(self.next % n);
        self.next = (i + 1) % n;
        (i, h.addrs[i])
    }

    /// The backend after `i` (the next try for a client whose connect to `i` failed).
    pub fn after(&self, i: usize) -> (usize, SocketAddr) {
        let j = (i + 1) % self.len();
        (j, self.health.addrs[j])
    }

    /// A connect to `i` failed with `why`: skipped for [`DOWN_FOR`]; said when it was up.
    pub fn mark_down(&self, i: usize, now: Instant, why: &io::Error) {
        let h = &self.health;
        let ms = h.ms(now);
        h.down_until[i].store(ms + DOWN_FOR.as_millis() as u64, Ordering::Relaxed);
        if !h.down[i].swap(true, Ordering::AcqRel) {
            h.down_since[i].store(ms, Ordering::Relaxed);
            error_log::say(
                Level::Warn,
                Kind::Backend(i),
                format_args!(
                    "backend {} down: {why}; skipped for {} s, then tried again",
                    h.addrs[i],
                    DOWN_FOR.as_secs()
                ),
            );
        }
    }

    /// A connect to `i` succeeded: said when it was down.
    pub fn mark_up(&self, i: usize, now: Instant) {
        let h = &self.health;
        if !h.down[i].load(Ordering::Relaxed) {
            return; // the common case: one load
        }
        h.down_until[i].store(0, Ordering::Relaxed);
        if h.down[i].swap(false, Ordering::AcqRel) {
            let since = h.down_since[i].load(Ordering::Relaxed);
            let secs = h.ms(now).saturating_sub(since) as f64 / 1000.0;
            error_log::say(
                Level::Notice,
                Kind::Backend(i),
                format_args!("backend {} up (was down {secs:.1} s)", h.addrs[i]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_backends_marked_down_until_their_mark_passes() {
        let addrs: Vec<SocketAddr> = (1..=3).map(|p| ([127, 0, 0, 1], p).into()).collect();
        let health = Health::new(addrs);
        let mut b = Backends::new(health.clone(), 0);
        let mut other = Backends::new(health, 1);
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let t = Instant::now();
        assert_eq!(b.pick(t).0, 0);
        assert_eq!(b.pick(t).0, 1);
        b.mark_down(2, t, &refused);
        assert_eq!(b.pick(t).0, 0, "2 is skipped");
        assert_eq!(b.pick(t).0, 1);
        assert_eq!(other.pick(t).0, 1, "another thread skips it too");
        assert_eq!(other.pick(t).0, 0);
        assert_eq!(b.pick(t + DOWN_FOR).0, 2, "back after its mark");
        b.mark_down(2, t, &refused);
        other.mark_up(2, t);
        assert_eq!(b.pick(t).0, 0);
        assert_eq!(b.pick(t).0, 1);
        assert_eq!(b.pick(t).0, 2, "up again for every thread");
        for i in 0..3 {
            b.mark_down(i, t, &refused);
        }
        let _ = b.pick(t); // all down: still a pick, never a panic
        assert_eq!(b.after(2).0, 0);
    }
}
