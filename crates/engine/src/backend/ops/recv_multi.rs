//! `recv_multi`: receives until the end of the stream, one event per arrival with
//! exactly its bytes, the last one `Ok(0)` or an error. On io_uring one multishot
//! recv into the ring's provided buffers for the connection's life, single recvs into
//! an own buffer where the kernel has none; on the fallback, reads on readiness.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use super::{ConnOp, Direction, Ready};
#[cfg(ferry_uring)]
use super::{Cqe, Flow, RingShared, OWN_BUF};
use crate::events::{Event, OpId};
use crate::sys;
use crate::transfer::SharedFd;

/// Reads per readiness run: then other ops get their turn.
const READS_PER_RUN: usize = 16;

pub(crate) struct RecvMulti {
    fd: SharedFd,
    /// io_uring without provided buffers: the op's own buffer for its single recvs.
    #[cfg(ferry_uring)]
    own: Option<Vec<u8>>,
}

impl RecvMulti {
    pub(crate) fn new(fd: SharedFd) -> Box<RecvMulti> {
        Box::new(RecvMulti {
            fd,
            #[cfg(ferry_uring)]
            own: None,
        })
    }
}

fn received(op: OpId, buf: Vec<u8>, result: io::Result<usize>) -> Event {
    Event::Received { op, buf, result }
}

impl ConnOp for RecvMulti {
    fn ended(&mut self, op: OpId, e: io::Error) -> Event {
        received(op, Vec::new(), Err(e))
    }

    fn waits_on(&self) -> Option<(RawFd, Direction)> {
        Some((self.fd.as_fd().as_raw_fd(), Direction::Readable))
    }

    #[cfg(ferry_uring)]
    fn uses_provided_buffers(&self) -> bool {
        true
    }

    #[cfg(ferry_uring)]
    fn sqe(&mut self, ring: &mut RingShared) -> io_uring::squeue::Entry {
        let fd = io_uring::types::Fd(self.fd.as_fd().as_raw_fd());
        if self.own.is_none() && ring.provided().is_none() {
            self.own = Some(vec![0; OWN_BUF]);
        }
        match &mut self.own {
            Some(buf) => {
                io_uring::opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32).build()
            }
            None => {
                io_uring::opcode::RecvMulti::new(fd, crate::backend::uring::buf_ring::GROUP).build()
            }
        }
    }

    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, ring: &mut RingShared, out: &mut Vec<Event>) -> Flow {
        let op = c.op;
        match c.res {
            1.. => {
                let n = c.res as usize;
                let data = match &self.own {
                    Some(buf) => buf[..n].to_vec(),
                    None => ring.take_bytes(c.flags, n),
                };
                out.push(received(op, data, Ok(n)));
            }
            0 => {
                out.push(received(op, Vec::new(), Ok(0)));
                return Flow::Done; // end of stream
            }
            // No free provided buffer: ask again (they come back as the batch is reaped).
            _ if c.res == -libc::ENOBUFS && !c.cancelled => return Flow::Again,
            _ => {
                out.push(received(op, Vec::new(), Err(c.error("recv cancelled"))));
                return Flow::Done;
            }
        }
        if c.more() {
            Flow::More
        } else if c.cancelled {
            out.push(self.ended(
                op,
                io::Error::new(io::ErrorKind::Interrupted, "recv cancelled"),
            ));
            Flow::Done
        } else {
            Flow::Again
        }
    }

    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready {
        let mut buf = vec![0u8; 16 * 1024];
        for _ in 0..READS_PER_RUN {
            match sys::recv(self.fd.as_fd(), &mut buf) {
                Ok(0) => {
                    out.push(received(op, Vec::new(), Ok(0)));
                    return Ready::Done;
                }
                Ok(n) => out.push(received(op, buf[..n].to_vec(), Ok(n))),
                Err(libc::EAGAIN) => return Ready::Wait,
                Err(e) => {
                    out.push(received(
                        op,
                        Vec::new(),
                        Err(io::Error::from_raw_os_error(e)),
                    ));
                    return Ready::Done;
                }
            }
        }
        Ready::Yield
    }
}
