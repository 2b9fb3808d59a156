//! The engine moving real bytes: every kind, random sizes, headers and trailers,
//! offsets, lengths and EOF. Runs against the backend FERRY_BACKEND selects.
mod common;
use common::*;

use ferry_engine::{Transfer, TransferError, TransferKind};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

#[test]
fn the_expected_backend_really_runs() {
    let _g = serial();
    let e = engine();
    assert!(e.fallback_reason().is_none());
}

/// A deterministic "random" size generator: many small, some medium, a few large.
fn sizes(n: usize) -> Vec<usize> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 7;
            x ^= x >> 9;
            match i % 7 {
                0 => 0,
                1..=3 => (x % 70_000) as usize,
                4 | 5 => (x % 3_000_000) as usize,
                _ => 8_000_000 + (x % 12_000_000) as usize,
            }
        })
        .collect()
}

#[test]
fn many_concurrent_file_to_socket_with_headers_and_trailers() {
    let _g = serial();
    let engine = engine();
    let mut checks = Vec::new();
    for (i, size) in sizes(28).into_iter().enumerate() {
        let data = pattern(size + 100, i as u32);
        let file = Arc::new(file_with(&data));
        let (c, s) = tcp_pair();
        let rx = drain(s);
        let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
        let trailer = if i % 2 == 0 {
            b"\r\n0\r\n\r\n".to_vec()
        } else {
            Vec::new()
        };
        let c = Arc::new(c);
        let h = engine
            .submit(
                Transfer::new(file, c.clone())
                    .src_offset(Some(100))
                    .len(Some(size as u64))
                    .header(header.clone().into_bytes())
                    .trailer(trailer.clone()),
            )
            .unwrap();
        let mut want = header.into_bytes();
        want.extend_from_slice(&data[100..]);
        want.extend_from_slice(&trailer);
        checks.push((h, c, rx, want, size));
    }
    for (h, c, rx, want, size) in checks {
        let done = h.wait().unwrap();
        assert_eq!(done.bytes, size as u64);
        assert_eq!(done.kind, TransferKind::FileToSocket);
        c.shutdown(Shutdown::Write).unwrap();
        let got = rx.join().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "bytes differ for a {size}-byte body");
    }
    let (t, e, b) = engine.stats().totals();
    assert_eq!((t, e), (28, 0));
    assert!(b > 50_000_000, "{b}");
}

#[test]
fn file_to_file_and_file_to_pipe_concurrently_with_offsets_headers_trailers() {
    let _g = serial();
    let engine = engine();
    let mut files = Vec::new();
    let mut pipes = Vec::new();
    // Everything is submitted first, then awaited: all transfers are in flight together.
    for (i, size) in [0usize, 1, 4096, 70_000, 1 << 20, 5_000_123, 13_000_000]
        .into_iter()
        .enumerate()
    {
        let data = pattern(size + 10, 77 + i as u32);
        let src = Arc::new(file_with(&data));
        let mut dst = tempfile::tempfile().unwrap();
        dst.write_all(b"keep").unwrap(); // the copy lands at dst's position (4)
        let dst = Arc::new(dst);
        let h = engine
            .submit(
                Transfer::new(src.clone(), dst.clone())
                    .src_offset(Some(10))
                    .header(b"<h>".to_vec())
                    .trailer(b"<t>".to_vec()),
            )
            .unwrap();
        files.push((h, dst, data.clone(), size));
        let (r, w) = std::io::pipe().unwrap();
        let rx = drain(r);
        let h = engine
            .submit(
                Transfer::new(src, Arc::new(w))
                    .src_offset(Some(10))
                    .header(b"P".to_vec()),
            )
            .unwrap();
        pipes.push((h, rx, data, size));
    }
    for (h, dst, data, size) in files {
        let done = h.wait().unwrap();
        assert_eq!(done.bytes, size as u64);
        assert_eq!(done.kind, TransferKind::FileToFile);
        let mut got = Vec::new();
        let mut f = dst.as_ref();
        f.seek(SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut got).unwrap();
        let mut want = b"keep<h>".to_vec();
        want.extend_from_slice(&data[10..]);
        want.extend_from_slice(b"<t>");
        assert!(got == want, "file copy of {size} differs");
    }
    for (h, rx, data, size) in pipes {
        let done = h.wait().unwrap();
        assert_eq!((done.bytes, done.header_bytes), (size as u64, 1));
        assert_eq!(done.kind, TransferKind::FileToPipe);
        let got = rx.join().unwrap();
        assert_eq!(got[0], b'P');
        assert!(got[1..] == data[10..], "pipe transfer of {size} differs");
    }
}

#[test]
fn offset_none_uses_the_position_at_submit_and_leaves_it() {
    let _g = serial();
    let engine = engine();
    let data = pattern(300_000, 5);
    let mut f = file_with(&data);
    f.seek(SeekFrom::Start(1234)).unwrap();
    let f = Arc::new(f);
    let (r, w) = std::io::pipe().unwrap();
    let rx = drain(r);
    let done = engine
        .submit(Transfer::new(f.clone(), Arc::new(w)))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(done.bytes, 300_000 - 1234);
    assert!(rx.join().unwrap() == data[1234..]);
    assert_eq!(f.as_ref().stream_position().unwrap(), 1234);
}

#[test]
fn a_source_shorter_than_len_is_unexpected_eof_with_the_bytes_moved() {
    let _g = serial();
    let engine = engine();
    for size in [1000usize, 3 << 20] {
        let data = pattern(size, 9);
        let (r, w) = std::io::pipe().unwrap();
        let rx = drain(r);
        let e = engine
            .submit(
                Transfer::new(Arc::new(file_with(&data)), Arc::new(w))
                    .src_offset(Some(10))
                    .len(Some(size as u64 * 2)),
            )
            .unwrap()
            .wait()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{e}");
        let got = rx.join().unwrap();
        let te = TransferError::of(&e).expect("a TransferError inside");
        assert_eq!(te.bytes, got.len() as u64);
        assert!(got[..] == data[10..10 + got.len()]);
    }
}

#[test]
fn socket_to_socket_proxy_until_eof_with_header() {
    let _g = serial();
    let engine = engine();
    let mut jobs = Vec::new();
    for (i, size) in [0usize, 1, 100_000, 7_000_000].into_iter().enumerate() {
        let data = pattern(size, 300 + i as u32);
        let (mut client, proxy_in) = tcp_pair();
        let (proxy_out, sink) = tcp_pair();
        if i % 2 == 0 {
            proxy_in.set_nonblocking(true).unwrap();
            proxy_out.set_nonblocking(true).unwrap();
        }
        let rx = drain(sink);
        let writer = {
            let data = data.clone();
            std::thread::spawn(move || {
                client.write_all(&data).unwrap();
                client.shutdown(Shutdown::Write).unwrap();
                client
            })
        };
        let out = Arc::new(proxy_out);
        let h = engine
            .submit(Transfer::new(Arc::new(proxy_in), out.clone()).header(b"PROXY\r\n".to_vec()))
            .unwrap();
        jobs.push((h, out, rx, writer, data));
    }
    for (h, out, rx, writer, data) in jobs {
        let done = h.wait().unwrap();
        assert_eq!(done.kind, TransferKind::SocketToSocket);
        assert_eq!(done.bytes, data.len() as u64);
        out.shutdown(Shutdown::Write).unwrap();
        let got = rx.join().unwrap();
        assert_eq!(&got[..7], b"PROXY\r\n");
        assert!(got[7..] == data[..]);
        drop(writer.join().unwrap());
    }
}

#[test]
fn socket_to_socket_with_len_stops_there() {
    let _g = serial();
    let engine = engine();
    let data = pattern(500_000, 1);
    let (mut client, proxy_in) = tcp_pair();
    let (proxy_out, sink) = tcp_pair();
    client.write_all(&data).unwrap();
    let out = Arc::new(proxy_out);
    let rx = drain(sink);
    let done = engine
        .submit(Transfer::new(Arc::new(proxy_in), out.clone()).len(Some(200_000)))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(done.bytes, 200_000);
    out.shutdown(Shutdown::Write).unwrap();
    assert!(rx.join().unwrap() == data[..200_000]);
}

#[test]
fn the_handle_is_a_future() {
    let _g = serial();
    let engine = engine();
    let data = pattern(2 << 20, 11);
    let (r, w) = std::io::pipe().unwrap();
    let rx = drain(r);
    let h = engine
        .submit(Transfer::new(Arc::new(file_with(&data)), Arc::new(w)).src_offset(Some(0)))
        .unwrap();
    let done = block_on(h).unwrap();
    assert_eq!(done.bytes, data.len() as u64);
    assert!(rx.join().unwrap() == data);
}

#[test]
fn a_dropped_handle_does_not_cancel() {
    let _g = serial();
    let engine = engine();
    let data = pattern(4 << 20, 12);
    let (c, s) = tcp_pair();
    let rx = drain(s);
    let c = Arc::new(c);
    drop(
        engine
            .submit(Transfer::new(Arc::new(file_with(&data)), c.clone()).src_offset(Some(0)))
            .unwrap(),
    );
    eventually("the transfer finishes", || engine.stats().in_flight == 0);
    c.shutdown(Shutdown::Write).unwrap();
    assert!(rx.join().unwrap() == data);
    assert_eq!(engine.stats().totals().1, 0);
}

#[test]
fn try_submit_at_the_bound_would_block_and_submit_waits() {
    let _g = serial();
    let engine = ferry_engine::Engine::builder()
        .max_in_flight(1)
        .build()
        .unwrap();
    let (_c, s) = tcp_pair();
    // An idle source keeps the first transfer in flight.
    let (out, _sink) = tcp_pair();
    let h = engine
        .submit(Transfer::new(Arc::new(s), Arc::new(out)))
        .unwrap();
    let (r, w) = std::io::pipe().unwrap();
    let e = engine
        .try_submit(Transfer::new(Arc::new(file_with(b"x")), Arc::new(w)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    h.cancel();
    assert_eq!(h.wait().unwrap_err().kind(), ErrorKind::Interrupted);
    drop(r);
}

#[test]
fn stats_count_by_kind_with_latencies() {
    let _g = serial();
    let engine = engine();
    for _ in 0..5 {
        let (r, w) = std::io::pipe().unwrap();
        let rx = drain(r);
        engine
            .submit(Transfer::new(
                Arc::new(file_with(&pattern(1000, 3))),
                Arc::new(w),
            ))
            .unwrap()
            .wait()
            .unwrap();
        rx.join().unwrap();
    }
    let st = engine.stats();
    let k = st
        .kinds
        .iter()
        .find(|k| k.kind == TransferKind::FileToPipe)
        .unwrap();
    assert_eq!((k.transfers, k.errors, k.bytes), (5, 0, 5000));
    assert_eq!(k.total.count, 5);
    assert!(k.total.max_us >= k.total.p50_us && k.total.p50_us > 0);
    assert_eq!(st.in_flight, 0);
}

#[test]
fn blocking_stream_sockets_work_too() {
    let _g = serial();
    let engine = engine();
    let data = pattern(3 << 20, 21);
    let (mut client, proxy_in) = tcp_pair();
    let (proxy_out, sink) = tcp_pair();
    let rx = drain(sink);
    let out = Arc::new(proxy_out);
    let h = engine
        .submit(Transfer::new(Arc::new(proxy_in), out.clone()))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50)); // the engine waits on an idle socket
    client.write_all(&data).unwrap();
    drop::<TcpStream>(client);
    assert_eq!(h.wait().unwrap().bytes, data.len() as u64);
    // Switched to O_NONBLOCK while the engine owned it, restored before completion.
    assert!(
        ferry_compat::get_blocking(&*out).unwrap(),
        "blocking mode restored"
    );
    out.shutdown(Shutdown::Write).unwrap();
    assert!(rx.join().unwrap() == data);
}

/// Small bodies are first tried inline (from the submitting thread); when the socket
/// cannot take everything, the rest (header tail, body from the advanced offset,
/// trailer) continues on the backend. Byte counts must add up exactly.
#[test]
fn inline_partial_sends_continue_on_the_backend_exactly() {
    let _g = serial();
    let engine = engine();
    let data = pattern(60_000, 31);
    let file = Arc::new(file_with(&data));
    for nonblocking in [true, false] {
        for fill in [0usize, 1, 2] {
            let (c, s) = tcp_pair();
            c.set_nonblocking(nonblocking).unwrap();
            // fill 1: a tiny send buffer, so the inline send is partial; fill 2: a full
            // socket, so the inline send is refused and the backend does everything.
            let mut sent_before = 0;
            if fill == 1 {
                let v: libc::c_int = 4096;
                // SAFETY: `v` is a live c_int of the size we pass.
                let r = unsafe {
                    libc::setsockopt(
                        std::os::fd::AsRawFd::as_raw_fd(&c),
                        libc::SOL_SOCKET,
                        libc::SO_SNDBUF,
                        (&v as *const libc::c_int).cast(),
                        4,
                    )
                };
                assert_eq!(r, 0);
            }
            if fill == 2 {
                let junk = vec![7u8; 4096];
                loop {
                    match (&c).write(&junk) {
                        Ok(n) => sent_before += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                    if !nonblocking && sent_before > 1_000_000 {
                        break; // a blocking socket would block us: stop early
                    }
                }
            }
            let rx = drain(s);
            let c = Arc::new(c);
            let header = vec![b'H'; 300];
            let trailer = vec![b'T'; 200];
            let done = engine
                .submit(
                    Transfer::new(file.clone(), c.clone())
                        .src_offset(Some(0))
                        .len(Some(60_000))
                        .header(header.clone())
                        .trailer(trailer.clone()),
                )
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(
                (done.header_bytes, done.bytes, done.trailer_bytes),
                (300, 60_000, 200)
            );
            c.shutdown(Shutdown::Write).unwrap();
            let got = rx.join().unwrap();
            let got = &got[sent_before..];
            let mut want = header.clone();
            want.extend_from_slice(&data);
            want.extend_from_slice(&trailer);
            assert!(
                got == want,
                "nonblocking {nonblocking} fill {fill}: bytes differ"
            );
        }
    }
}

/// The public API contract: `Engine: Send + Sync`, handles `Send`, `Backend: Copy + Eq + Debug`.
#[test]
fn the_public_types_have_the_promised_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    fn copy_eq_debug<T: Copy + PartialEq + Eq + std::fmt::Debug>() {}
    send_sync::<ferry_engine::Engine>();
    send::<ferry_engine::TransferHandle>();
    send::<Transfer>();
    copy_eq_debug::<ferry_engine::Backend>();
    send_sync::<ferry_pipes::PipePool>();
    send::<ferry_pipes::PooledPipe>();
}
