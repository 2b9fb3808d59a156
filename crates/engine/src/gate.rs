//! Backpressure: at most `max_in_flight` transfers at once, waited for by blocking
//! threads (`submit`) or by tasks (`submit_async`), and closed by `Engine::shutdown`.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Count {
    in_flight: usize,
    /// Threads blocked in `acquire`.
    threads: usize,
    /// Tasks waiting in `poll_acquire`, woken one per freed slot.
    tasks: VecDeque<Waker>,
    closed: bool,
}

/// Counts transfers in flight; `acquire` waits (or refuses) at the bound.
pub(crate) struct Gate {
    count: Mutex<Count>,
    cv: Condvar,
    max: usize,
}

/// Why a slot was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Full,
    Closed,
}

impl Gate {
    pub(crate) fn new(max: usize) -> Self {
        Gate {
            count: Mutex::new(Count::default()),
            cv: Condvar::new(),
            max,
        }
    }

    /// Takes a slot; with `wait` blocks the thread until one frees.
    pub(crate) fn acquire(&self, wait: bool) -> Result<(), Refused> {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if n.closed {
                return Err(Refused::Closed);
            }
            if n.in_flight < self.max {
                n.in_flight += 1;
                return Ok(());
            }
            if !wait {
                return Err(Refused::Full);
            }
            n.threads += 1;
            n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner());
            n.threads -= 1;
        }
    }

    /// Takes a slot, or registers the task to be woken when one frees.
    pub(crate) fn poll_acquire(&self, cx: &mut Context<'_>) -> Poll<Result<(), Refused>> {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        if n.closed {
            return Poll::Ready(Err(Refused::Closed));
        }
        if n.in_flight < self.max {
            n.in_flight += 1;
            return Poll::Ready(Ok(()));
        }
        if !n.tasks.iter().any(|w| w.will_wake(cx.waker())) {
            n.tasks.push_back(cx.waker().clone());
        }
        Poll::Pending
    }

    /// A task that was woken (or registered) gives up: pass the wake-up on, so a freed
    /// slot is never left unclaimed while others wait.
    pub(crate) fn pass_on(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let next = (n.in_flight < self.max)
            .then(|| n.tasks.pop_front())
            .flatten();
        drop(n);
        if let Some(w) = next {
            w.wake();
        }
    }

    /// Frees a slot, waking one waiting thread or task (a futex call only if one waits).
    pub(crate) fn release(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        n.in_flight -= 1;
        let task = n.tasks.pop_front();
        let threads = n.threads;
        drop(n);
        if let Some(w) = task {
            w.wake();
        } else if threads > 0 {
            self.cv.notify_one();
        }
    }

    /// Refuses every later acquire and wakes everyone waiting (they get `Closed`).
    pub(crate) fn close(&self) {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        n.closed = true;
        let tasks = std::mem::take(&mut n.tasks);
        drop(n);
        self.cv.notify_all();
        tasks.into_iter().for_each(Waker::wake);
    }
}
