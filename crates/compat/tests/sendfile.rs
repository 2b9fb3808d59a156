//! `sendfile` and `sendfile_with` on real files, pipes and loopback sockets.
mod common;
use common::*;

use ferry_compat::{sendfile, sendfile_with, SendfileFlags};
use std::io::{ErrorKind, IoSlice, Read, Seek, SeekFrom};

#[test]
fn offset_none_reads_from_and_advances_the_position() {
    let _g = serial();
    let data = pattern(300_000);
    let mut f = file_with(&data);
    f.seek(SeekFrom::Start(1000)).unwrap();
    let (c, s) = tcp_pair();
    let rx = drain(s);
    let mut sent = 0;
    while sent < 200_000 {
        let n = sendfile(&c, &f, None, 200_000 - sent).unwrap();
        assert!(n > 0);
        sent += n;
    }
    assert_eq!(f.stream_position().unwrap(), 201_000);
    drop(c);
    assert_eq!(rx.join().unwrap(), &data[1000..201_000]);
}

#[test]
fn explicit_offset_leaves_the_position_alone() {
    let _g = serial();
    let data = pattern(100_000);
    let mut f = file_with(&data);
    f.seek(SeekFrom::Start(1000)).unwrap();
    let (mut r, w) = std::io::pipe().unwrap();
    assert_eq!(sendfile(&w, &f, Some(5000), 4096).unwrap(), 4096);
    assert_eq!(f.stream_position().unwrap(), 1000);
    assert_eq!(read_n(&mut r, 4096), &data[5000..9096]);
}

#[test]
fn count_zero_returns_zero_and_moves_nothing() {
    let _g = serial();
    let f = file_with(&pattern(10));
    let (mut f2, (r, w)) = (f.try_clone().unwrap(), std::io::pipe().unwrap());
    assert_eq!(sendfile(&w, &f, None, 0).unwrap(), 0);
    assert_eq!(sendfile(&w, &f, Some(3), 0).unwrap(), 0);
    assert_eq!(f2.stream_position().unwrap(), 0);
    ferry_compat::set_blocking(&r, false).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        (&r).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "nothing reached the pipe"
    );
}

#[test]
fn end_of_file_gives_zero() {
    let _g = serial();
    let mut f = file_with(&pattern(100));
    f.seek(SeekFrom::End(0)).unwrap();
    let (_r, w) = std::io::pipe().unwrap();
    assert_eq!(sendfile(&w, &f, None, 10).unwrap(), 0);
    assert_eq!(sendfile(&w, &f, Some(100), 10).unwrap(), 0);
    assert_eq!(sendfile(&w, &f, Some(1 << 40), 10).unwrap(), 0);
}

#[test]
fn huge_count_is_clamped_not_rejected() {
    let _g = serial();
    let data = pattern(50_000);
    let f = file_with(&data);
    let (c, s) = tcp_pair();
    let rx = drain(s);
    assert_eq!(sendfile(&c, &f, Some(0), usize::MAX).unwrap(), 50_000);
    drop(c);
    assert_eq!(rx.join().unwrap(), data);
}

#[test]
fn offset_past_i64_max_is_invalid_input_naming_the_argument() {
    let _g = serial();
    let before = fd_count();
    let f = file_with(b"x");
    let (_r, w) = std::io::pipe().unwrap();
    let e = sendfile(&w, &f, Some(i64::MAX as u64 + 1), 1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("offset"), "{e}");
    drop((f, w, _r));
    assert_eq!(fd_count(), before);
}

#[test]
fn pipe_as_source_is_einval() {
    let _g = serial();
    let before = fd_count();
    let (r, w) = std::io::pipe().unwrap();
    let (c, s) = tcp_pair();
    assert_eq!(
        errno(&sendfile(&c, &r, None, 10).unwrap_err()),
        libc::EINVAL
    );
    drop((r, w, c, s));
    assert_eq!(fd_count(), before);
}

/// Linux 6.x accepts a socket as sendfile's source (it has splice_read); older kernels
/// and the man page say EINVAL. We pass the kernel's behaviour through.
#[test]
fn socket_as_source_reads_what_is_there() {
    let _g = serial();
    use std::io::Write;
    let (mut c, s) = tcp_pair();
    let (r, w) = std::io::pipe().unwrap();
    c.write_all(b"from a socket").unwrap();
    let mut got = 0;
    while got < 13 {
        got += sendfile(&w, &s, None, 100).unwrap();
    }
    assert_eq!(read_n(&r, 13), b"from a socket");
}

#[test]
fn file_to_file_works() {
    let _g = serial();
    let data = pattern(70_000);
    let src = file_with(&data);
    let mut dst = tempfile::tempfile().unwrap();
    assert_eq!(sendfile(&dst, &src, Some(0), 70_000).unwrap(), 70_000);
    dst.rewind().unwrap();
    let mut got = Vec::new();
    dst.read_to_end(&mut got).unwrap();
    assert_eq!(got, data);
}

#[test]
fn nonblocking_socket_returns_partial_then_would_block_keeping_the_position_exact() {
    let _g = serial();
    let data = pattern(16 << 20);
    let mut f = file_with(&data);
    let (c, s) = tcp_pair();
    c.set_nonblocking(true).unwrap();
    let mut sent = 0usize;
    let err = loop {
        match sendfile(&c, &f, None, data.len() - sent) {
            Ok(0) => panic!("EOF before the socket filled up"),
            Ok(n) => sent += n,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(sent > 0 && sent < data.len());
    assert_eq!(f.stream_position().unwrap(), sent as u64);
    drop(c);
    let got = drain(s).join().unwrap();
    assert_eq!(got, &data[..sent]);
}

#[test]
fn headers_body_trailers_arrive_in_order_and_are_all_counted() {
    let _g = serial();
    let data = pattern(200_000);
    let f = file_with(&data);
    let (c, s) = tcp_pair();
    let rx = drain(s);
    let n = sendfile_with(
        &c,
        &f,
        Some(10),
        150_000,
        &[IoSlice::new(b"HTTP/1.1 200 OK\r\n"), IoSlice::new(b"\r\n")],
        &[IoSlice::new(b"--trailer--")],
        SendfileFlags::NODISKIO | SendfileFlags::SYNC,
    )
    .unwrap();
    assert_eq!(n, 19 + 150_000 + 11);
    drop(c);
    let mut want = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    want.extend_from_slice(&data[10..150_010]);
    want.extend_from_slice(b"--trailer--");
    assert_eq!(rx.join().unwrap(), want);
}

#[test]
fn sendfile_with_count_zero_sends_headers_and_trailers_only() {
    let _g = serial();
    let f = file_with(&pattern(100));
    let (mut r, w) = std::io::pipe().unwrap();
    let n = sendfile_with(
        &w,
        &f,
        None,
        0,
        &[IoSlice::new(b"h")],
        &[IoSlice::new(b"t")],
        SendfileFlags::empty(),
    )
    .unwrap();
    assert_eq!(n, 2);
    drop(w);
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ht");
}

#[test]
fn sendfile_with_stops_body_at_eof_then_sends_trailers() {
    let _g = serial();
    let data = pattern(1000);
    let mut f = file_with(&data);
    let (mut r, w) = std::io::pipe().unwrap();
    let n = sendfile_with(
        &w,
        &f,
        None,
        5000,
        &[],
        &[IoSlice::new(b"END")],
        SendfileFlags::empty(),
    )
    .unwrap();
    assert_eq!(n, 1003);
    assert_eq!(f.stream_position().unwrap(), 1000);
    drop(w);
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(&got[..1000], &data[..]);
    assert_eq!(&got[1000..], b"END");
}

#[test]
fn sendfile_with_error_after_headers_reports_the_headers() {
    let _g = serial();
    let (bad_src, _w2) = std::io::pipe().unwrap();
    let (c, s) = tcp_pair();
    let rx = drain(s);
    // The body fails (a pipe is not a sendfile source) after the headers went out.
    let n = sendfile_with(
        &c,
        &bad_src,
        None,
        10,
        &[IoSlice::new(b"head")],
        &[],
        SendfileFlags::empty(),
    )
    .unwrap();
    assert_eq!(n, 4);
    // Nothing sent yet: the error itself.
    let e = sendfile_with(&c, &bad_src, None, 10, &[], &[], SendfileFlags::empty()).unwrap_err();
    assert_eq!(errno(&e), libc::EINVAL);
    drop(c);
    assert_eq!(rx.join().unwrap(), b"head");
}

#[test]
fn peer_reset_is_an_error_not_a_signal() {
    let _g = serial();
    let f = file_with(&pattern(8 << 20));
    let (c, s) = tcp_pair();
    reset_on_close(&s);
    drop(s); // RST
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut res = Ok(0);
    for _ in 0..50 {
        res = sendfile(&c, &f, Some(0), 8 << 20);
        if res.is_err() {
            break;
        }
    }
    let e = res.unwrap_err();
    assert!(
        matches!(errno(&e), libc::EPIPE | libc::ECONNRESET),
        "unexpected {e:?}"
    );
}

#[test]
fn the_forced_fallback_is_really_in_use() {
    let _g = serial();
    let want = if cfg!(ferry_force_fallback) {
        "fallback"
    } else {
        "linux"
    };
    assert_eq!(ferry_compat::implementation(), want);
}
