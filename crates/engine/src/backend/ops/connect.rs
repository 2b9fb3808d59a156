//! `connect`: a fresh stream socket to an address. Where the kernel answers
//! `EINPROGRESS` (a non-blocking socket), the op waits for writability and then reads
//! how it ended from `SO_ERROR`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use super::{ConnOp, Direction, Ready};
#[cfg(ferry_uring)]
use super::{Cqe, Flow, RingShared};
use crate::events::{Event, OpId};
use crate::modes::NonBlocking;
use crate::sys;
use crate::transfer::SharedFd;

/// Where a connect is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not called yet.
    NotStarted,
    /// Called (its result decides).
    Called,
    /// In progress: once writable, `SO_ERROR` says how it ended.
    InProgress,
}

pub(crate) struct Connect {
    fd: SharedFd,
    /// The address as the kernel reads it (alive until the op's last completion).
    addr: sys::RawAddr,
    stage: Stage,
    /// The readiness loop's socket is non-blocking while connecting.
    _mode: Option<NonBlocking>,
}

impl Connect {
    pub(crate) fn new(fd: SharedFd, addr: SocketAddr) -> Box<Connect> {
        Box::new(Connect {
            fd,
            addr: sys::RawAddr::new(&addr),
            stage: Stage::NotStarted,
            _mode: None,
        })
    }

    /// How the connect in progress ended.
    #[cfg(ferry_uring)]
    fn outcome(&self) -> io::Result<()> {
        sys::socket_error(self.fd.as_fd()).map_err(io::Error::from_raw_os_error)
    }
}

impl ConnOp for Connect {
    fn ended(&mut self, op: OpId, e: io::Error) -> Event {
        Event::Connected { op, result: Err(e) }
    }

    fn waits_on(&self) -> Option<(RawFd, Direction)> {
        Some((self.fd.as_fd().as_raw_fd(), Direction::Writable))
    }

    #[cfg(ferry_uring)]
    fn sqe(&mut self, _ring: &mut RingShared) -> io_uring::squeue::Entry {
        let fd = io_uring::types::Fd(self.fd.as_fd().as_raw_fd());
        io_uring::opcode::Connect::new(fd, self.addr.as_ptr(), self.addr.len()).build()
    }

    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, _ring: &mut RingShared, out: &mut Vec<Event>) -> Flow {
        if c.res == -libc::EINPROGRESS && !c.cancelled {
            return Flow::Poll;
        }
        let result = match c.res {
            0.. => Ok(()),
            _ if c.res == -libc::ECANCELED => Err(c.error("connect cancelled")),
            _ => Err(io::Error::from_raw_os_error(-c.res)),
        };
        out.push(Event::Connected { op: c.op, result });
        Flow::Done
    }

    #[cfg(ferry_uring)]
    fn polled(&mut self, op: OpId, out: &mut Vec<Event>) -> Flow {
        // Writable: the connect is over.
        out.push(Event::Connected {
            op,
            result: self.outcome(),
        });
        Flow::Done
    }

    fn prepare_readiness(&mut self) {
        self._mode = NonBlocking::acquire(&self.fd);
    }

    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready {
        let result = match self.stage {
            Stage::NotStarted => {
                self.stage = Stage::Called;
                sys::connect(self.fd.as_fd(), &self.addr)
            }
            _ => sys::socket_error(self.fd.as_fd()),
        };
        match result {
            Err(libc::EINPROGRESS | libc::EAGAIN) if self.stage == Stage::Called => {
                self.stage = Stage::InProgress;
                Ready::Wait
            }
            r => {
                let result = r.map_err(io::Error::from_raw_os_error);
                out.push(Event::Connected { op, result });
                Ready::Done
            }
        }
    }
}
