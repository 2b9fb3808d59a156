//! Large file bodies on a `LocalEngine`, on both backends: a body in the page cache is
//! spliced on the ring's thread (no io-wq worker is started), a body that is not goes
//! to the ring as an async op (the thread never waits for the disk); both arrive whole.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use ferry_engine::{Backend, LocalEngine, Transfer};
use std::sync::Arc;

#[test]
fn cached_and_evicted_file_bodies_arrive_whole_and_only_the_evicted_one_uses_io_wq() {
    let _g = serial();
    let size = 8 << 20;
    let data = pattern(size, 11);
    for b in local_backends() {
        let file = Arc::new(file_with(&data));
        for evicted in [false, true] {
            if evicted && !evict(&file) {
                eprintln!(
                    "NOT TESTED: the uncached path ({b:?}): the kernel kept the file's pages \
                     (tmpfs, or no cachestat to check)"
                );
                continue;
            }
            let mut ring = LocalEngine::builder().backend(b).build().unwrap();
            let (srv, cli) = tcp_pair();
            srv.set_nonblocking(true).unwrap();
            let reader = drain(cli);
            // The ring's own ops (its wake-up read) reach the kernel at the first turn.
            ring.turn(Some(std::time::Duration::from_millis(10)))
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let workers_before = ring.stats().iowq_workers;
            let h = ring
                .submit(
                    Transfer::new(file.clone(), Arc::new(srv))
                        .src_offset(Some(0))
                        .header(b"HEAD".to_vec()),
                )
                .unwrap();
            let done = ring.wait(h).unwrap();
            let workers_after = ring.stats().iowq_workers;
            drop(ring);
            let got = reader.join().unwrap();
            assert_eq!(done.bytes, size as u64, "{b:?} evicted={evicted}");
            assert_eq!(&got[..4], b"HEAD");
            assert!(
                got[4..] == data[..],
                "{b:?} evicted={evicted}: bytes differ"
            );
            if b == Backend::IoUring {
                if evicted {
                    assert!(
                        workers_after >= 1,
                        "the uncached body was not read by an async ring op"
                    );
                } else {
                    assert_eq!(
                        workers_after, workers_before,
                        "a cached body on a quiet ring started io-wq workers"
                    );
                }
            }
        }
    }
}
