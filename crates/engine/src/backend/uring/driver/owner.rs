//! A ring driven by its owner's thread (`LocalEngine`): no driver thread; the owner
//! submits, turns and shuts down, and connection ops share the ring with transfers.

use std::io;
use std::time::Duration;

use io_uring::opcode;

use super::{ud, Driver, TAG_CANCEL, TAG_CONN, TAG_WAKE};
use crate::backend::ops::ConnOp;
use crate::job::Job;

impl Driver {
    /// Has the kernel signal `fd` (an eventfd) for every CQE.
    pub(crate) fn register_eventfd(&self, fd: i32) -> io::Result<()> {
        self.ring.submitter().register_eventfd(fd)
    }

    /// Local mode (`LocalEngine`): the owner's thread drives the ring.
    pub(crate) fn set_local(&mut self) {
        self.local = true;
        self.arm_wake();
    }

    /// A job from the owner's thread.
    pub(crate) fn submit_job(&mut self, job: Job) {
        self.start(job);
    }

    /// Starts connection op `id`.
    pub(crate) fn start_conn(&mut self, id: u64, op: Box<dyn ConnOp>) {
        let (ring, backlog) = (&self.ring, &mut self.backlog);
        self.conns.start(id, op, ud(TAG_CONN, id), ring, backlog);
    }

    /// Cancels connection op `id`.
    pub(crate) fn cancel_conn(&mut self, id: u64) {
        let (u, c) = (ud(TAG_CONN, id), ud(TAG_CANCEL, id));
        self.conns.cancel(id, u, c, &mut self.backlog);
    }

    /// One turn: take messages (cancels), submit everything queued, wait at most
    /// `timeout` (`None`: until something completes) for a completion, reap all.
    pub(crate) fn turn(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let r = self.turn_inner(timeout);
        if let Err(e) = &r {
            self.fatal(io::Error::new(e.kind(), e.to_string()));
        }
        r
    }

    fn turn_inner(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other("the ring failed earlier"));
        }
        self.drain_messages()?;
        self.check_deadlines();
        self.backlog.flush(&mut self.ring)?;
        self.wait(timeout)?;
        self.reap();
        self.drain_messages()?;
        self.backlog.flush(&mut self.ring)?;
        // Ops the reap queued (a job's next step) reach the kernel before the owner
        // may sleep elsewhere; nothing queued, no enter.
        if !self.ring.submission().is_empty() {
            self.ring.submit()?;
        }
        Ok(())
    }

    /// Local mode's shutdown: stops every job and op, waits for their CQEs and the
    /// eventfd read's, so nothing the kernel uses is freed early.
    pub(crate) fn shutdown_local(&mut self) {
        if self.dead {
            return;
        }
        self.shutting_down = true;
        let keys: Vec<usize> = self.jobs.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.stop(k, io::ErrorKind::Interrupted, "engine shut down");
        }
        let mut rounds = 0u32;
        while !(self.jobs.is_empty() && self.conns.is_empty() && !self.wake_armed) {
            if rounds.is_multiple_of(10) {
                for id in self.conns.ids() {
                    self.cancel_conn(id);
                }
                if self.jobs.is_empty() && self.conns.is_empty() && self.wake_armed {
                    let e = opcode::AsyncCancel::new(ud(TAG_WAKE, 0)).build();
                    self.backlog.push(e.user_data(ud(TAG_CANCEL, 0)));
                }
            }
            rounds += 1;
            let ok = self.backlog.flush(&mut self.ring).is_ok()
                && self.wait(Some(Duration::from_millis(10))).is_ok();
            if !ok {
                return self.fatal(io::Error::other("ring failed during shutdown"));
            }
            self.reap();
            self.events.clear();
        }
    }
}
