//! A ring's connection ops (for `LocalEngine`), by op id: what every op shares on
//! io_uring. Each op (`backend/ops/`) builds its SQE and reads its CQEs; here an
//! `EAGAIN` (an `O_NONBLOCK` socket: io_uring then does not wait itself) becomes a
//! `POLL_ADD` on the op's fd and then the op again, a cancel becomes an `AsyncCancel`,
//! and an op that would be issued again after its cancel ends `Interrupted` instead.
//! An op stays here, boxed, until its last CQE: what the kernel uses stays alive.

use std::collections::HashMap;
use std::io;

use io_uring::opcode;

use super::buf_ring::BufRing;
use super::sqe::Backlog;
use crate::backend::ops::{ConnOp, Cqe, Direction, Flow, RingShared};
use crate::events::{Event, OpId};

struct Pending {
    op: Box<dyn ConnOp>,
    /// A `POLL_ADD` is in flight instead of the op.
    polling: bool,
    cancelled: bool,
}

/// The connection ops of one ring.
#[derive(Default)]
pub(crate) struct ConnTable {
    ops: HashMap<u64, Pending>,
    shared: RingShared,
}

impl ConnTable {
    /// `ring`'s ops: single recvs poll first where the kernel takes the flag (5.19;
    /// known from a ring set up `SINGLE_ISSUER`, 6.0 — older kernels refuse a recv
    /// with the flag as invalid).
    pub(crate) fn new(ring: &io_uring::IoUring) -> ConnTable {
        ConnTable {
            ops: HashMap::new(),
            shared: RingShared {
                poll_first: ring.params().is_setup_single_issuer(),
                bufs: None,
            },
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Starts op `id`; its SQE goes out with the next submit (`user_data` from `ud`).
    /// The provided-buffer ring is registered before the first op that uses it.
    pub(crate) fn start(
        &mut self,
        id: u64,
        mut op: Box<dyn ConnOp>,
        ud: u64,
        ring: &io_uring::IoUring,
        backlog: &mut Backlog,
    ) {
        if op.uses_provided_buffers() && self.shared.bufs.is_none() {
            self.shared.bufs = Some(BufRing::register(ring).map_err(|_| ()));
        }
        backlog.push(op.sqe(&mut self.shared).user_data(ud));
        let p = Pending {
            op,
            polling: false,
            cancelled: false,
        };
        self.ops.insert(id, p);
    }

    /// Asks the kernel to stop op `id` (its CQE then ends it).
    pub(crate) fn cancel(&mut self, id: u64, ud: u64, cancel_ud: u64, backlog: &mut Backlog) {
        if let Some(p) = self.ops.get_mut(&id) {
            p.cancelled = true;
            backlog.push(opcode::AsyncCancel::new(ud).build().user_data(cancel_ud));
        }
    }

    /// Every op's id (to cancel them all at shutdown).
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.ops.keys().copied().collect()
    }

    /// A CQE of op `id`: its events, and the op again (`ud`) when it goes on.
    pub(crate) fn on_cqe(
        &mut self,
        id: u64,
        res: i32,
        flags: u32,
        ud: u64,
        backlog: &mut Backlog,
        events: &mut Vec<Event>,
    ) {
        let Some(mut p) = self.ops.remove(&id) else {
            return;
        };
        if self.ops.capacity() > 256 && self.ops.len() * 8 < self.ops.capacity() {
            // A crowd of connections left: give their room back.
            self.ops.shrink_to(self.ops.len() * 2);
        }
        let op = OpId(id);
        let flow = if p.polling {
            p.polling = false;
            if res < 0 && res != -libc::EINTR {
                let e = if p.cancelled || res == -libc::ECANCELED {
                    io::Error::new(io::ErrorKind::Interrupted, "operation cancelled")
                } else {
                    io::Error::from_raw_os_error(-res)
                };
                return events.push(p.op.ended(op, e));
            }
            p.op.polled(op, events)
        } else if res == -libc::EAGAIN && !p.cancelled && p.op.waits_on().is_some() {
            Flow::Poll
        } else {
            let c = Cqe {
                op,
                res,
                flags,
                cancelled: p.cancelled,
            };
            p.op.complete(c, &mut self.shared, events)
        };
        match flow {
            Flow::Done => {}
            Flow::More => {
                self.ops.insert(id, p);
            }
            // Issued again after a cancel that found nothing to stop, it would run on.
            Flow::Again | Flow::Poll if p.cancelled => {
                let e = io::Error::new(io::ErrorKind::Interrupted, "operation cancelled");
                events.push(p.op.ended(op, e));
            }
            Flow::Again => {
                backlog.push(p.op.sqe(&mut self.shared).user_data(ud));
                self.ops.insert(id, p);
            }
            Flow::Poll => {
                let Some((fd, direction)) = p.op.waits_on() else {
                    let e = io::Error::other("an op that cannot wait would block");
                    return events.push(p.op.ended(op, e));
                };
                let mask = match direction {
                    Direction::Readable => libc::POLLIN,
                    Direction::Writable => libc::POLLOUT,
                };
                let e = opcode::PollAdd::new(io_uring::types::Fd(fd), mask as u32).build();
                backlog.push(e.user_data(ud));
                p.polling = true;
                self.ops.insert(id, p);
            }
        }
    }
}
