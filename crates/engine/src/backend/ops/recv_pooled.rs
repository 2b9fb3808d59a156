//! `recv_pooled`: one receive into a buffer picked only when bytes have arrived, so a
//! connection waiting with it holds none. On io_uring a recv that selects one of the
//! ring's provided buffers (copied out, given straight back), or into an own 16 KiB
//! buffer where the kernel has no buffer rings; on the fallback a read into the
//! thread's stack on readiness. The event's `buf` holds exactly the bytes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use super::{ConnOp, Direction, Ready};
#[cfg(ferry_uring)]
use super::{Cqe, Flow, RingShared, OWN_BUF};
use crate::events::{Event, OpId};
use crate::sys;
use crate::transfer::SharedFd;

pub(crate) struct RecvPooled {
    fd: SharedFd,
    /// io_uring without provided buffers: the op's own buffer.
    #[cfg(ferry_uring)]
    own: Option<Vec<u8>>,
}

impl RecvPooled {
    pub(crate) fn new(fd: SharedFd) -> Box<RecvPooled> {
        Box::new(RecvPooled {
            fd,
            #[cfg(ferry_uring)]
            own: None,
        })
    }
}

impl ConnOp for RecvPooled {
    fn ended(&mut self, op: OpId, e: io::Error) -> Event {
        Event::Received {
            op,
            buf: Vec::new(),
            result: Err(e),
        }
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
        use crate::backend::uring::buf_ring;
        let fd = io_uring::types::Fd(self.fd.as_fd().as_raw_fd());
        if self.own.is_none() && ring.provided().is_none() {
            self.own = Some(vec![0; OWN_BUF]);
        }
        match &mut self.own {
            Some(buf) => {
                io_uring::opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32).build()
            }
            None => {
                io_uring::opcode::Recv::new(fd, std::ptr::null_mut(), buf_ring::BUF_SIZE as u32)
                    .ioprio(ring.recv_ioprio())
                    .buf_group(buf_ring::GROUP)
                    .build()
                    .flags(io_uring::squeue::Flags::BUFFER_SELECT)
            }
        }
    }

    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, ring: &mut RingShared, out: &mut Vec<Event>) -> Flow {
        if c.res == -libc::ENOBUFS && !c.cancelled && self.own.is_none() {
            // Every provided buffer was taken in this batch; they are given back as the
            // batch is reaped: ask again.
            return Flow::Again;
        }
        let (buf, result) = match c.res {
            1.. => {
                let n = c.res as usize;
                let buf = match self.own.take() {
                    Some(mut buf) => {
                        buf.truncate(n);
                        buf
                    }
                    None => ring.take_bytes(c.flags, n),
                };
                (buf, Ok(n))
            }
            0 => (Vec::new(), Ok(0)),
            _ => (Vec::new(), Err(c.error("recv cancelled"))),
        };
        out.push(Event::Received {
            op: c.op,
            buf,
            result,
        });
        Flow::Done
    }

    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready {
        let mut scratch = [0u8; 16 * 1024];
        match sys::recv(self.fd.as_fd(), &mut scratch) {
            Err(libc::EAGAIN) => Ready::Wait,
            r => {
                let result = r.map_err(io::Error::from_raw_os_error);
                let buf = match &result {
                    Ok(n) => scratch[..*n].to_vec(),
                    Err(_) => Vec::new(),
                };
                out.push(Event::Received { op, buf, result });
                Ready::Done
            }
        }
    }
}
