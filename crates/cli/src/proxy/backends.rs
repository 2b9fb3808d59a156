//! The backends of one proxy thread: round robin, skipping a backend that refused or
//! timed out within the last [`DOWN_FOR`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a backend that failed a connect is skipped.
pub const DOWN_FOR: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Backends {
    addrs: Vec<SocketAddr>,
    down_until: Vec<Option<Instant>>,
    next: usize,
}

impl Backends {
    /// `start` spreads the threads' first picks over the list.
    pub fn new(addrs: Vec<SocketAddr>, start: usize) -> Backends {
        let n = addrs.len();
        Backends {
            addrs,
            down_until: vec![None; n],
            next: start % n.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// The next backend in turn that is up; when all are down, the next in turn anyway
    /// (a backend that came back is found without waiting out its mark).
    pub fn pick(&mut self, now: Instant) -> (usize, SocketAddr) {
        let n = self.addrs.len();
        let up = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| self.down_until[i].is_none_or(|t| t <= now));
        let i = up.unwrap_or(self.next % n);
        self.next = (i + 1) % n;
        (i, self.addrs[i])
    }

    /// The backend after `i` (the next try for a client whose connect to `i` failed).
    pub fn after(&self, i: usize) -> (usize, SocketAddr) {
        let j = (i + 1) % self.addrs.len();
        (j, self.addrs[j])
    }

    pub fn mark_down(&mut self, i: usize, now: Instant) {
        self.down_until[i] = Some(now + DOWN_FOR);
    }

    pub fn mark_up(&mut self, i: usize) {
        self.down_until[i] = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_backends_marked_down_until_their_mark_passes() {
        let addrs: Vec<SocketAddr> = (1..=3).map(|p| ([127, 0, 0, 1], p).into()).collect();
        let mut b = Backends::new(addrs, 0);
        let t = Instant::now();
        assert_eq!(b.pick(t).0, 0);
        assert_eq!(b.pick(t).0, 1);
        b.mark_down(2, t);
        assert_eq!(b.pick(t).0, 0, "2 is skipped");
        assert_eq!(b.pick(t).0, 1);
        assert_eq!(b.pick(t + DOWN_FOR).0, 2, "back after its mark");
        for i in 0..3 {
            b.mark_down(i, t);
        }
        let _ = b.pick(t); // all down: still a pick, never a panic
        assert_eq!(b.after(2).0, 0);
    }
}
