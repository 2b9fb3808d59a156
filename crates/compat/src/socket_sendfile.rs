//! `socket_sendfile` (Python's `socket.socket.sendfile`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use crate::sys;
use crate::sys::common::{fstat, get_fl, getsockopt_int, poll, send_timeout, write_nosignal, Kind};
use crate::util::invalid;

/// Largest block per `sendfile` call, as CPython (`2**30`).
const BLOCK: u64 = 1 << 30;
/// Buffer of the read+send fallback (CPython uses 8 KiB; 64 KiB halves the syscalls).
const FALLBACK_BUF: usize = 64 * 1024;

/// Sends `file` from `offset` until end of file or `count` bytes over the stream socket
/// `sock`, zero-copy where possible; returns the bytes sent.
///
/// Follows Python's `socket.socket.sendfile`:
/// * `sendfile(2)` is used for a regular file; a non-regular file (pipe, character
///   device), or a first `sendfile` call that fails before sending anything, falls back
///   to `read` + `send` with the same result;
/// * the data starts at `offset` whatever the file's position; afterwards — on success
///   *and on error* — the position is `offset + bytes sent` (seekable files only), so
///   after an error `file.stream_position()? - offset` tells how much went out;
/// * stops at end of file even if `count` is larger; an empty regular file returns 0;
/// * `sock` must be a blocking stream socket (`SOCK_STREAM`; `SOCK_SEQPACKET` passes
///   Python's `type & SOCK_STREAM` check too): a non-blocking socket, a non-stream
///   socket, a non-socket or `count == Some(0)` is `InvalidInput`;
/// * when the socket has a write timeout (`SO_SNDTIMEO`, what
///   `TcpStream::set_write_timeout` sets) and a wait for writability exceeds it, the call
///   fails with `TimedOut`; the timeout applies to each wait, not the whole transfer.
///
/// The fallback's writes use `MSG_NOSIGNAL`, so a dead peer gives `EPIPE`, not SIGPIPE.
/// The `sendfile(2)` path itself can still raise SIGPIPE in the kernel (there is no flag
/// for it); Rust programs ignore SIGPIPE by default, hosts embedding this from C or
/// Python should too.
///
/// ```
/// use std::io::{Read, Seek, Write};
/// use std::net::{TcpListener, TcpStream};
/// let mut file = tempfile::tempfile()?;
/// file.write_all(&[7u8; 100_000])?;
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let client = TcpStream::connect(listener.local_addr()?)?;
/// let (mut server, _) = listener.accept()?;
/// let reader = std::thread::spawn(move || {
///     let mut v = Vec::new();
///     server.read_to_end(&mut v).map(|_| v)
/// });
/// let sent = ferry_compat::socket_sendfile(&client, &mut file, 1000, None)?;
/// assert_eq!(sent, 99_000);
/// assert_eq!(file.stream_position()?, 100_000);
/// drop(client);
/// assert_eq!(reader.join().unwrap()?.len(), 99_000);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [sendfile(2)](https://man7.org/linux/man-pages/man2/sendfile.2.html),
/// [send(2)](https://man7.org/linux/man-pages/man2/send.2.html),
/// [Python `socket.sendfile`](https://docs.python.org/3/library/socket.html#socket.socket.sendfile)
pub fn socket_sendfile(
    sock: impl AsFd,
    file: &mut File,
    offset: u64,
    count: Option<u64>,
) -> io::Result<u64> {
    let sock = sock.as_fd();
    check_stream_socket(sock)?;
    if count == Some(0) {
        return Err(invalid(
            "count",
            "must be positive (None means until end of file)",
        ));
    }
    if offset > i64::MAX as u64 {
        return Err(invalid(
            "offset",
            &format!("{offset} is larger than i64::MAX"),
        ));
    }
    let stat = fstat(file.as_fd()).ok();
    if let Some(st) = stat.as_ref().filter(|s| s.kind == Kind::Regular) {
        if st.size == 0 {
            return Ok(0); // as Python: before the blocking check
        }
        check_blocking(sock)?;
        let mut sent = 0u64;
        let res = use_sendfile(sock, file, offset, count, st.size, &mut sent);
        match res {
            // Python's _GiveupOnSendfile: the first call failed, nothing went out.
            Err(ref e) if sent == 0 && e.kind() != io::ErrorKind::TimedOut => {}
            _ => {
                set_position(file, offset, sent, true);
                return res.map(|()| sent);
            }
        }
    }
    check_blocking(sock)?;
    let seekable = stat.is_some_and(|s| matches!(s.kind, Kind::Regular | Kind::Block));
    if seekable {
        file.seek(SeekFrom::Start(offset))?;
    } else if offset != 0 {
        return Err(io::Error::from_raw_os_error(libc::ESPIPE)); // as `file.seek` would
    }
    let mut sent = 0u64;
    let res = use_send(sock, file, count, &mut sent);
    set_position(file, offset, sent, seekable);
    res.map(|()| sent)
}

fn check_stream_socket(sock: BorrowedFd<'_>) -> io::Result<()> {
    match getsockopt_int(sock, libc::SO_TYPE) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
            Err(invalid("sock", "is not a socket"))
        }
        Err(e) => Err(e),
        Ok(ty) if ty & libc::SOCK_STREAM == 0 => {
            Err(invalid("sock", "must be a SOCK_STREAM socket"))
        }
        Ok(_) => Ok(()),
    }
}

fn check_blocking(sock: BorrowedFd<'_>) -> io::Result<()> {
    if get_fl(sock)? & libc::O_NONBLOCK != 0 {
        return Err(invalid("sock", "non-blocking sockets are not supported"));
    }
    Ok(())
}

fn set_position(file: &mut File, offset: u64, sent: u64, seekable: bool) {
    if seekable {
        // Best effort, as Python's `finally: file.seek(...)`; a failing seek here would
        // hide the transfer's own result.
        let _ = file.seek(SeekFrom::Start(offset + sent));
    }
}

/// Waits for writability; `TimedOut` when the socket's timeout elapses first.
fn wait_writable(sock: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<()> {
    let ms = timeout.map_or(-1, |d| d.as_millis().clamp(1, i32::MAX as u128) as i32);
    if poll(sock, libc::POLLOUT, ms)? {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    }
}

/// `EAGAIN` on a blocking socket: with a write timeout set, it elapsed inside the call
/// (`SO_SNDTIMEO`); without one, wait for writability and try again.
fn timed_out_or_wait(sock: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<()> {
    match timeout {
        Some(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
        None => wait_writable(sock, None),
    }
}

fn use_sendfile(
    sock: BorrowedFd<'_>,
    file: &File,
    mut offset: u64,
    count: Option<u64>,
    fsize: u64,
    sent: &mut u64,
) -> io::Result<()> {
    let timeout = send_timeout(sock)?;
    loop {
        if timeout.is_some() {
            wait_writable(sock, timeout)?;
        }
        let block = match count {
            Some(c) if c <= *sent => return Ok(()),
            Some(c) => (c - *sent).min(BLOCK),
            None => fsize.min(BLOCK),
        };
        match sys::sendfile(sock, file.as_fd(), Some(offset as i64), block as usize) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                offset += n as u64;
                *sent += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => timed_out_or_wait(sock, timeout)?,
            Err(e) => return Err(e),
        }
    }
}

fn use_send(
    sock: BorrowedFd<'_>,
    file: &mut File,
    count: Option<u64>,
    sent: &mut u64,
) -> io::Result<()> {
    let timeout = send_timeout(sock)?;
    let mut buf = vec![0u8; FALLBACK_BUF];
    loop {
        let want = match count {
            Some(c) if c <= *sent => return Ok(()),
            Some(c) => (c - *sent).min(FALLBACK_BUF as u64) as usize,
            None => FALLBACK_BUF,
        };
        let n = loop {
            match file.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Ok(());
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            match write_nosignal(sock, data) {
                Ok(k) => {
                    *sent += k as u64;
                    data = &data[k..];
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    timed_out_or_wait(sock, timeout)?
                }
                Err(e) => return Err(e),
            }
        }
    }
}
