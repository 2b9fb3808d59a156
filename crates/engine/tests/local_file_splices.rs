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
                } else if has_cachestat() {
                    assert_eq!(
                        workers_after, workers_before,
                        "a cached body on a quiet ring started io-wq workers"
                    );
                } else {
                    eprintln!(
                        "NOT TESTED: a cached body spliced on the ring's thread: this kernel \
                         has no cachestat (Linux < 6.5), so every file body goes to the ring \
                         as an async op (io-wq), as an uncached one does"
                    );
                }
            }
        }
    }
}

/// Threads of this process with this name.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.trim() == name)
        .count()
}

#[test]
fn file_to_file_on_an_io_uring_ring_runs_on_a_worker_and_wakes_the_owner_through_the_ring() {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::io::Read;
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::{Duration, Instant};

    let _g = serial();
    let data = pattern(24 << 20, 5);
    let src = Arc::new(file_with(&data));
    for b in local_backends() {
        let mut ring = LocalEngine::builder().backend(b).build().unwrap();
        let out = Arc::new(tempfile::tempfile().unwrap());
        // The owner sleeps in epoll on the ring's fd, as a mio/tokio loop would.
        let mut poll = Poll::new().unwrap();
        let fd = ring.as_fd().as_raw_fd();
        poll.registry()
            .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
            .unwrap();
        let h = ring
            .submit(Transfer::new(src.clone(), out.clone()).src_offset(Some(0)))
            .unwrap();
        let id = h.id();
        let mut events = Events::with_capacity(8);
        let t0 = Instant::now();
        // Turn (queued work reaches the kernel), then sleep in epoll until the fd says
        // completions wait, as an event loop does.
        loop {
            ring.turn(Some(Duration::ZERO)).unwrap();
            if ring
                .events()
                .any(|e| matches!(e, ferry_engine::Event::TransferDone { op } if op == id))
            {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{b:?}: no TransferDone"
            );
            // EINTR: io_uring task work queued for this thread (docs/local.md).
            match poll.poll(&mut events, Some(Duration::from_secs(5))) {
                Err(e) if e.kind() != std::io::ErrorKind::Interrupted => panic!("{e}"),
                _ => {}
            }
        }
        let c = h.try_take().map_err(|_| "not finished").unwrap().unwrap();
        assert_eq!(c.bytes, data.len() as u64, "{b:?}");
        let mut got = Vec::new();
        (&*out).read_to_end(&mut got).unwrap();
        assert!(got == data, "{b:?}: file→file bytes differ");
        if b == Backend::IoUring {
            assert_eq!(
                threads_named("ferry-local-fil"),
                1,
                "the file worker runs it"
            );
            drop(ring);
            eventually("the file worker is joined", || {
                threads_named("ferry-local-fil") == 0
            });
        }
    }
}
