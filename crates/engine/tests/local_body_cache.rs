//! `LocalEngine`'s body cache on both backends, on real files and loopback sockets:
//! hot small files go out from memory (the stats say so), byte for byte; a file
//! rewritten in place is never answered with its old bytes; a full socket makes the
//! gather send wait and continue; a file shorter than `len` fails after its bytes
//! without the trailer.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use ferry_engine::{Backend, LocalEngine, Transfer};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    s.set_nonblocking(true).unwrap();
    (s, c)
}

/// A file with `bytes` whose timestamps are old enough to be cached.
fn settled(bytes: &[u8]) -> Arc<File> {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    Arc::new(f)
}

/// The portable build (`--cfg ferry_force_fallback`) has no `RWF_NOWAIT`, so its body
/// cache never loads: these tests then check the same bytes on the normal path.
fn not_in_portable_build() {
    eprintln!("NOT TESTED: sending from the body cache (portable build: no RWF_NOWAIT, the cache stays empty)");
}

fn memory_expected() -> u64 {
    if io_uring_compiled() {
        1
    } else {
        not_in_portable_build();
        0
    }
}

fn ring(b: Backend) -> LocalEngine {
    // Files up to 16 KiB (the default keeps 4 KiB): the gather send of a body larger
    // than one page is exercised too.
    LocalEngine::builder()
        .backend(b)
        .body_cache(16 << 10, 4 << 20)
        .build()
        .unwrap()
}

fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn hot_small_files_go_out_from_memory_and_never_stale() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = ring(b);
        let (srv, mut cli) = pair();
        let srv = Arc::new(srv);
        let size = 4096;
        let file = settled(&pattern(0, size));
        for i in 0..60u8 {
            if i % 10 == 9 {
                // Rewritten in place, same size: the next answer must be the new bytes.
                file.write_all_at(&pattern(i, size), 0).unwrap();
                if i == 39 {
                    std::thread::sleep(Duration::from_millis(150)); // settle: cached again
                }
            }
            let now = {
                let mut v = vec![0u8; size];
                file.read_exact_at(&mut v, 0).unwrap();
                v
            };
            let t = Transfer::new(file.clone(), srv.clone())
                .src_offset(Some(0))
                .header(b"HDR".to_vec())
                .trailer(b"END".to_vec());
            let h = ring.submit(t).unwrap();
            let done = ring.wait(h).unwrap();
            assert_eq!(done.bytes, size as u64, "{b:?}");
            let mut got = vec![0u8; size + 6];
            cli.read_exact(&mut got).unwrap();
            assert_eq!(&got[..3], b"HDR");
            assert!(got[3..3 + size] == now[..], "{b:?}: response {i} is stale");
            assert_eq!(&got[3 + size..], b"END");
        }
        let st = ring.stats();
        if io_uring_compiled() {
            // 60 answers; those right after a rewrite are read, not kept (racy), until
            // the file settles again.
            assert!(
                st.from_memory >= 40,
                "{b:?}: {} from memory",
                st.from_memory
            );
        } else {
            not_in_portable_build();
            assert_eq!(st.from_memory, 0, "{b:?}: the portable build cached a body");
        }
        // Off: nothing from memory, same bytes.
        let mut off = LocalEngine::builder()
            .backend(b)
            .body_cache(16 << 10, 0)
            .build()
            .unwrap();
        let h = off
            .submit(Transfer::new(file.clone(), srv.clone()).src_offset(Some(0)))
            .unwrap();
        off.wait(h).unwrap();
        let mut got = vec![0u8; size];
        cli.read_exact(&mut got).unwrap();
        assert_eq!(off.stats().from_memory, 0);
    }
}

#[test]
fn a_full_socket_makes_the_memory_send_wait_and_continue() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = ring(b);
        let (srv, mut cli) = pair();
        let body = pattern(3, 16 << 10);
        let file = settled(&body);
        // Fill the socket until it takes nothing more, even after a pause (loopback
        // frees send-buffer room as the receiver's queue takes bytes).
        let mut filler = 0usize;
        let chunk = [7u8; 65536];
        loop {
            let before = filler;
            for size in [65536, 4096, 1] {
                loop {
                    match (&srv).write(&chunk[..size]) {
                        Ok(n) => filler += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            if filler == before {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let h = ring
            .submit(
                Transfer::new(file.clone(), Arc::new(srv))
                    .src_offset(Some(0))
                    .header(b"HEAD".to_vec()),
            )
            .unwrap();
        for _ in 0..5 {
            ring.turn(Some(Duration::from_millis(10))).unwrap();
        }
        assert!(!h.is_finished(), "{b:?}: sent into a full socket?");
        let reader = std::thread::spawn(move || {
            let mut all = vec![0u8; filler + 4 + body.len()];
            cli.read_exact(&mut all).unwrap();
            assert!(all[..filler].iter().all(|&x| x == 7));
            assert_eq!(&all[filler..filler + 4], b"HEAD");
            assert!(all[filler + 4..] == body[..], "body differs");
        });
        let done = ring.wait(h).unwrap();
        reader.join().unwrap();
        assert_eq!(done.bytes, 16 << 10);
        assert_eq!(ring.stats().from_memory, memory_expected(), "{b:?}");
    }
}

#[test]
fn a_file_shorter_than_len_fails_after_its_bytes_without_the_trailer() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = ring(b);
        let (srv, mut cli) = pair();
        let body = pattern(9, 1000);
        let file = settled(&body);
        let h = ring
            .submit(
                Transfer::new(file, Arc::new(srv))
                    .src_offset(Some(200))
                    .len(Some(5000))
                    .header(b"H".to_vec())
                    .trailer(b"T".to_vec()),
            )
            .unwrap();
        let e = ring.wait(h).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof, "{b:?}: {e}");
        assert_eq!(ring.stats().from_memory, memory_expected(), "{b:?}");
        let mut got = vec![0u8; 801];
        cli.read_exact(&mut got).unwrap();
        assert_eq!(got[0], b'H');
        assert!(got[1..] == body[200..]);
        // The transfer dropped its socket: end of stream, no trailer before it.
        let mut more = [0u8; 1];
        assert_eq!(
            cli.read(&mut more).unwrap(),
            0,
            "{b:?}: a byte after the body"
        );
    }
}
