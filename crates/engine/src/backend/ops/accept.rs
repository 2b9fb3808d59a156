//! `accept`: connections on a listener until cancelled — one multishot `ACCEPT` SQE on
//! io_uring, `accept4` on readiness on the fallback. Every error ends the op (the
//! owner decides when to accept again: re-arming at an fd limit would spin).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use super::{ConnOp, Direction, Ready};
#[cfg(ferry_uring)]
use super::{Cqe, Flow, RingShared};
use crate::events::{Event, OpId};
use crate::modes::NonBlocking;
use crate::sys;
use crate::transfer::SharedFd;

pub(crate) struct Accept {
    listener: SharedFd,
    /// The readiness loop's listener is non-blocking while accepted on.
    _mode: Option<NonBlocking>,
}

impl Accept {
    pub(crate) fn new(listener: SharedFd) -> Box<Accept> {
        Box::new(Accept {
            listener,
            _mode: None,
        })
    }
}

#[cfg(ferry_uring)]
fn cancelled() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "accept cancelled")
}

impl ConnOp for Accept {
    fn ended(&mut self, op: OpId, e: io::Error) -> Event {
        Event::Accepted { op, conn: Err(e) }
    }

    fn waits_on(&self) -> Option<(RawFd, Direction)> {
        Some((self.listener.as_fd().as_raw_fd(), Direction::Readable))
    }

    #[cfg(ferry_uring)]
    fn sqe(&mut self, _ring: &mut RingShared) -> io_uring::squeue::Entry {
        let fd = io_uring::types::Fd(self.listener.as_fd().as_raw_fd());
        io_uring::opcode::AcceptMulti::new(fd)
            .flags(libc::SOCK_CLOEXEC)
            .build()
    }

    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, _ring: &mut RingShared, out: &mut Vec<Event>) -> Flow {
        let op = c.op;
        if c.res < 0 {
            // The kernel ends a multishot accept on any error. EMFILE, ENFILE, ENOBUFS,
            // ENOMEM leave the connection in the listen queue.
            out.push(Event::Accepted {
                op,
                conn: Err(c.error("accept cancelled")),
            });
            return Flow::Done;
        }
        out.push(Event::Accepted {
            op,
            conn: Ok(sys::owned_fd(c.res)),
        });
        if c.more() {
            Flow::More
        } else if c.cancelled {
            out.push(self.ended(op, cancelled()));
            Flow::Done
        } else {
            // Ended without an error (a full completion queue): not the owner's
            // business, so go on.
            Flow::Again
        }
    }

    fn prepare_readiness(&mut self) {
        self._mode = NonBlocking::acquire(&self.listener);
    }

    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready {
        loop {
            match sys::accept(self.listener.as_fd()) {
                Ok(fd) => out.push(Event::Accepted { op, conn: Ok(fd) }),
                Err(libc::EAGAIN) => return Ready::Wait,
                Err(libc::ECONNABORTED) => continue,
                Err(e) => {
                    let conn = Err(io::Error::from_raw_os_error(e));
                    out.push(Event::Accepted { op, conn });
                    return Ready::Done;
                }
            }
        }
    }
}
