//! `recv`: one receive into the caller's buffer (its length is the most read).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use super::{ConnOp, Direction, Ready};
#[cfg(ferry_uring)]
use super::{Cqe, Flow, RingShared};
use crate::events::{Event, OpId};
use crate::sys;
use crate::transfer::SharedFd;

pub(crate) struct Recv {
    fd: SharedFd,
    buf: Vec<u8>,
}

impl Recv {
    pub(crate) fn new(fd: SharedFd, buf: Vec<u8>) -> Box<Recv> {
        Box::new(Recv { fd, buf })
    }

    fn received(&mut self, op: OpId, result: io::Result<usize>) -> Event {
        let buf = std::mem::take(&mut self.buf);
        Event::Received { op, buf, result }
    }
}

impl ConnOp for Recv {
    fn ended(&mut self, op: OpId, e: io::Error) -> Event {
        self.received(op, Err(e))
    }

    fn waits_on(&self) -> Option<(RawFd, Direction)> {
        Some((self.fd.as_fd().as_raw_fd(), Direction::Readable))
    }

    #[cfg(ferry_uring)]
    fn sqe(&mut self, ring: &mut RingShared) -> io_uring::squeue::Entry {
        let fd = io_uring::types::Fd(self.fd.as_fd().as_raw_fd());
        let len = self.buf.len().min(u32::MAX as usize) as u32;
        io_uring::opcode::Recv::new(fd, self.buf.as_mut_ptr(), len)
            .ioprio(ring.recv_ioprio())
            .build()
    }

    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, _ring: &mut RingShared, out: &mut Vec<Event>) -> Flow {
        let result = match c.res {
            0.. => Ok(c.res as usize),
            _ => Err(c.error("recv cancelled")),
        };
        out.push(self.received(c.op, result));
        Flow::Done
    }

    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready {
        match sys::recv(self.fd.as_fd(), &mut self.buf) {
            Err(libc::EAGAIN) => Ready::Wait,
            r => {
                out.push(self.received(op, r.map_err(io::Error::from_raw_os_error)));
                Ready::Done
            }
        }
    }
}
