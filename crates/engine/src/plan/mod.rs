//! The transfer plan: the one transfer algorithm, pure (no syscalls), run by every
//! executor.
//!
//! A [`Plan`] holds a transfer's state: header/trailer bytes and how much of each went
//! out, body bytes taken from the source and delivered to the destination, offsets,
//! bytes sitting in the pipe, end of input, and the staging buffer of the buffered
//! strategy. [`Plan::next`] says what to do next as a [`Step`]; the executor carries the
//! step out (a syscall, an io_uring op, a readiness wait) and hands the result back to
//! [`Plan::complete`]: the bytes moved, or the errno. Nothing else changes the state.
//!
//! The rules that used to be written once per backend live here only:
//! * the body ends at `len` or at the first read of 0 (never at the size seen at
//!   submit); a source that ends before `len` fails with `UnexpectedEof` after every
//!   body byte it gave was delivered, and the trailer is then not sent;
//! * `MORE` (`MSG_MORE`/`SPLICE_F_MORE`) only while bytes are known to follow;
//! * `EAGAIN` waits for readiness of the side that was not ready, `EINTR` repeats
//!   the step, an errno that means "this way is unsupported" steps down to the next
//!   strategy without losing bytes, any other errno fails the transfer with it (a
//!   destination socket whose peer is gone is always `EPIPE`, see `failed`).

use std::io;

use crate::error::{kernel_error, TransferError};
use crate::resolved::{FdKind, Resolved};

mod memory;
mod sealed;
mod staging;
mod step;

use staging::Staging;
pub(crate) use step::{Caps, Side, SmallBody, Step, Strategy};

/// Most bytes one step asks for: a cancel or a deadline is checked between steps.
pub(crate) const STEP: u64 = 1 << 20;
/// `copy_file_range` moves file → file without a socket buffer in between: larger
/// steps (about 5 ms each here) cut the per-call cost and keep cancels prompt.
pub(crate) const FILE_STEP: u64 = 16 << 20;
/// Body room of the staging buffer when the body's size is not known in advance
/// (`len: None` on a file whose `fstat` size is 0, such as `/proc` files).
const MIN_STAGING: u64 = 4096;
/// The relay strategy's buffer (HAProxy's default `tune.bufsize`).
pub(crate) const RELAY_BUF: usize = 16 * 1024;
/// Reads in a row that fill the relay buffer before a flow moves to splice.
pub(crate) const RELAY_SWITCH: u32 = 3;

/// A transfer's state and its rules; see the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Plan {
    header: Vec<u8>,
    trailer: Vec<u8>,
    len: Option<u64>,
    /// Expected body size (len, else the file's bytes from the offset at submit).
    hint: Option<u64>,
    dst_kind: FdKind,
    /// A stream source that is still in blocking mode: poll before every fill so no
    /// io-wq worker or thread parks on it.
    poll_src_first: bool,
    strategy: Strategy,
    src_off: Option<u64>,
    dst_off: Option<u64>,
    header_sent: usize,
    trailer_sent: usize,
    /// Body bytes taken from src.
    read: u64,
    /// Body bytes delivered to dst.
    body: u64,
    in_pipe: usize,
    eof: bool,
    src_ready: bool,
    wait: Option<Side>,
    /// copy_file_range has not moved a byte yet (a first 0 then means "unsupported").
    first_copy: bool,
    /// Relay: reads in a row that filled the buffer.
    full_reads: u32,
    /// Relay: the last read was short, so the source is most likely empty: the next
    /// read waits for it first instead of being answered EAGAIN once per message.
    relay_drained: bool,
    staging: Staging,
    /// The sealed strategy's sealer and sealed bytes.
    sealing: Option<Box<sealed::Sealing>>,
    error: Option<io::Error>,
    /// Stopped from outside (cancel, timeout, shutdown): the error is built when
    /// taken, with the bytes delivered by then.
    stopped: Option<(io::ErrorKind, &'static str)>,
    done: bool,
    /// Writes that moved fewer bytes than asked (stats).
    short_writes: u64,
    /// Memory strategy: the body bytes memory holds for this transfer.
    memory_body: u64,
}

impl Plan {
    /// The plan of a checked transfer for an executor that can do `caps`, buffering
    /// file bodies of at most `small` bytes, which go out as `small_body` says.
    pub(crate) fn new(
        r: &Resolved,
        header: Vec<u8>,
        trailer: Vec<u8>,
        caps: Caps,
        (small_body, small): (SmallBody, u64),
    ) -> Plan {
        let src_file = r.src_kind == FdKind::File;
        let hint = match (r.len, r.src_avail) {
            (Some(l), Some(a)) => Some(l.min(a)),
            (Some(l), None) => Some(l),
            (None, a) => a,
        };
        let strategy = match (src_file, r.dst_kind) {
            (true, FdKind::Socket) if small_body == SmallBody::Memory && r.src_avail.is_some() => {
                Strategy::Memory
            }
            (true, FdKind::File) if caps.copy_range => Strategy::CopyRange,
            (true, FdKind::File) => Strategy::Splice,
            (true, _) if small_body == SmallBody::ZeroCopy && hint.is_some_and(|h| h <= small) => {
                Strategy::Sendfile
            }
            (true, _) if hint.is_some_and(|h| h <= small) => Strategy::Buffered,
            (true, _) if caps.sendfile => Strategy::Sendfile,
            (false, FdKind::Socket) if caps.relay && header.is_empty() && trailer.is_empty() => {
                Strategy::Relay
            }
            _ => Strategy::Splice,
        };
        let mut plan = Plan {
            header,
            trailer,
            len: r.len,
            hint,
            dst_kind: r.dst_kind,
            poll_src_first: !src_file && !r.src_nonblocking,
            strategy,
            src_off: r.src_off,
            dst_off: r.dst_off,
            header_sent: 0,
            trailer_sent: 0,
            read: 0,
            body: 0,
            in_pipe: 0,
            eof: false,
            src_ready: false,
            wait: None,
            first_copy: true,
            relay_drained: false,
            full_reads: 0,
            staging: Staging::default(),
            sealing: None,
            error: None,
            stopped: None,
            done: false,
            short_writes: 0,
            memory_body: 0,
        };
        if strategy == Strategy::Memory {
            let avail = r.src_avail.unwrap_or(0);
            plan.memory_body = r.len.map_or(avail, |l| l.min(avail));
        }
        if strategy == Strategy::Buffered {
            plan.stage_header();
        }
        // A relay's buffer is allocated by its first read (`next_relay`).
        plan
    }

    /// The strategy in use now.
    pub(crate) fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The header bytes (a `Header` step writes from these).
    pub(crate) fn header(&self) -> &[u8] {
        &self.header
    }

    /// The trailer bytes (a `Trailer` step writes from these).
    pub(crate) fn trailer(&self) -> &[u8] {
        &self.trailer
    }

    /// The staging buffer (a `Send` step writes from it): the sealed bytes for the
    /// sealed strategy.
    pub(crate) fn staging(&self) -> &[u8] {
        match self.strategy {
            Strategy::Sealed => self.sealed_out(),
            _ => &self.staging.buf,
        }
    }

    /// The staging buffer (a `Read` step reads into it). Its heap block never moves
    /// while the plan lives, so an io_uring op may point into it.
    pub(crate) fn staging_mut(&mut self) -> &mut [u8] {
        &mut self.staging.buf
    }

    /// Body bytes delivered to dst.
    pub(crate) fn body_bytes(&self) -> u64 {
        self.body
    }

    /// Header bytes written.
    pub(crate) fn header_bytes(&self) -> u64 {
        match self.strategy {
            Strategy::Buffered => (self.header.len() - self.staging.header) as u64,
            _ => self.header_sent as u64,
        }
    }

    /// Trailer bytes written.
    pub(crate) fn trailer_bytes(&self) -> u64 {
        self.trailer_sent as u64
    }

    /// Body bytes still expected from the source, as far as submit knew (`len`, else
    /// the file's size then); 0 when the next read is only to see the end.
    #[cfg_attr(not(ferry_uring), allow(dead_code))]
    pub(crate) fn expected_left(&self) -> Option<u64> {
        self.hint.map(|h| h.saturating_sub(self.read))
    }

    /// Bytes sitting in the pipe: a pipe holding any must never go back to the pool.
    pub(crate) fn in_pipe(&self) -> usize {
        self.in_pipe
    }

    /// The stream source was switched to non-blocking: no poll before each fill.
    pub(crate) fn src_became_nonblocking(&mut self) {
        self.poll_src_first = false;
    }

    /// The error the transfer failed with, once `next` said `Done`.
    pub(crate) fn take_error(&mut self) -> Option<io::Error> {
        if let Some((kind, why)) = self.stopped.take() {
            return Some(TransferError::io(kind, self.body, why));
        }
        self.error.take()
    }

    /// Writes that moved fewer bytes than asked and were continued.
    pub(crate) fn short_writes(&self) -> u64 {
        self.short_writes
    }

    /// Whether the plan has ended (succeeded, failed or stopped).
    #[cfg_attr(not(ferry_uring), allow(dead_code))]
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Whether bytes are known to follow `extra` more body bytes.
    fn more_after(&self, extra: u64) -> bool {
        !self.trailer.is_empty() || self.hint.is_some_and(|h| self.read + extra < h)
    }

    fn left(&self) -> u64 {
        self.len.map_or(u64::MAX, |l| l - self.read)
    }

    fn body_ended(&self) -> bool {
        self.eof || self.len.is_some_and(|l| self.read >= l)
    }

    fn fail(&mut self, e: io::Error) -> Step {
        self.error = Some(e);
        self.done = true;
        Step::Done
    }

    /// Fails a transfer from outside the plan (cancel, timeout, shutdown). Results of
    /// ops still in the kernel may follow: their bytes are counted, their errors
    /// ignored.
    pub(crate) fn stop(&mut self, kind: io::ErrorKind, why: &'static str) {
        if !self.done {
            self.stopped = Some((kind, why));
            self.done = true;
        }
    }

    /// The next step. Call again after each [`complete`](Self::complete).
    pub(crate) fn next(&mut self) -> Step {
        if self.done {
            return Step::Done;
        }
        if let Some(side) = self.wait {
            if side == Side::Src {
                self.release_idle_relay_buf();
                self.release_idle_sealed_bufs();
            }
            return Step::Poll(side);
        }
        if self.strategy == Strategy::Sealed {
            return self.next_sealed();
        }
        if self.strategy == Strategy::Buffered {
            return self.next_buffered();
        }
        if self.strategy == Strategy::Memory {
            return self.next_memory();
        }
        if self.strategy == Strategy::Relay {
            if let Some(step) = self.next_relay() {
                return step;
            }
        }
        if self.header_sent < self.header.len() {
            return Step::Header {
                from: self.header_sent,
                more: self.more_after(0),
                dst_off: self.dst_off,
            };
        }
        if self.in_pipe > 0 {
            return self.drain_step(self.in_pipe);
        }
        if !self.body_ended() {
            return self.body_step();
        }
        if let Some(e) = self.short_source() {
            return self.fail(e);
        }
        if self.trailer_sent < self.trailer.len() {
            return Step::Trailer {
                from: self.trailer_sent,
                dst_off: self.dst_off,
            };
        }
        self.done = true;
        Step::Done
    }

    /// `UnexpectedEof` when the source ended before `len`; raised only once all it
    /// gave is delivered (then `body == read`).
    fn short_source(&self) -> Option<io::Error> {
        let len = self.len?;
        (self.eof && self.read < len).then(|| {
            TransferError::io(
                io::ErrorKind::UnexpectedEof,
                self.body,
                format!("source ended before len ({len} bytes)"),
            )
        })
    }

    fn body_step(&mut self) -> Step {
        let src_off = self.src_off;
        match self.strategy {
            Strategy::Sendfile => Step::Sendfile {
                src_off: src_off.unwrap_or(0),
                len: self.left().min(STEP) as usize,
                more: self.more_after(self.left().min(STEP)),
            },
            Strategy::CopyRange => Step::CopyRange {
                src_off: src_off.unwrap_or(0),
                dst_off: self.dst_off.unwrap_or(0),
                len: self.left().min(FILE_STEP) as usize,
            },
            Strategy::Splice
            | Strategy::Buffered
            | Strategy::Relay
            | Strategy::Memory
            | Strategy::Sealed => {
                if self.poll_src_first && !self.src_ready {
                    return Step::Poll(Side::Src);
                }
                let cap = if self.dst_kind == FdKind::File {
                    FILE_STEP
                } else {
                    STEP
                };
                Step::Fill {
                    src_off,
                    max: self.left().min(cap) as usize,
                }
            }
        }
    }

    fn drain_step(&self, len: usize) -> Step {
        Step::Drain {
            len,
            more: !self.trailer.is_empty()
                || self.hint.is_some_and(|h| self.body + (len as u64) < h),
            dst_off: self.dst_off,
        }
    }

    /// The drain to link behind a fill of `fill_len` bytes from an empty pipe (io_uring
    /// hard-linked pairs): it moves whatever the fill produced.
    #[cfg_attr(not(ferry_uring), allow(dead_code))]
    pub(crate) fn linked_drain(&self, fill_len: usize) -> Step {
        Step::Drain {
            len: fill_len,
            more: self.more_after(fill_len as u64),
            dst_off: self.dst_off,
        }
    }

    /// Applies the result of `step`: the bytes it moved, or the errno it failed with
    /// (positive). A `Poll` completes with `Ok(_)` when the side is ready.
    pub(crate) fn complete(&mut self, step: Step, result: Result<usize, i32>) {
        let n = match result {
            Ok(n) => n,
            Err(_) if self.done => return, // stopped: the op's own error is moot
            Err(errno) => return self.failed(step, errno),
        };
        let asked = match step {
            Step::Header { from, .. } => self.header.len() - from,
            Step::Trailer { from, .. } => self.trailer.len() - from,
            Step::Send { len, .. } | Step::Drain { len, .. } => len,
            Step::Gather {
                header_from,
                body_len,
                trailer_from,
                ..
            } => self.header.len() - header_from + body_len + self.trailer.len() - trailer_from,
            _ => n,
        };
        self.short_writes += u64::from(n < asked);
        match step {
            Step::Header { .. } => {
                self.header_sent += n;
                self.advance_dst(n);
            }
            Step::Trailer { .. } => {
                self.trailer_sent += n;
                self.advance_dst(n);
            }
            Step::Read { .. } => {
                if self.strategy == Strategy::Relay {
                    let full = n == self.staging.buf.len();
                    self.full_reads = if full { self.full_reads + 1 } else { 0 };
                    self.relay_drained = !full;
                    self.src_ready = false;
                }
                if self.strategy == Strategy::Sealed {
                    // A stream read that filled the buffer: bulky, read bigger batches.
                    let full = self.staging.end + n == self.staging.buf.len();
                    self.full_reads = if full { self.full_reads + 1 } else { 0 };
                    self.src_ready = false;
                }
                if n == 0 {
                    self.eof = true;
                } else {
                    self.staging.end += n;
                    self.staging.body += n;
                    self.took(n);
                }
            }
            Step::Send { .. } if self.strategy == Strategy::Sealed => self.sent_sealed(n),
            Step::Send { .. } => self.sent_staged(n),
            Step::Gather { .. } => self.sent_gathered(n),
            Step::Sendfile { .. } => self.moved_direct(n),
            Step::CopyRange { .. } => {
                if n == 0 && self.first_copy && self.hint.is_some_and(|h| h > 0) {
                    // A first 0 below the known end: unsupported here (old kernels, /proc).
                    self.strategy = Strategy::Splice;
                } else {
                    self.first_copy = false;
                    self.moved_direct(n);
                }
            }
            Step::Fill { .. } => {
                if n == 0 {
                    self.eof = true;
                } else {
                    self.in_pipe += n;
                    self.took(n);
                }
                self.src_ready = false;
            }
            Step::Drain { .. } => {
                if n == 0 && self.in_pipe > 0 && !self.done {
                    let e = TransferError::io(
                        io::ErrorKind::WriteZero,
                        self.body,
                        "splice into dst moved 0 bytes",
                    );
                    self.fail(e);
                    return;
                }
                let n = n.min(self.in_pipe);
                self.in_pipe -= n;
                self.delivered(n);
            }
            Step::Poll(side) => {
                self.wait = None;
                if side == Side::Src {
                    self.src_ready = true;
                }
            }
            Step::Done => {}
        }
    }

    /// The result of a drain hard-linked behind a fill: an empty pipe's `EAGAIN`
    /// (the fill moved nothing) and a cancelled link are not errors.
    #[cfg_attr(not(ferry_uring), allow(dead_code))]
    pub(crate) fn complete_linked_drain(&mut self, step: Step, result: Result<usize, i32>) {
        match result {
            Ok(0) => {}
            Err(libc::EAGAIN) if self.in_pipe == 0 => {}
            Err(libc::ECANCELED) => {}
            r => self.complete(step, r),
        }
    }

    fn took(&mut self, n: usize) {
        self.read += n as u64;
        if let Some(o) = &mut self.src_off {
            *o += n as u64;
        }
    }

    fn delivered(&mut self, n: usize) {
        self.body += n as u64;
        self.advance_dst(n);
    }

    fn advance_dst(&mut self, n: usize) {
        if let Some(o) = &mut self.dst_off {
            *o += n as u64;
        }
    }

    /// sendfile / copy_file_range: read and delivered at once; 0 is end of input.
    fn moved_direct(&mut self, n: usize) {
        if n == 0 {
            self.eof = true;
        } else {
            self.took(n);
            self.delivered(n);
        }
    }

    fn failed(&mut self, step: Step, errno: i32) {
        match errno {
            libc::EINTR => {} // PEP 475: the same step again
            libc::EAGAIN => {
                self.wait = Some(match step {
                    Step::Read { .. } | Step::Fill { .. } => Side::Src,
                    Step::Poll(side) => side,
                    _ => Side::Dst,
                });
            }
            // The kernel cannot do this here: the next way, no byte lost.
            // (An executor without sendfile says EOPNOTSUPP: the inline attempt may
            // have sent part of the body with it; splice goes on from the offset.)
            libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP
                if matches!(step, Step::Sendfile { .. }) =>
            {
                self.strategy = Strategy::Splice;
            }
            libc::EXDEV | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | libc::EPERM
                if matches!(step, Step::CopyRange { .. }) =>
            {
                self.strategy = Strategy::Splice;
            }
            // The peer of a destination socket is gone. The kernel says ECONNRESET to
            // the one write that first notices a reset and EPIPE to every later one,
            // so which a transfer saw depended on timing (a linked splice's partial
            // write can swallow the ECONNRESET). One answer on every executor: EPIPE.
            libc::ECONNRESET if self.dst_kind == FdKind::Socket && step.writes_dst() => {
                let e = kernel_error(libc::EPIPE, self.body);
                self.fail(e);
            }
            _ => {
                let e = kernel_error(errno, self.body);
                self.fail(e);
            }
        }
    }
}

#[cfg(test)]
mod tests;
