//! Plan steps as io_uring submission entries, and the one place entries enter the
//! submission queue (the ring boundary; with `buf_ring`, the memory shared with the
//! kernel, it holds this backend's `unsafe`).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use io_uring::{opcode, squeue, types, IoUring};

use crate::job::Job;
use crate::plan::{Side, Step};
use crate::resolved::FdKind;

/// `-1` as a file offset: "the current position" (streams: no offset).
const NO_OFFSET: u64 = u64::MAX;

fn write_op(job: &Job, buf: &[u8], more: bool, off: Option<u64>) -> squeue::Entry {
    let fd = types::Fd(job.dst.as_fd().as_raw_fd());
    let len = buf.len().min(u32::MAX as usize) as u32;
    match job.dst_kind {
        FdKind::Socket => {
            // MSG_NOSIGNAL: a dead peer is EPIPE, never SIGPIPE in the host process.
            let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
            opcode::Send::new(fd, buf.as_ptr(), len)
                .flags(flags)
                .build()
        }
        _ => opcode::Write::new(fd, buf.as_ptr(), len)
            .offset(off.unwrap_or(NO_OFFSET))
            .build(),
    }
}

/// The entry carrying out `step` for `job` (`Fill` needs the job's pipe, and is cut
/// to `fill_len`); `None` for steps io_uring has no opcode for (`Sendfile`,
/// `CopyRange`: the plan steps down to splice when told `EOPNOTSUPP`).
///
/// Every pointer in the entry points into the job (header, trailer, staging buffer)
/// or is an fd the job holds: the job must stay alive until the entry's CQE.
pub(crate) fn entry(job: &mut Job, step: Step, fill_len: usize) -> Option<squeue::Entry> {
    let src = types::Fd(job.src.as_fd().as_raw_fd());
    let dst = types::Fd(job.dst.as_fd().as_raw_fd());
    let e = match step {
        Step::Header {
            from,
            more,
            dst_off,
        } => write_op(job, &job.plan.header()[from..], more, dst_off),
        Step::Trailer { from, dst_off } => {
            write_op(job, &job.plan.trailer()[from..], false, dst_off)
        }
        Step::Send {
            at,
            len,
            more,
            dst_off,
        } => write_op(job, &job.plan.staging()[at..at + len], more, dst_off),
        Step::Read { src_off, at, len } => {
            let buf = &mut job.plan.staging_mut()[at..at + len];
            opcode::Read::new(src, buf.as_mut_ptr(), len as u32)
                .offset(src_off.unwrap_or(NO_OFFSET))
                .build()
        }
        Step::Fill { src_off, .. } => {
            let pipe = job.pipe.as_ref()?;
            let off_in = src_off.map_or(-1, |o| o as i64);
            opcode::Splice::new(
                src,
                off_in,
                types::Fd(pipe.writer().as_raw_fd()),
                -1,
                fill_len as u32,
            )
            .flags(libc::SPLICE_F_NONBLOCK)
            .build()
        }
        Step::Drain { len, more, dst_off } => {
            let pipe = job.pipe.as_ref()?;
            let mut flags = libc::SPLICE_F_NONBLOCK;
            if more {
                flags |= libc::SPLICE_F_MORE;
            }
            let off_out = dst_off.map_or(-1, |o| o as i64);
            opcode::Splice::new(
                types::Fd(pipe.reader().as_raw_fd()),
                -1,
                dst,
                off_out,
                len.min(u32::MAX as usize) as u32,
            )
            .flags(flags)
            .build()
        }
        Step::Poll(Side::Src) => opcode::PollAdd::new(src, libc::POLLIN as u32).build(),
        Step::Poll(Side::Dst) => opcode::PollAdd::new(dst, libc::POLLOUT as u32).build(),
        Step::Sendfile { .. } | Step::CopyRange { .. } | Step::Gather { .. } | Step::Done => {
            return None
        }
    };
    Some(e)
}

/// Entries waiting to enter the SQ. A hard-linked pair goes in together or not at
/// all: a chain must not straddle two submits.
#[derive(Default)]
pub(crate) struct Backlog {
    /// `(entry, linked to the next)`.
    entries: Vec<(squeue::Entry, bool)>,
}

impl Backlog {
    pub(crate) fn push(&mut self, e: squeue::Entry) {
        self.entries.push((e, false));
    }

    /// `first` hard-linked to `second`.
    pub(crate) fn push_linked(&mut self, first: squeue::Entry, second: squeue::Entry) {
        self.entries
            .push((first.flags(squeue::Flags::IO_HARDLINK), true));
        self.entries.push((second, false));
    }

    /// Moves every entry into the SQ, submitting when it is full.
    pub(crate) fn flush(&mut self, ring: &mut IoUring) -> io::Result<()> {
        let mut i = 0;
        while i < self.entries.len() {
            let mut sq = ring.submission();
            while i < self.entries.len() {
                let (e, linked) = &self.entries[i];
                if *linked && sq.capacity() - sq.len() < 2 {
                    break;
                }
                // SAFETY: every entry points only at memory and fds owned by a job in
                // the driver's table (or the driver's own wake buffer), which stays
                // alive, unmoved, until the entry's CQE has been reaped (the backend
                // contract; `Job::abandon` leaks rather than frees if the ring fails).
                if unsafe { sq.push(e) }.is_err() {
                    break;
                }
                i += 1;
            }
            drop(sq);
            if i < self.entries.len() {
                ring.submit()?;
            }
        }
        self.entries.clear();
        Ok(())
    }
}
