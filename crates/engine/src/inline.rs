//! The optimistic inline path: a small file body into a socket is sent from the
//! submitting thread when the socket has room, and only what does not fit goes to a
//! backend. This removes the two thread hand-offs (to a ring or worker thread and back)
//! that otherwise dominate small responses; see docs/engine.md for the numbers.
//!
//! * Non-blocking socket with a header: `send(header, MSG_MORE|MSG_DONTWAIT|MSG_NOSIGNAL)`,
//!   `sendfile(body)`, `send(trailer)`: zero-copy, two syscalls without a trailer. The
//!   header send reports a dead peer as EPIPE before `sendfile` could raise SIGPIPE.
//! * Otherwise (a blocking socket, where `sendfile` could block the caller, or no
//!   header): `pread` the body into a buffer after the header and send header | body |
//!   trailer in one `send(MSG_DONTWAIT|MSG_NOSIGNAL)`.
//!
//! Whatever went out is reported as [`Sent`]; the engine turns the rest into an
//! ordinary, smaller transfer for the backend (remaining header, body from the advanced
//! offset, remaining trailer).

use std::io;
use std::time::Instant;

use crate::transfer::{FdKind, Plan};

/// Most header + trailer bytes sent inline (the body is bounded by `small_threshold`).
pub(crate) const INLINE_MAX_FRAMING: usize = 64 * 1024;

/// Bytes of each part already sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sent {
    pub header: u64,
    pub body: u64,
    pub trailer: u64,
}

pub(crate) enum Inline {
    /// Not attempted.
    Skipped,
    /// Attempted: `sent` went out; `complete` when that is everything.
    Progress {
        sent: Sent,
        complete: bool,
        started: Instant,
    },
    /// Failed before any byte went out (e.g. EPIPE): the transfer fails with this.
    Failed(io::Error, Instant),
}

/// Runs a syscall returning `ssize_t`, retrying while it fails with EINTR.
fn retry_eintr(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn send(fd: i32, buf: &[u8], more: bool) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: `buf` is valid for reads of its length; the caller's Arc keeps the fd open.
    retry_eintr(|| unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) })
}

pub(crate) fn attempt(plan: &Plan, header: &[u8], trailer: &[u8], threshold: u64) -> Inline {
    let Some(body) = plan.body_hint() else {
        return Inline::Skipped;
    };
    let total = header.len() as u64 + body + trailer.len() as u64;
    if plan.src_kind != FdKind::File
        || plan.dst_kind != FdKind::Socket
        || body > threshold
        || header.len() + trailer.len() > INLINE_MAX_FRAMING
        || total == 0
    {
        return Inline::Skipped;
    }
    let started = Instant::now();
    let mut sent = Sent::default();
    // Zero-copy only behind a header sent with MSG_NOSIGNAL: a dead peer then shows as
    // EPIPE there, before `sendfile` (which has no MSG_NOSIGNAL) could raise SIGPIPE in
    // the caller's thread. Without a header: pread + send(MSG_NOSIGNAL).
    let result = if plan.dst_nonblocking_before == Some(true) && !header.is_empty() {
        zero_copy(plan, header, body, trailer, &mut sent)
    } else {
        buffered(plan, header, body, trailer, &mut sent)
    };
    let complete = sent.header == header.len() as u64
        && sent.body == body
        && sent.trailer == trailer.len() as u64;
    match result {
        Err(e) if sent == Sent::default() && e.kind() != io::ErrorKind::WouldBlock => {
            Inline::Failed(e, started)
        }
        // After progress (or on EAGAIN) the backend continues and reports any error.
        _ => Inline::Progress {
            sent,
            complete,
            started,
        },
    }
}

fn zero_copy(
    plan: &Plan,
    header: &[u8],
    body: u64,
    trailer: &[u8],
    sent: &mut Sent,
) -> io::Result<()> {
    let fd = plan.dst_fd;
    if !header.is_empty() {
        let n = send(fd, header, body > 0 || !trailer.is_empty())?;
        sent.header = n as u64;
        if n < header.len() {
            return Ok(());
        }
    }
    let off = plan.src_off.unwrap_or(0);
    while sent.body < body {
        let want = (body - sent.body) as usize;
        let mut o = (off + sent.body) as libc::off_t;
        // SAFETY: `o` is a live local offset; both fds are held by the caller's Arcs.
        let n = retry_eintr(|| unsafe { libc::sendfile(fd, plan.src_fd, &mut o, want) })?;
        if n == 0 {
            return Ok(()); // file shorter than expected: the backend reports it
        }
        sent.body += n as u64;
    }
    if !trailer.is_empty() {
        sent.trailer = send(fd, trailer, false)? as u64;
    }
    Ok(())
}

fn buffered(
    plan: &Plan,
    header: &[u8],
    body: u64,
    trailer: &[u8],
    sent: &mut Sent,
) -> io::Result<()> {
    let (h, b) = (header.len(), body as usize);
    let mut buf = vec![0u8; h + b + trailer.len()];
    buf[..h].copy_from_slice(header);
    let off = plan.src_off.unwrap_or(0);
    let mut got = 0usize;
    while got < b {
        let want = &mut buf[h + got..h + b];
        let at = (off + got as u64) as libc::off_t;
        // SAFETY: `want` is valid for writes of its length; the fd is held by the caller's Arc.
        let n = retry_eintr(|| unsafe {
            libc::pread(plan.src_fd, want.as_mut_ptr().cast(), want.len(), at)
        });
        let Ok(n @ 1..) = n else {
            return Ok(()); // EOF or error, nothing sent: the backend reports it properly
        };
        got += n;
    }
    buf[h + b..].copy_from_slice(trailer);
    let n = send(plan.dst_fd, &buf, false)? as u64;
    sent.header = n.min(h as u64);
    sent.body = (n - sent.header).min(body);
    sent.trailer = n - sent.header - sent.body;
    Ok(())
}
