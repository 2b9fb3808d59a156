//! `close`: an fd closed on the ring (or by `close` on the fallback), one event.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use super::{ConnOp, Direction, Ready};
#[cfg(ferry_uring)]
use super::{Cqe, Flow, RingShared};
use crate::events::{Event, OpId};
use crate::sys;

pub(crate) struct Close {
    /// Ours until the SQE is built; then the kernel's close owns the number.
    fd: Option<OwnedFd>,
}

impl Close {
    pub(crate) fn new(fd: OwnedFd) -> Box<Close> {
        Box::new(Close { fd: Some(fd) })
    }
}

impl ConnOp for Close {
    fn ended(&mut self, op: OpId, e: io::Error) -> Event {
        Event::Closed { op, result: Err(e) }
    }

    fn waits_on(&self) -> Option<(RawFd, Direction)> {
        None
    }

    #[cfg(ferry_uring)]
    fn sqe(&mut self, _ring: &mut RingShared) -> io_uring::squeue::Entry {
        // Built once (a close is never issued again): from here the number is the
        // kernel's to close.
        let fd = self
            .fd
            .take()
            .map_or(-1, std::os::fd::IntoRawFd::into_raw_fd);
        io_uring::opcode::Close::new(io_uring::types::Fd(fd)).build()
    }

    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, _ring: &mut RingShared, out: &mut Vec<Event>) -> Flow {
        let result = match c.res {
            0.. => Ok(()),
            _ => Err(io::Error::from_raw_os_error(-c.res)),
        };
        out.push(Event::Closed { op: c.op, result });
        Flow::Done
    }

    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready {
        let result = match self.fd.take() {
            Some(fd) => sys::close(fd),
            None => Err(io::Error::from_raw_os_error(libc::EBADF)),
        };
        out.push(Event::Closed { op, result });
        Ready::Done
    }
}
