//! `socket_sendfile`: Python's `socket.sendfile` rules on real sockets.
mod common;
use common::*;

use ferry_compat::socket_sendfile;
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn whole_file_from_offset_ignoring_the_current_position() {
    let _g = serial();
    let data = pattern(3 << 20);
    let mut f = file_with(&data);
    f.seek(SeekFrom::Start(12345)).unwrap();
    let (c, s) = tcp_pair();
    let rx = drain(s);
    assert_eq!(
        socket_sendfile(&c, &mut f, 100, None).unwrap(),
        data.len() as u64 - 100
    );
    assert_eq!(f.stream_position().unwrap(), data.len() as u64);
    drop(c);
    assert_eq!(rx.join().unwrap(), &data[100..]);
}

#[test]
fn count_limits_and_past_eof_stops_at_eof() {
    let _g = serial();
    let data = pattern(10_000);
    let mut f = file_with(&data);
    let (c, s) = tcp_pair();
    let rx = drain(s);
    assert_eq!(socket_sendfile(&c, &mut f, 100, Some(50)).unwrap(), 50);
    assert_eq!(f.stream_position().unwrap(), 150);
    assert_eq!(socket_sendfile(&c, &mut f, 9000, Some(5000)).unwrap(), 1000);
    assert_eq!(f.stream_position().unwrap(), 10_000);
    drop(c);
    let got = rx.join().unwrap();
    assert_eq!(&got[..50], &data[100..150]);
    assert_eq!(&got[50..], &data[9000..]);
}

#[test]
fn a_pipe_source_falls_back_to_read_and_send() {
    let _g = serial();
    let data = pattern(500_000);
    let (r, mut w) = std::io::pipe().unwrap();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || w.write_all(&data).unwrap())
    };
    let mut rf = std::fs::File::from(std::os::fd::OwnedFd::from(r));
    let (c, s) = tcp_pair();
    let rx = drain(s);
    assert_eq!(
        socket_sendfile(&c, &mut rf, 0, Some(400_000)).unwrap(),
        400_000
    );
    drop(c);
    assert_eq!(rx.join().unwrap(), &data[..400_000]);
    // An offset cannot be honoured on a pipe: ESPIPE, as Python's file.seek raises.
    let (c2, _s2) = tcp_pair();
    let e = socket_sendfile(&c2, &mut rf, 5, None).unwrap_err();
    assert_eq!(errno(&e), libc::ESPIPE);
    drop(rf);
    writer.join().unwrap_or(());
}

#[test]
fn argument_errors_are_invalid_input_and_leak_nothing() {
    let _g = serial();
    let before = fd_count();
    let mut f = file_with(&pattern(100));
    let (c, _s) = tcp_pair();
    let e = socket_sendfile(&c, &mut f, 0, Some(0)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("count"), "{e}");

    c.set_nonblocking(true).unwrap();
    let e = socket_sendfile(&c, &mut f, 0, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("non-blocking"), "{e}");
    // ... except an empty regular file, which returns 0 first (as Python).
    let mut empty = tempfile::tempfile().unwrap();
    assert_eq!(socket_sendfile(&c, &mut empty, 0, None).unwrap(), 0);

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = socket_sendfile(&udp, &mut f, 0, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("SOCK_STREAM"), "{e}");

    let (_r, w) = std::io::pipe().unwrap();
    let e = socket_sendfile(&w, &mut f, 0, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not a socket"), "{e}");

    let e = socket_sendfile(&_s, &mut f, u64::MAX, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        f.stream_position().unwrap(),
        0,
        "errors before sending keep the position"
    );
    drop((f, c, _s, empty, udp, _r, w));
    assert_eq!(fd_count(), before);
}

#[test]
fn seqpacket_passes_the_stream_check_like_python() {
    let _g = serial();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut f = file_with(b"abc");
    let rx = drain(b);
    assert_eq!(socket_sendfile(&a, &mut f, 0, None).unwrap(), 3);
    drop(a);
    assert_eq!(rx.join().unwrap(), b"abc");
    // A real SOCK_SEQPACKET pair: `type & SOCK_STREAM` is non-zero, so it is accepted.
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two fds into `fds`.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0);
    // SAFETY: both fds were just created and are owned here.
    let (x, y) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let mut f = file_with(b"seq");
    let n = socket_sendfile(&x, &mut f, 0, None).unwrap();
    assert_eq!(n, 3);
    let mut buf = [0u8; 8];
    let got = nix_read(&y, &mut buf);
    assert_eq!(&buf[..got], b"seq");
}

fn nix_read(fd: &impl std::os::fd::AsRawFd, buf: &mut [u8]) -> usize {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0);
    n as usize
}

#[test]
fn write_timeout_gives_timed_out_and_the_position_tells_what_was_sent() {
    let _g = serial();
    let before = fd_count();
    let data = pattern(64 << 20);
    let mut f = file_with(&data);
    let (c, s) = tcp_pair();
    c.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let e = socket_sendfile(&c, &mut f, 1000, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
    let pos = f.stream_position().unwrap();
    assert!(
        pos > 1000,
        "some bytes went out before the receiver stalled"
    );
    drop(c);
    let got = drain(s).join().unwrap();
    assert_eq!(
        got.len() as u64,
        pos - 1000,
        "position = offset + bytes sent"
    );
    assert_eq!(&got[..], &data[1000..pos as usize]);
    drop(f);
    assert_eq!(fd_count(), before);
}

#[test]
fn peer_gone_is_an_error_with_the_position_set() {
    let _g = serial();
    let data = pattern(32 << 20);
    let mut f = file_with(&data);
    let (c, s) = tcp_pair();
    reset_on_close(&s);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let _ = std::io::Read::read(&mut &s, &mut buf);
        drop(s); // reset with unread data
    });
    let e = socket_sendfile(&c, &mut f, 0, None).unwrap_err();
    reader.join().unwrap();
    assert!(matches!(errno(&e), libc::EPIPE | libc::ECONNRESET), "{e:?}");
    let pos = f.stream_position().unwrap();
    assert!(pos > 0 && pos < data.len() as u64);
}

#[test]
fn fallback_send_to_a_dead_peer_is_epipe_not_sigpipe() {
    let _g = serial();
    let (r, mut w) = std::io::pipe().unwrap();
    let mut rf = std::fs::File::from(std::os::fd::OwnedFd::from(r));
    let (c, s) = tcp_pair();
    reset_on_close(&s);
    drop(s);
    std::thread::sleep(Duration::from_millis(20));
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&pattern(1 << 20)); // stops with EPIPE once `rf` is dropped
    });
    let e = socket_sendfile(&c, &mut rf, 0, None).unwrap_err();
    assert!(matches!(errno(&e), libc::EPIPE | libc::ECONNRESET), "{e:?}");
    drop(rf);
    writer.join().unwrap();
}
