//! `LocalEngine` on both of its backends (io_uring where this build has it, and the
//! epoll readiness loop): transfers of every kind byte for byte, timeouts, cancel,
//! drop with work in flight, handles as futures, the ring's fd in an epoll loop, and
//! connection ops.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use ferry_engine::{Event, Transfer};
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

#[test]
fn every_transfer_kind_byte_for_byte() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        for size in [0usize, 4096, 100_000, 5 << 20] {
            let data = pattern(size, size as u32);
            let file = Arc::new(file_with(&data));
            // file → socket with header and trailer
            let (c, s) = tcp_pair();
            c.set_nonblocking(true).unwrap();
            let rx = drain(s);
            let c = Arc::new(c);
            let h = ring
                .submit(
                    Transfer::new(file.clone(), c.clone())
                        .src_offset(Some(0))
                        .header(b"HEAD".to_vec())
                        .trailer(b"TAIL".to_vec()),
                )
                .unwrap();
            let done = ring.wait(h).unwrap();
            assert_eq!(done.bytes, size as u64, "{b:?}");
            c.shutdown(Shutdown::Write).unwrap();
            let mut want = b"HEAD".to_vec();
            want.extend_from_slice(&data);
            want.extend_from_slice(b"TAIL");
            assert!(rx.join().unwrap() == want, "{b:?} file→socket {size}");
            // file → pipe
            let (r, w) = std::io::pipe().unwrap();
            let rx = drain(r);
            let h = ring
                .submit(Transfer::new(file.clone(), Arc::new(w)).src_offset(Some(0)))
                .unwrap();
            ring.wait(h).unwrap();
            assert!(rx.join().unwrap() == data, "{b:?} file→pipe {size}");
            // file → file
            let out = Arc::new(tempfile::tempfile().unwrap());
            let h = ring
                .submit(Transfer::new(file.clone(), out.clone()).src_offset(Some(0)))
                .unwrap();
            ring.wait(h).unwrap();
            let mut got = Vec::new();
            (&*out).read_to_end(&mut got).unwrap();
            assert!(got == data, "{b:?} file→file {size}");
            // socket → socket
            let (src, mut src_peer) = tcp_pair();
            let (dst, dst_peer) = tcp_pair();
            let rx = drain(dst_peer);
            let d = data.clone();
            let tx = std::thread::spawn(move || {
                src_peer.write_all(&d).unwrap();
            });
            let dst = Arc::new(dst);
            let h = ring
                .submit(Transfer::new(Arc::new(src), dst.clone()).len(Some(size as u64)))
                .unwrap();
            ring.wait(h).unwrap();
            tx.join().unwrap();
            dst.shutdown(Shutdown::Write).unwrap();
            assert!(rx.join().unwrap() == data, "{b:?} socket→socket {size}");
        }
    }
}

#[test]
fn timeouts_and_cancels() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let (src, _p1) = tcp_pair();
        let (dst, _p2) = tcp_pair();
        let t0 = Instant::now();
        let h = ring
            .submit(Transfer::new(Arc::new(src), Arc::new(dst)).timeout(Duration::from_millis(200)))
            .unwrap();
        let e = ring.wait(h).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{b:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        // Cancel from another thread while the owner waits in turn().
        let (src, _p1) = tcp_pair();
        let (dst, _p2) = tcp_pair();
        let h = ring
            .submit(Transfer::new(Arc::new(src), Arc::new(dst)))
            .unwrap();
        let p = h.progress();
        let t0 = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                h.cancel();
            });
            while !p.is_finished() {
                ring.turn(Some(Duration::from_secs(5))).unwrap();
                assert!(
                    t0.elapsed() < Duration::from_secs(3),
                    "{b:?}: cancel not seen"
                );
            }
        });
    }
}

#[test]
fn dropping_the_ring_with_work_in_flight_frees_everything_after_the_kernel() {
    let _g = serial();
    for b in local_backends() {
        let base = fd_count();
        let mut ring = local_ring(b);
        let mut weak = Vec::new();
        let mut keep = Vec::new();
        for _ in 0..5 {
            let (src, p1) = tcp_pair();
            let (dst, p2) = tcp_pair();
            let src = Arc::new(src);
            weak.push(Arc::downgrade(&src));
            ring.submit(Transfer::new(src, Arc::new(dst))).unwrap();
            keep.push((p1, p2));
        }
        ring.turn(Some(Duration::from_millis(20))).unwrap();
        assert!(
            weak.iter().all(|w| w.upgrade().is_some()),
            "freed while in flight"
        );
        drop(ring);
        assert!(
            weak.iter().all(|w| w.upgrade().is_none()),
            "{b:?}: kept after drop"
        );
        drop(keep);
        eventually("fds back to baseline", || fd_count() <= base);
    }
}

#[derive(Default)]
struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn handles_are_futures_woken_by_turn() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let (src, mut src_peer) = tcp_pair();
        let (r, w) = std::io::pipe().unwrap();
        let rx = drain(r);
        let h = ring
            .submit(Transfer::new(Arc::new(src), Arc::new(w)).len(Some(3)))
            .unwrap();
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = pin!(h);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        src_peer.write_all(b"abc").unwrap();
        let t0 = Instant::now();
        while count.0.load(Ordering::SeqCst) == 0 {
            ring.turn(Some(Duration::from_millis(50))).unwrap();
            assert!(t0.elapsed() < Duration::from_secs(5), "{b:?}: never woken");
        }
        let Poll::Ready(done) = fut.as_mut().poll(&mut cx) else {
            panic!("woken but not ready");
        };
        assert_eq!(done.unwrap().bytes, 3);
        assert_eq!(rx.join().unwrap(), b"abc");
    }
}

#[test]
fn the_rings_fd_wakes_an_epoll_loop() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        // SAFETY: epoll calls on fds we own, with live event structs.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 7,
        };
        // SAFETY: as above.
        let r =
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, ring.as_fd().as_raw_fd(), &mut ev) };
        assert_eq!(r, 0);
        let (src, mut src_peer) = tcp_pair();
        let (r, w) = std::io::pipe().unwrap();
        let rx = drain(r);
        let h = ring
            .submit(Transfer::new(Arc::new(src), Arc::new(w)).len(Some(2)))
            .unwrap();
        ring.turn(Some(Duration::ZERO)).unwrap(); // submitted; nothing done yet
        assert!(!h.is_finished());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            src_peer.write_all(b"hi").unwrap();
            src_peer
        });
        let t0 = Instant::now();
        while !h.is_finished() {
            let mut out = [libc::epoll_event { events: 0, u64: 0 }; 4];
            // SAFETY: `out` has room for 4 events.
            let n = unsafe { libc::epoll_wait(ep, out.as_mut_ptr(), 4, 3000) };
            let err = std::io::Error::last_os_error();
            if n < 0 && err.kind() == ErrorKind::Interrupted {
                continue; // io_uring task work interrupts sleeping syscalls: retry
            }
            assert!(
                n > 0,
                "{b:?}: the ring's fd never became readable ({n}, {err})"
            );
            ring.turn(Some(Duration::ZERO)).unwrap();
            assert!(t0.elapsed() < Duration::from_secs(5));
        }
        assert_eq!(ring.wait(h).unwrap().bytes, 2);
        assert_eq!(rx.join().unwrap(), b"hi");
        // SAFETY: closing the epoll fd we created.
        unsafe { libc::close(ep) };
    }
}

#[test]
fn accept_recv_send_timeout_close_on_the_ring() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let acc = ring.accept(listener.clone());
        let clients: Vec<_> = (0..3)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.write_all(&[i as u8; 10]).unwrap();
                    let mut back = [0u8; 10];
                    c.read_exact(&mut back).unwrap();
                    assert_eq!(back, [i as u8 + 1; 10]);
                })
            })
            .collect();
        let timer = ring.timeout(Duration::from_millis(50));
        let (mut accepted, mut echoed, mut timed) = (0, 0, false);
        let mut reading = std::collections::HashMap::new();
        let t0 = Instant::now();
        while echoed < 3 || !timed {
            ring.turn(Some(Duration::from_millis(100))).unwrap();
            let events: Vec<Event> = ring.events().collect();
            for ev in events {
                match ev {
                    Event::Accepted { op, conn } => {
                        assert_eq!(op, acc);
                        let s = Arc::new(TcpStream::from(conn.unwrap()));
                        accepted += 1;
                        let r = ring.recv(s.clone(), vec![0; 10]);
                        reading.insert(r, s);
                    }
                    Event::Received { buf, result, op } => {
                        assert_eq!(result.unwrap(), 10);
                        let s = reading.remove(&op).expect("a recv of ours");
                        let reply: Vec<u8> = buf.iter().map(|x| x + 1).collect();
                        ring.send(s, reply);
                    }
                    Event::Sent { result, .. } => {
                        assert_eq!(result.unwrap(), 10);
                        echoed += 1;
                    }
                    Event::Timer { op, result } => {
                        assert_eq!(op, timer);
                        result.unwrap();
                        timed = true;
                    }
                    other => panic!("{b:?}: unexpected {other:?}"),
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "{b:?}: stuck");
        }
        assert_eq!(accepted, 3);
        for c in clients {
            c.join().unwrap();
        }
        ring.cancel(acc);
        let mut ended = false;
        let t0 = Instant::now();
        while !ended {
            ring.turn(Some(Duration::from_millis(50))).unwrap();
            for ev in ring.events() {
                if let Event::Accepted { conn: Err(e), .. } = ev {
                    assert_eq!(e.kind(), ErrorKind::Interrupted);
                    ended = true;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{b:?}: accept not cancelled"
            );
        }
        let (c, _s) = tcp_pair();
        let close = ring.close(c.into());
        let t0 = Instant::now();
        'outer: loop {
            ring.turn(Some(Duration::from_millis(50))).unwrap();
            for ev in ring.events() {
                if let Event::Closed { op, result } = ev {
                    assert_eq!(op, close);
                    result.unwrap();
                    break 'outer;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(5));
        }
    }
}

/// `recv_pooled` on both backends: exactly the bytes, end of stream as `Ok(0)`, cancel
/// as `Interrupted`, and 200 connections answered in one batch — more than the ring's
/// 64 provided buffers, so some recvs find none free (ENOBUFS) and must ask again.
#[test]
fn recv_pooled_gives_exactly_the_bytes_even_past_the_provided_buffers() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        const N: usize = 200;
        let pairs: Vec<(TcpStream, Arc<TcpStream>)> = (0..N)
            .map(|_| {
                let (c, s) = tcp_pair();
                (c, Arc::new(s))
            })
            .collect();
        let mut ops = std::collections::HashMap::new();
        for (i, (_, s)) in pairs.iter().enumerate() {
            ops.insert(ring.recv_pooled(s.clone()), i);
        }
        // Nothing sent yet: a turn ends with no event.
        ring.turn(Some(Duration::from_millis(20))).unwrap();
        assert_eq!(ring.events().count(), 0, "{b:?}: an event with no bytes");
        for (i, (c, _)) in pairs.iter().enumerate() {
            (&*c).write_all(&pattern(100 + i, i as u32)).unwrap();
        }
        let mut got = 0;
        let t0 = Instant::now();
        while got < N {
            ring.turn(Some(Duration::from_millis(50))).unwrap();
            let events: Vec<Event> = ring.events().collect();
            for ev in events {
                let Event::Received { op, buf, result } = ev else {
                    panic!("{b:?}: {ev:?}");
                };
                let i = ops.remove(&op).expect("a recv of ours");
                let n = result.unwrap_or_else(|e| panic!("{b:?}: connection {i}: {e}"));
                assert_eq!(n, buf.len(), "{b:?}: the event holds exactly the bytes");
                // Loopback delivers a small write whole.
                assert!(buf == pattern(100 + i, i as u32), "{b:?}: connection {i}");
                got += 1;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{b:?}: {got} of {N}"
            );
        }
        // End of stream, and cancel.
        let (c, s) = pairs.into_iter().next().unwrap();
        let eof = ring.recv_pooled(s.clone());
        drop(c);
        let (_c2, s2) = tcp_pair();
        let cancelled = ring.recv_pooled(Arc::new(s2));
        ring.cancel(cancelled);
        let (mut saw_eof, mut saw_cancel) = (false, false);
        let t0 = Instant::now();
        while !(saw_eof && saw_cancel) {
            ring.turn(Some(Duration::from_millis(50))).unwrap();
            for ev in ring.events() {
                match ev {
                    Event::Received { op, buf, result } if op == eof => {
                        assert_eq!(result.unwrap(), 0, "{b:?}");
                        assert!(buf.is_empty());
                        saw_eof = true;
                    }
                    Event::Received { op, result, .. } if op == cancelled => {
                        assert_eq!(result.unwrap_err().kind(), ErrorKind::Interrupted);
                        saw_cancel = true;
                    }
                    other => panic!("{b:?}: unexpected {other:?}"),
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "{b:?}: stuck");
        }
    }
}

/// Local timer interrupts so far, all CPUs (`LOC` in /proc/interrupts).
fn timer_interrupts() -> u64 {
    let text = std::fs::read_to_string("/proc/interrupts").unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("LOC:"))
        .expect("LOC in /proc/interrupts");
    line.split_whitespace()
        .skip(1)
        .map_while(|f| f.parse::<u64>().ok())
        .sum()
}

/// The fewest timer interrupts (all CPUs, so other processes add noise: the least of
/// five tries) while `f` runs.
fn fewest_timer_interrupts(mut f: impl FnMut()) -> u64 {
    (0..5)
        .map(|_| {
            let before = timer_interrupts();
            f();
            timer_interrupts() - before
        })
        .min()
        .unwrap()
}

#[test]
fn a_turn_with_nothing_to_wait_for_arms_no_timer() {
    // A zero timeout, or events not yet taken, must not become a kernel wait with a
    // zero timeout: that arms a timer whose interrupt ends the wait, one interrupt per
    // turn — per request on a ring serving one connection (issue 20).
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let (_c, s) = tcp_pair();
        // Work on the ring that is not ready: a recv nobody sends to.
        let _recv = ring.recv(Arc::new(s), vec![0u8; 16]);
        ring.turn(Some(Duration::ZERO)).unwrap();
        let n = fewest_timer_interrupts(|| {
            for _ in 0..1000 {
                ring.turn(Some(Duration::ZERO)).unwrap();
            }
        });
        assert!(
            n < 300,
            "{b:?}: 1000 zero-timeout turns took {n} timer interrupts"
        );
        // An event not taken yet turns a long timeout into a zero one: a timer's event
        // stays waiting (never drained) while the turns run.
        let _timer = ring.timeout(Duration::ZERO);
        ring.turn(Some(Duration::from_secs(1))).unwrap();
        let n = fewest_timer_interrupts(|| {
            for _ in 0..1000 {
                ring.turn(Some(Duration::from_secs(1))).unwrap();
            }
        });
        assert!(
            n < 300,
            "{b:?}: 1000 turns with an event waiting took {n} timer interrupts"
        );
    }
}

#[test]
fn a_file_to_file_transfer_ends_with_its_event_on_both_backends() {
    // io_uring has no copy_file_range: the ring hands file → file to its own worker
    // thread, whose completion must still come back as this ring's TransferDone.
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let data = pattern(3 << 20, 9);
        let src = Arc::new(file_with(&data));
        let dst = Arc::new(tempfile::tempfile().unwrap());
        let h = ring
            .submit(Transfer::new(src, dst.clone()).src_offset(Some(0)))
            .unwrap();
        let id = h.id();
        let start = Instant::now();
        let mut seen = false;
        while !seen {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{b:?}: no TransferDone"
            );
            ring.turn(Some(Duration::from_millis(100))).unwrap();
            seen = ring
                .events()
                .any(|e| matches!(e, Event::TransferDone { op } if op == id));
        }
        let done = h
            .try_take()
            .unwrap_or_else(|_| panic!("{b:?}: event before the end"));
        assert_eq!(done.unwrap().bytes, data.len() as u64, "{b:?}");
        let mut got = Vec::new();
        (&*dst).read_to_end(&mut got).unwrap();
        assert!(got == data, "{b:?}: file → file bytes differ");
    }
}

/// Every connection op that waits ends `Interrupted` when cancelled, on both backends,
/// and gives back the buffer it was handed (the same allocation's length): a server
/// that times out a request must get its buffers back and no late event.
#[test]
fn a_waiting_connection_op_cancelled_ends_interrupted_with_its_buffer() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let (quiet, _peer) = tcp_pair();
        let quiet = Arc::new(quiet);
        let (full, _reader) = tcp_pair(); // nobody reads: a big send waits
        let full = Arc::new(full);
        let big = vec![7u8; 64 << 20];
        let ops = [
            ("recv", ring.recv(quiet.clone(), vec![0; 1000])),
            ("recv_pooled", ring.recv_pooled(quiet.clone())),
            ("recv_multi", ring.recv_multi(quiet.clone())),
            ("send", ring.send(full.clone(), big)),
            ("timeout", ring.timeout(Duration::from_secs(60))),
        ];
        // Let each op reach its wait.
        for _ in 0..5 {
            ring.turn(Some(Duration::from_millis(20))).unwrap();
        }
        let early: Vec<Event> = ring.events().collect();
        assert!(
            early.is_empty(),
            "{b:?}: events before any cancel: {early:?}"
        );
        for (_, op) in &ops {
            ring.cancel(*op);
        }
        let mut ended = std::collections::HashMap::new();
        let t0 = Instant::now();
        while ended.len() < ops.len() {
            ring.turn(Some(Duration::from_millis(20))).unwrap();
            for ev in ring.events() {
                let (op, err, buf_len) = match ev {
                    Event::Received { op, buf, result } => (op, result.unwrap_err(), buf.len()),
                    Event::Sent { op, buf, result } => (op, result.unwrap_err(), buf.len()),
                    Event::Timer { op, result } => (op, result.unwrap_err(), 0),
                    other => panic!("{b:?}: unexpected {other:?}"),
                };
                let name = ops.iter().find(|(_, o)| *o == op).expect("one of ours").0;
                assert_eq!(err.kind(), ErrorKind::Interrupted, "{b:?} {name}: {err}");
                assert!(
                    ended.insert(name, buf_len).is_none(),
                    "{b:?} {name}: two events"
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{b:?}: ended only {ended:?}"
            );
        }
        assert_eq!(ended["recv"], 1000, "{b:?}: recv's buffer back");
        assert_eq!(ended["send"], 64 << 20, "{b:?}: send's buffer back");
        // Nothing comes after the last event.
        ring.turn(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(ring.events().count(), 0, "{b:?}: a late event");
    }
}
