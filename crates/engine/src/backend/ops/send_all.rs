//! `send`: all of the caller's bytes (`MSG_NOSIGNAL`), re-issued after a short send;
//! one event when they are out or the socket failed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use super::{ConnOp, Direction, Ready};
#[cfg(ferry_uring)]
use super::{Cqe, Flow, RingShared};
use crate::events::{Event, OpId};
use crate::sys;
use crate::transfer::SharedFd;

pub(crate) struct SendAll {
    fd: SharedFd,
    buf: Vec<u8>,
    /// Bytes already out.
    sent: usize,
}

impl SendAll {
    pub(crate) fn new(fd: SharedFd, buf: Vec<u8>) -> Box<SendAll> {
        Box::new(SendAll { fd, buf, sent: 0 })
    }

    fn event(&mut self, op: OpId, result: io::Result<usize>) -> Event {
        let buf = std::mem::take(&mut self.buf);
        Event::Sent { op, buf, result }
    }
}

impl ConnOp for SendAll {
    fn ended(&mut self, op: OpId, e: io::Error) -> Event {
        self.event(op, Err(e))
    }

    fn waits_on(&self) -> Option<(RawFd, Direction)> {
        Some((self.fd.as_fd().as_raw_fd(), Direction::Writable))
    }

    #[cfg(ferry_uring)]
    fn sqe(&mut self, _ring: &mut RingShared) -> io_uring::squeue::Entry {
        let rest = &self.buf[self.sent..];
        let fd = io_uring::types::Fd(self.fd.as_fd().as_raw_fd());
        io_uring::opcode::Send::new(fd, rest.as_ptr(), rest.len().min(u32::MAX as usize) as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, _ring: &mut RingShared, out: &mut Vec<Event>) -> Flow {
        if c.res > 0 && self.sent + (c.res as usize) < self.buf.len() && !c.cancelled {
            self.sent += c.res as usize;
            return Flow::Again;
        }
        let result = match c.res {
            0.. => Ok(self.sent + c.res as usize),
            _ => Err(c.error("send cancelled")),
        };
        out.push(self.event(c.op, result));
        Flow::Done
    }

    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready {
        while self.sent < self.buf.len() {
            match sys::send(self.fd.as_fd(), &self.buf[self.sent..], false, true) {
                Ok(n) => self.sent += n,
                Err(libc::EAGAIN) => return Ready::Wait,
                Err(e) => {
                    out.push(self.event(op, Err(io::Error::from_raw_os_error(e))));
                    return Ready::Done;
                }
            }
        }
        let n = self.buf.len();
        out.push(self.event(op, Ok(n)));
        Ready::Done
    }
}
