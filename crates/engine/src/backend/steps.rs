//! Carrying out one plan step with one system call: shared by the blocking workers
//! and the inline attempt on the submitting thread (`nowait`: only calls that cannot
//! block — `MSG_DONTWAIT` sends and `RWF_NOWAIT` reads — and `EAGAIN` otherwise).

use std::os::fd::{AsFd, BorrowedFd};

use ferry_compat::SpliceFlags;
use ferry_pipes::PipePool;

use crate::error::errno_of;
use crate::job::Job;
use crate::plan::Step;
use crate::resolved::FdKind;
use crate::sys;

fn errno<T>(r: std::io::Result<T>) -> Result<T, i32> {
    r.map_err(|e| errno_of(&e))
}

/// Writes to dst: `send` on sockets (never SIGPIPE), `pwrite`/`write` elsewhere.
fn write_dst(
    dst: BorrowedFd<'_>,
    kind: FdKind,
    buf: &[u8],
    more: bool,
    off: Option<u64>,
    nowait: bool,
) -> Result<usize, i32> {
    match kind {
        FdKind::Socket => sys::send(dst, buf, more, nowait),
        _ if nowait => Err(libc::EAGAIN),
        _ => sys::write_at(dst, buf, off),
    }
}

/// Carries out `step` (not `Poll` or `Done`, which the executor handles) and returns
/// what the plan's `complete` takes. `Gather` never waits, whatever `nowait` says.
pub(crate) fn run(job: &mut Job, step: Step, pool: &PipePool, nowait: bool) -> Result<usize, i32> {
    let (src, dst, dk) = (job.src.as_fd(), job.dst.as_fd(), job.dst_kind);
    match step {
        Step::Header {
            from,
            more,
            dst_off,
        } => write_dst(dst, dk, &job.plan.header()[from..], more, dst_off, nowait),
        Step::Trailer { from, dst_off } => {
            write_dst(dst, dk, &job.plan.trailer()[from..], false, dst_off, nowait)
        }
        Step::Send {
            at,
            len,
            more,
            dst_off,
        } => write_dst(
            dst,
            dk,
            &job.plan.staging()[at..at + len],
            more,
            dst_off,
            nowait,
        ),
        Step::Gather {
            header_from,
            body_off,
            body_len,
            trailer_from,
        } => {
            let m = job.memory.as_deref().unwrap_or(&[]);
            let start = (body_off as usize).min(m.len());
            let end = start.saturating_add(body_len).min(m.len());
            sys::send_gather(
                dst,
                [
                    &job.plan.header()[header_from..],
                    &m[start..end],
                    &job.plan.trailer()[trailer_from..],
                ],
            )
        }
        Step::Read { src_off, at, len } => {
            let buf = &mut job.plan.staging_mut()[at..at + len];
            match (nowait, src_off) {
                (true, Some(off)) => sys::pread_nowait(src, buf, off),
                (true, None) => Err(libc::EAGAIN),
                (false, off) => sys::read_at(src, buf, off),
            }
        }
        // Inline, only on a non-blocking socket with the body in the page cache.
        Step::Sendfile { src_off, len, .. } => errno(sys::sendfile(dst, src, Some(src_off), len)),
        _ if nowait => Err(libc::EAGAIN),
        Step::CopyRange {
            src_off,
            dst_off,
            len,
        } => errno(sys::copy_file_range(
            src,
            dst,
            len,
            Some(src_off),
            Some(dst_off),
        )),
        Step::Fill { src_off, max } => {
            if job.pipe.is_none() {
                job.pipe = Some(errno(pool.get())?);
            }
            let pipe = job.pipe.as_ref().expect("pipe just taken");
            let len = max.min(pipe.size());
            errno(sys::splice(
                src,
                pipe.writer(),
                len,
                src_off,
                None,
                SpliceFlags::NONBLOCK,
            ))
        }
        Step::Drain { len, more, dst_off } => {
            let Some(pipe) = job.pipe.as_ref() else {
                return Err(libc::EINVAL); // the plan drains only after a fill
            };
            let mut flags = SpliceFlags::NONBLOCK;
            if more {
                flags |= SpliceFlags::MORE;
            }
            errno(sys::splice(pipe.reader(), dst, len, None, dst_off, flags))
        }
        Step::Poll(_) | Step::Done => Ok(0),
    }
}
