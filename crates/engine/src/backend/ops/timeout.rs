//! `timeout`: one event after a duration (`Ok`), or `Interrupted` when cancelled.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::{ConnOp, Direction, Ready};
#[cfg(ferry_uring)]
use super::{Cqe, Flow, RingShared};
use crate::events::{Event, OpId};

pub(crate) struct Timeout {
    after: Duration,
    /// io_uring reads the duration from here (alive until the completion).
    #[cfg(ferry_uring)]
    ts: io_uring::types::Timespec,
    /// The readiness loop's due time, from the first run.
    due: Option<Instant>,
}

impl Timeout {
    pub(crate) fn new(after: Duration) -> Box<Timeout> {
        Box::new(Timeout {
            after,
            #[cfg(ferry_uring)]
            ts: io_uring::types::Timespec::from(after),
            due: None,
        })
    }
}

impl ConnOp for Timeout {
    fn ended(&mut self, op: OpId, e: io::Error) -> Event {
        Event::Timer { op, result: Err(e) }
    }

    fn waits_on(&self) -> Option<(RawFd, Direction)> {
        None
    }

    #[cfg(ferry_uring)]
    fn sqe(&mut self, _ring: &mut RingShared) -> io_uring::squeue::Entry {
        io_uring::opcode::Timeout::new(&self.ts).build()
    }

    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, _ring: &mut RingShared, out: &mut Vec<Event>) -> Flow {
        let result = match c.res {
            0.. => Ok(()),
            _ if c.res == -libc::ETIME => Ok(()),
            _ => Err(c.error("timeout cancelled")),
        };
        out.push(Event::Timer { op: c.op, result });
        Flow::Done
    }

    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready {
        let now = Instant::now();
        let due = *self.due.get_or_insert(now + self.after);
        if now < due {
            return Ready::Sleep(due);
        }
        out.push(Event::Timer { op, result: Ok(()) });
        Ready::Done
    }
}
