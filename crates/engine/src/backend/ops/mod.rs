//! A `LocalEngine`'s connection ops, one per file: each file holds its op's state, how
//! it is issued and completed on io_uring, how it runs on the epoll readiness loop,
//! and the event it ends with. The two executors hold ops as `Box<dyn ConnOp>` and do
//! only what every op shares: on io_uring, an `EAGAIN` (a non-blocking socket) becomes
//! a `POLL_ADD` and then the op again, a cancel is an `AsyncCancel` and an op that
//! would go on after it ends `Interrupted`; on the readiness loop, waits on an fd and
//! timers. A new op is one new file here, plus its `LocalEngine` method (and an
//! `Event` variant if none of the existing ones says how it ended).
//!
//! What the kernel uses (a buffer, a socket address, a timespec) is a field of the
//! boxed op, so it stays put and alive until the executor drops the op after its last
//! completion.

mod accept;
mod close;
mod connect;
mod recv;
mod recv_multi;
mod recv_pooled;
mod send_all;
mod timeout;

pub(crate) use accept::Accept;
pub(crate) use close::Close;
pub(crate) use connect::Connect;
pub(crate) use recv::Recv;
pub(crate) use recv_multi::RecvMulti;
pub(crate) use recv_pooled::RecvPooled;
pub(crate) use send_all::SendAll;
pub(crate) use timeout::Timeout;

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

#[cfg(ferry_uring)]
use crate::backend::uring::buf_ring::BufRing;
use crate::events::{Event, OpId};

/// One connection op. `out` collects the events it produces (several for multishot
/// ops); the op's last event is pushed by whichever method ends it.
pub(crate) trait ConnOp {
    /// Its last event when it ends without running to its end with `e`: cancelled,
    /// shut down, a readiness wait that could not be set up.
    fn ended(&mut self, op: OpId, e: io::Error) -> Event;

    /// The fd a would-block result waits on, and whether for writability; `None` for
    /// an op that never waits on an fd (a timer, a close).
    fn waits_on(&self) -> Option<(RawFd, Direction)>;

    /// The SQE that issues (or re-issues) the op.
    #[cfg(ferry_uring)]
    fn sqe(&mut self, ring: &mut RingShared) -> io_uring::squeue::Entry;

    /// A CQE of the op (other than `EAGAIN`, which the executor turns into a poll).
    #[cfg(ferry_uring)]
    fn complete(&mut self, c: Cqe, ring: &mut RingShared, out: &mut Vec<Event>) -> Flow;

    /// The poll a would-block result asked for says ready: by default the op again.
    #[cfg(ferry_uring)]
    fn polled(&mut self, _op: OpId, _out: &mut Vec<Event>) -> Flow {
        Flow::Again
    }

    /// Whether the op receives into the ring's provided buffers (registered before
    /// the first such op).
    #[cfg(ferry_uring)]
    fn uses_provided_buffers(&self) -> bool {
        false
    }

    /// Before the first `run` on the readiness loop (which needs non-blocking fds).
    fn prepare_readiness(&mut self) {}

    /// Carries the op as far as it goes without waiting (readiness loop); `Wait` only
    /// from an op that `waits_on` an fd.
    fn run(&mut self, op: OpId, out: &mut Vec<Event>) -> Ready;
}

/// Which readiness an op waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Readable,
    Writable,
}

/// A completion of an op's SQE.
#[cfg(ferry_uring)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cqe {
    pub op: OpId,
    pub res: i32,
    pub flags: u32,
    /// The op was asked to stop (its SQE may still have finished normally).
    pub cancelled: bool,
}

#[cfg(ferry_uring)]
impl Cqe {
    /// The error of a negative result: `Interrupted` when cancelled.
    pub fn error(&self, what: &'static str) -> io::Error {
        if self.res == -libc::ECANCELED || self.cancelled {
            io::Error::new(io::ErrorKind::Interrupted, what)
        } else {
            io::Error::from_raw_os_error(-self.res)
        }
    }

    /// Another CQE of this SQE follows (multishot).
    pub fn more(&self) -> bool {
        io_uring::cqueue::more(self.flags)
    }
}

/// What the io_uring executor does after a completion.
#[cfg(ferry_uring)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// The op is over (its last event is out).
    Done,
    /// Issue the op's SQE again.
    Again,
    /// Wait for readiness (a `POLL_ADD` on `waits_on`), then `polled`.
    Poll,
    /// A multishot SQE goes on: more CQEs come with nothing to submit.
    More,
}

/// What the readiness loop does after a `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// The op is over.
    Done,
    /// Run again when the fd of `waits_on` is ready.
    Wait,
    /// Run again at this time.
    Sleep(Instant),
    /// Run again soon (it stopped early to give other ops their turn).
    Yield,
}

/// What a ring's ops share: whether the kernel takes `RECVSEND_POLL_FIRST`, and the
/// provided-buffer ring of pooled and multishot receives.
#[cfg(ferry_uring)]
#[derive(Default)]
pub(crate) struct RingShared {
    /// The kernel takes `IORING_RECVSEND_POLL_FIRST` (5.19): arm the poll before
    /// trying a recv — a request-response connection's next request is rarely there
    /// yet when its recv is queued, and a first try would only fail.
    pub poll_first: bool,
    /// `None` until the first op that uses it; then the ring, or `Err` where the
    /// kernel has none (own buffers then).
    pub bufs: Option<Result<BufRing, ()>>,
}

#[cfg(ferry_uring)]
impl RingShared {
    /// `IORING_RECVSEND_POLL_FIRST`, as a recv SQE's `ioprio`, where the kernel takes it.
    pub fn recv_ioprio(&self) -> u16 {
        const RECVSEND_POLL_FIRST: u16 = 1;
        if self.poll_first {
            RECVSEND_POLL_FIRST
        } else {
            0
        }
    }

    /// The provided buffers, where registered.
    pub fn provided(&mut self) -> Option<&mut BufRing> {
        match &mut self.bufs {
            Some(Ok(ring)) => Some(ring),
            _ => None,
        }
    }

    /// The `n` bytes the kernel put in the provided buffer a CQE names, copied out; the
    /// buffer goes straight back to the kernel.
    pub fn take_bytes(&mut self, flags: u32, n: usize) -> Vec<u8> {
        match (io_uring::cqueue::buffer_select(flags), self.provided()) {
            (Some(bid), Some(ring)) => {
                let data = ring.bytes(bid, n).to_vec();
                ring.recycle(bid);
                data
            }
            _ => Vec::new(),
        }
    }
}

/// A receive's own buffer where the kernel has no provided-buffer ring.
#[cfg(ferry_uring)]
pub(crate) const OWN_BUF: usize = 16 * 1024;
