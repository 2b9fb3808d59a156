//! The load generator's clock and alarm: nanoseconds of `CLOCK_MONOTONIC`, and a
//! `timerfd` set to an absolute time on that clock, so the event loop wakes at a
//! request's planned time to the microsecond (`epoll_wait`'s own timeout counts in
//! milliseconds, far too coarse for requests planned 20 µs apart).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use rustix::time::{
    clock_gettime, timerfd_create, timerfd_settime, ClockId, Itimerspec, TimerfdClockId,
    TimerfdFlags, TimerfdTimerFlags, Timespec,
};

/// Now, in nanoseconds of the monotonic clock (the one `Instant` and the timer use).
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A one-shot alarm at an absolute monotonic time; readable (for epoll) once it rang.
#[derive(Debug)]
pub struct Alarm {
    fd: OwnedFd,
}

impl Alarm {
    pub fn new() -> io::Result<Alarm> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        Ok(Alarm { fd })
    }

    /// Rings at `at_ns` (at once if that has passed); replaces any earlier setting.
    pub fn set(&self, at_ns: u64) -> io::Result<()> {
        let at = Timespec {
            tv_sec: (at_ns / 1_000_000_000) as _,
            // Zero would disarm the timer: a time in the past rings at once anyway.
            tv_nsec: ((at_ns % 1_000_000_000).max(1)) as _,
        };
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: at,
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &spec)?;
        Ok(())
    }

    /// Takes the ring off (a readable timer stays readable until read).
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut buf);
    }
}

impl AsRawFd for Alarm {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_rings_at_its_time_and_not_before() {
        let alarm = Alarm::new().unwrap();
        let at = now_ns() + 5_000_000;
        alarm.set(at).unwrap();
        let mut fds = [rustix::event::PollFd::new(
            &alarm.fd,
            rustix::event::PollFlags::IN,
        )];
        let n = rustix::event::poll(&mut fds, None).unwrap();
        assert_eq!(n, 1);
        assert!(now_ns() >= at, "rang {} ns early", at - now_ns());
        alarm.clear();
        // Cleared and not set again: it does not ring.
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        assert_eq!(rustix::event::poll(&mut fds, Some(&zero)).unwrap(), 0);
    }
}
