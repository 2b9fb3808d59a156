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
    /// Tasks waiting in `poll_acquire` (by waiter id), woken one per freed slot.
    tasks: VecDeque<(u64, Waker)>,
    /// The id the next waiting task gets.
    next_id: u64,
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

    /// Takes a slot, or registers the task to be woken when one frees. `waiter` is the
    /// caller's place in the queue (`None` at first); give it to `forget` if the caller
    /// stops waiting.
    pub(crate) fn poll_acquire(
        &self,
        cx: &mut Context<'_>,
        waiter: &mut Option<u64>,
    ) -> Poll<Result<(), Refused>> {
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let queued = waiter.and_then(|id| n.tasks.iter().position(|(i, _)| *i == id));
        if n.closed || n.in_flight < self.max {
            if let Some(at) = queued {
                n.tasks.remove(at);
            }
            *waiter = None;
            if n.closed {
                return Poll::Ready(Err(Refused::Closed));
            }
            n.in_flight += 1;
            return Poll::Ready(Ok(()));
        }
        match queued {
            // Still queued: the task may have moved to another waker.
            Some(at) => n.tasks[at].1.clone_from(cx.waker()),
            None => {
                let id = n.next_id;
                n.next_id += 1;
                n.tasks.push_back((id, cx.waker().clone()));
                *waiter = Some(id);
            }
        }
        Poll::Pending
    }

    /// A waiting task gives up (its future is dropped). Still queued: it leaves the
    /// queue, so no freed slot wakes it instead of a live waiter. Already woken (taken
    /// off the queue by `release`) without taking its slot: the wake-up goes on to the
    /// next waiter.
    pub(crate) fn forget(&self, waiter: Option<u64>) {
        let Some(id) = waiter else {
            return;
        };
        let mut n = self.count.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = n.tasks.iter().position(|(i, _)| *i == id) {
            n.tasks.remove(at);
            return;
        }
        let next = (n.in_flight < self.max)
            .then(|| n.tasks.pop_front())
            .flatten();
        drop(n);
        if let Some((_, w)) = next {
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
        if let Some((_, w)) = task {
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
        tasks.into_iter().for_each(|(_, w)| w.wake());
    }
}
