//! Connection ops on a ring (for `LocalEngine`): multishot accept, recv, send of owned
//! bytes, timeouts and close, each owning what the kernel uses (fd `Arc`, buffer,
//! timespec, socket address) until its last CQE. `EAGAIN` (an `O_NONBLOCK` socket:
//! io_uring then does not wait itself) becomes a `POLL_ADD` and the op again; a connect
//! answered `EINPROGRESS` becomes a `POLL_ADD(POLLOUT)` and then its `SO_ERROR`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd};

use io_uring::{cqueue, opcode, squeue, types};

use super::buf_ring::{self, BufRing};

/// `IORING_RECVSEND_POLL_FIRST` (5.19): arm the poll before trying the recv — a
/// request-response connection's next request is rarely there yet when its recv is
/// queued, and a first try would only fail (`tcp_recvmsg` under the socket lock).
const RECVSEND_POLL_FIRST: u16 = 1;
use super::sqe::Backlog;
use crate::events::{ended, ConnOp, Event, OpId};
use crate::sys;
use crate::transfer::SharedFd;

enum Kind {
    Accept(SharedFd),
    Recv(SharedFd, Vec<u8>),
    /// Multishot recv into the provided-buffer ring (`None`), or, where the kernel has
    /// none, single recvs into an own buffer, re-issued until the end (`Some`).
    RecvMulti(SharedFd, Option<Vec<u8>>),
    /// One recv into a buffer the kernel selects from the provided-buffer ring when
    /// bytes arrive, so none is held while waiting (`None`); where the kernel has no
    /// buffer rings, into an own buffer (`Some`), trimmed to the bytes.
    RecvPooled(SharedFd, Option<Vec<u8>>),
    Send(SharedFd, Vec<u8>, usize),
    Connect(SharedFd, Box<sys::RawAddr>),
    Timer(Box<types::Timespec>),
    /// The fd now belongs to the kernel's close.
    Close(i32),
}

struct Conn {
    kind: Kind,
    /// Single recvs carry `RECVSEND_POLL_FIRST` (the kernel takes it).
    poll_first: bool,
    /// A POLL_ADD is in flight instead of the op.
    polling: bool,
    cancelled: bool,
}

impl Conn {
    fn entry(&mut self) -> squeue::Entry {
        let recv_prio = if self.poll_first {
            RECVSEND_POLL_FIRST
        } else {
            0
        };
        let poll = |fd: &SharedFd, out: bool| {
            let ev = if out { libc::POLLOUT } else { libc::POLLIN };
            opcode::PollAdd::new(types::Fd(fd.as_fd().as_raw_fd()), ev as u32).build()
        };
        match &mut self.kind {
            Kind::Accept(fd) if self.polling => poll(fd, false),
            Kind::Recv(fd, _) if self.polling => poll(fd, false),
            Kind::RecvMulti(fd, _) if self.polling => poll(fd, false),
            Kind::RecvPooled(fd, _) if self.polling => poll(fd, false),
            Kind::RecvPooled(fd, Some(buf)) => opcode::Recv::new(
                types::Fd(fd.as_fd().as_raw_fd()),
                buf.as_mut_ptr(),
                buf.len() as u32,
            )
            .build(),
            Kind::RecvPooled(fd, None) => opcode::Recv::new(
                types::Fd(fd.as_fd().as_raw_fd()),
                std::ptr::null_mut(),
                buf_ring::BUF_SIZE as u32,
            )
            .ioprio(recv_prio)
            .buf_group(buf_ring::GROUP)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT),
            Kind::RecvMulti(fd, None) => {
                opcode::RecvMulti::new(types::Fd(fd.as_fd().as_raw_fd()), buf_ring::GROUP).build()
            }
            Kind::RecvMulti(fd, Some(buf)) => opcode::Recv::new(
                types::Fd(fd.as_fd().as_raw_fd()),
                buf.as_mut_ptr(),
                buf.len() as u32,
            )
            .build(),
            Kind::Send(fd, _, _) if self.polling => poll(fd, true),
            Kind::Connect(fd, _) if self.polling => poll(fd, true),
            Kind::Connect(fd, addr) => {
                opcode::Connect::new(types::Fd(fd.as_fd().as_raw_fd()), addr.as_ptr(), addr.len())
                    .build()
            }
            Kind::Accept(fd) => opcode::AcceptMulti::new(types::Fd(fd.as_fd().as_raw_fd()))
                .flags(libc::SOCK_CLOEXEC)
                .build(),
            Kind::Recv(fd, buf) => opcode::Recv::new(
                types::Fd(fd.as_fd().as_raw_fd()),
                buf.as_mut_ptr(),
                buf.len().min(u32::MAX as usize) as u32,
            )
            .ioprio(recv_prio)
            .build(),
            Kind::Send(fd, buf, sent) => {
                let rest = &buf[*sent..];
                opcode::Send::new(
                    types::Fd(fd.as_fd().as_raw_fd()),
                    rest.as_ptr(),
                    rest.len().min(u32::MAX as usize) as u32,
                )
                .flags(libc::MSG_NOSIGNAL)
                .build()
            }
            Kind::Timer(ts) => opcode::Timeout::new(&**ts).build(),
            Kind::Close(fd) => opcode::Close::new(types::Fd(*fd)).build(),
        }
    }
}

/// The connection ops of one ring, by op id.
#[derive(Default)]
pub(crate) struct ConnTable {
    ops: HashMap<u64, Conn>,
    /// The kernel takes `RECVSEND_POLL_FIRST` (see `poll_first_ok`).
    poll_first: bool,
    /// The provided buffers of multishot recvs: `None` until the first one; then the
    /// ring, or `Err` where the kernel cannot (single recvs are used then).
    bufs: Option<Result<BufRing, ()>>,
}

impl ConnTable {
    /// `ring`'s ops: single recvs poll first where the kernel takes the flag (5.19;
    /// known from a ring set up `SINGLE_ISSUER`, 6.0 — older kernels refuse a recv
    /// with the flag as invalid).
    pub(crate) fn new(ring: &io_uring::IoUring) -> ConnTable {
        ConnTable {
            poll_first: ring.params().is_setup_single_issuer(),
            ..ConnTable::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Registers the provided-buffer ring before the first multishot recv (once).
    pub(crate) fn prepare_multishot(&mut self, ring: &io_uring::IoUring) {
        if self.bufs.is_none() {
            self.bufs = Some(BufRing::register(ring).map_err(|_| ()));
        }
    }

    /// Starts op `id`; its SQE goes out with the next submit (`user_data` from `ud`).
    pub(crate) fn start(&mut self, id: u64, op: ConnOp, ud: u64, backlog: &mut Backlog) {
        let kind = match op {
            ConnOp::Accept(fd) => Kind::Accept(fd),
            ConnOp::Recv(fd, buf) => Kind::Recv(fd, buf),
            ConnOp::RecvMulti(fd) => match self.bufs {
                Some(Ok(_)) => Kind::RecvMulti(fd, None),
                _ => Kind::RecvMulti(fd, Some(vec![0; buf_ring::BUF_SIZE])),
            },
            ConnOp::RecvPooled(fd) => match self.bufs {
                Some(Ok(_)) => Kind::RecvPooled(fd, None),
                _ => Kind::RecvPooled(fd, Some(vec![0; buf_ring::BUF_SIZE])),
            },
            ConnOp::Send(fd, buf) => Kind::Send(fd, buf, 0),
            ConnOp::Connect(fd, addr) => Kind::Connect(fd, Box::new(sys::RawAddr::new(&addr))),
            ConnOp::Timeout(d) => Kind::Timer(Box::new(types::Timespec::from(d))),
            ConnOp::Close(fd) => Kind::Close(fd.into_raw_fd()),
        };
        let mut c = Conn {
            kind,
            poll_first: self.poll_first,
            polling: false,
            cancelled: false,
        };
        backlog.push(c.entry().user_data(ud));
        self.ops.insert(id, c);
    }

    /// Asks the kernel to stop op `id` (its CQE then ends it).
    pub(crate) fn cancel(&mut self, id: u64, ud: u64, cancel_ud: u64, backlog: &mut Backlog) {
        if let Some(c) = self.ops.get_mut(&id) {
            c.cancelled = true;
            backlog.push(opcode::AsyncCancel::new(ud).build().user_data(cancel_ud));
        }
    }

    /// Every op's id (to cancel them all at shutdown).
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.ops.keys().copied().collect()
    }

    /// A CQE of op `id`: an event when it is over (or, for accept, per connection);
    /// the op again (`ud`) when it goes on.
    pub(crate) fn on_cqe(
        &mut self,
        id: u64,
        res: i32,
        flags: u32,
        ud: u64,
        backlog: &mut Backlog,
        events: &mut Vec<Event>,
    ) {
        let Some(mut c) = self.ops.remove(&id) else {
            return;
        };
        if self.ops.capacity() > 256 && self.ops.len() * 8 < self.ops.capacity() {
            // A crowd of connections left: give their room back.
            self.ops.shrink_to(self.ops.len() * 2);
        }
        let op = OpId(id);
        let err = |res: i32| io::Error::from_raw_os_error(-res);
        if c.polling {
            c.polling = false;
            if res < 0 && res != -libc::EINTR {
                return self.end(id, c, err(res), events);
            }
            if let Kind::Connect(fd, _) = &c.kind {
                // Writable: the connect is over; SO_ERROR says how it went.
                let result = sys::socket_error(fd.as_fd()).map_err(io::Error::from_raw_os_error);
                return events.push(Event::Connected {
                    op: OpId(id),
                    result,
                });
            }
            backlog.push(c.entry().user_data(ud));
            self.ops.insert(id, c);
            return;
        }
        if let Kind::RecvMulti(..) = c.kind {
            return self.on_multi_cqe(id, c, res, flags, ud, backlog, events);
        }
        if let Kind::RecvPooled(_, own) = &mut c.kind {
            if res == -libc::ENOBUFS && !c.cancelled && own.is_none() {
                // Every provided buffer was taken in this batch; they are given back
                // as the batch is reaped: ask again.
                backlog.push(c.entry().user_data(ud));
                self.ops.insert(id, c);
                return;
            }
            if res > 0 {
                let buf = match (own.take(), cqueue::buffer_select(flags), &mut self.bufs) {
                    (Some(mut buf), _, _) => {
                        buf.truncate(res as usize);
                        buf
                    }
                    (None, Some(bid), Some(Ok(ring))) => {
                        let data = ring.bytes(bid, res as usize).to_vec();
                        ring.recycle(bid);
                        data
                    }
                    _ => Vec::new(),
                };
                return events.push(Event::Received {
                    op,
                    buf,
                    result: Ok(res as usize),
                });
            }
        }
        let in_progress = matches!(c.kind, Kind::Connect(..)) && res == -libc::EINPROGRESS;
        if (res == -libc::EAGAIN || in_progress)
            && !c.cancelled
            && !matches!(c.kind, Kind::Timer(_) | Kind::Close(_))
        {
            c.polling = true;
            backlog.push(c.entry().user_data(ud));
            self.ops.insert(id, c);
            return;
        }
        match c.kind {
            Kind::Accept(fd) => {
                let more = cqueue::more(flags);
                if res < 0 {
                    // The kernel ends a multishot accept on any error. EMFILE, ENFILE,
                    // ENOBUFS, ENOMEM leave the connection in the listen queue: the owner
                    // decides when to try again (re-arming here would spin at the limit).
                    let e = if c.cancelled || res == -libc::ECANCELED {
                        io::Error::new(io::ErrorKind::Interrupted, "accept cancelled")
                    } else {
                        err(res)
                    };
                    events.push(Event::Accepted { op, conn: Err(e) });
                    return;
                }
                events.push(Event::Accepted {
                    op,
                    conn: Ok(sys::owned_fd(res)),
                });
                let mut c = Conn {
                    kind: Kind::Accept(fd),
                    poll_first: false,
                    polling: false,
                    cancelled: c.cancelled,
                };
                if more {
                    self.ops.insert(id, c); // multishot goes on
                } else if c.cancelled {
                    let e = io::Error::new(io::ErrorKind::Interrupted, "accept cancelled");
                    events.push(Event::Accepted { op, conn: Err(e) });
                } else {
                    // Ended without an error (a full completion queue): not the owner's
                    // business, so go on.
                    backlog.push(c.entry().user_data(ud));
                    self.ops.insert(id, c);
                }
            }
            Kind::Recv(_, buf) => {
                let result = if res >= 0 {
                    Ok(res as usize)
                } else {
                    Err(err(res))
                };
                events.push(Event::Received { op, buf, result });
            }
            Kind::RecvMulti(..) => {} // on_multi_cqe
            Kind::RecvPooled(..) => {
                let result = match res {
                    0.. => Ok(0),
                    r if r == -libc::ECANCELED || c.cancelled => {
                        Err(io::Error::new(io::ErrorKind::Interrupted, "recv cancelled"))
                    }
                    r => Err(err(r)),
                };
                events.push(Event::Received {
                    op,
                    buf: Vec::new(),
                    result,
                });
            }
            Kind::Send(fd, buf, sent) => {
                if res > 0 && sent + (res as usize) < buf.len() && !c.cancelled {
                    let mut c = Conn {
                        kind: Kind::Send(fd, buf, sent + res as usize),
                        poll_first: false,
                        polling: false,
                        cancelled: false,
                    };
                    backlog.push(c.entry().user_data(ud));
                    self.ops.insert(id, c);
                    return;
                }
                let result = if res >= 0 {
                    Ok(sent + res as usize)
                } else {
                    Err(err(res))
                };
                events.push(Event::Sent { op, buf, result });
            }
            Kind::Connect(..) => {
                let result = match res {
                    0.. => Ok(()),
                    r if r == -libc::ECANCELED => Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "connect cancelled",
                    )),
                    r => Err(err(r)),
                };
                events.push(Event::Connected { op, result });
            }
            Kind::Timer(_) => {
                let result = match -res {
                    libc::ETIME => Ok(()),
                    libc::ECANCELED => Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "timeout cancelled",
                    )),
                    _ if res >= 0 => Ok(()),
                    _ => Err(err(res)),
                };
                events.push(Event::Timer { op, result });
            }
            Kind::Close(_) => {
                let result = if res >= 0 { Ok(()) } else { Err(err(res)) };
                events.push(Event::Closed { op, result });
            }
        }
    }

    /// A CQE of a multishot recv (or of its single-recv stand-in): one event per
    /// arrival; the op goes on until end of stream, an error or a cancel.
    #[allow(clippy::too_many_arguments)]
    fn on_multi_cqe(
        &mut self,
        id: u64,
        mut c: Conn,
        res: i32,
        flags: u32,
        ud: u64,
        backlog: &mut Backlog,
        events: &mut Vec<Event>,
    ) {
        let op = OpId(id);
        let mut more = cqueue::more(flags);
        if res > 0 {
            let data = match (&c.kind, cqueue::buffer_select(flags), &mut self.bufs) {
                (Kind::RecvMulti(_, Some(buf)), _, _) => buf[..res as usize].to_vec(),
                (_, Some(bid), Some(Ok(ring))) => {
                    let data = ring.bytes(bid, res as usize).to_vec();
                    ring.recycle(bid);
                    data
                }
                _ => Vec::new(),
            };
            events.push(Event::Received {
                op,
                buf: data,
                result: Ok(res as usize),
            });
        } else if res == 0 {
            events.push(Event::Received {
                op,
                buf: Vec::new(),
                result: Ok(0),
            });
            return; // end of stream: the op is over
        } else if (res == -libc::EAGAIN || res == -libc::ENOBUFS) && !c.cancelled {
            // Nothing to read yet (a non-blocking socket), or no free buffer: wait and go on.
            c.polling = res == -libc::EAGAIN;
            more = false;
        } else {
            let e = if res == -libc::ECANCELED || c.cancelled {
                io::Error::new(io::ErrorKind::Interrupted, "recv cancelled")
            } else {
                io::Error::from_raw_os_error(-res)
            };
            events.push(Event::Received {
                op,
                buf: Vec::new(),
                result: Err(e),
            });
            return;
        }
        if !more {
            if c.cancelled {
                let e = io::Error::new(io::ErrorKind::Interrupted, "recv cancelled");
                events.push(Event::Received {
                    op,
                    buf: Vec::new(),
                    result: Err(e),
                });
                return;
            }
            backlog.push(c.entry().user_data(ud));
        }
        self.ops.insert(id, c);
    }

    fn end(&mut self, id: u64, c: Conn, e: io::Error, events: &mut Vec<Event>) {
        let op = OpId(id);
        events.push(match c.kind {
            Kind::Accept(fd) => return events.push(ended(id, ConnOp::Accept(fd), e)),
            Kind::Recv(_, buf) => Event::Received {
                op,
                buf,
                result: Err(e),
            },
            Kind::RecvMulti(..) | Kind::RecvPooled(..) => Event::Received {
                op,
                buf: Vec::new(),
                result: Err(e),
            },
            Kind::Send(_, buf, _) => Event::Sent {
                op,
                buf,
                result: Err(e),
            },
            Kind::Connect(..) => Event::Connected { op, result: Err(e) },
            Kind::Timer(_) => Event::Timer { op, result: Err(e) },
            Kind::Close(_) => Event::Closed { op, result: Err(e) },
        });
    }
}
