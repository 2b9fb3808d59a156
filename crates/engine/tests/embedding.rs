//! Embedding: `submit_async`, `cancel_on_drop`, `shutdown`, and two-way `proxy`, on
//! the backend under test.

mod common;

use common::*;
use ferry_engine::{Engine, Proxy, ProxyError, Transfer};
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
fn counter() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count::default());
    (c.clone(), Waker::from(c))
}

/// An idle socket → socket transfer (nobody writes its source): holds a slot.
fn idle(engine: &Engine) -> (ferry_engine::TransferHandle, TcpStream, TcpStream) {
    let (src, src_peer) = tcp_pair();
    let (dst, dst_peer) = tcp_pair();
    let h = engine
        .submit(Transfer::new(Arc::new(src), Arc::new(dst)))
        .unwrap();
    (h, src_peer, dst_peer)
}

fn tiny(engine_data: &[u8]) -> (Transfer, std::io::PipeReader) {
    let (r, w) = std::io::pipe().unwrap();
    let t = Transfer::new(Arc::new(file_with(engine_data)), Arc::new(w)).src_offset(Some(0));
    (t, r)
}

#[test]
fn submit_async_waits_for_a_slot_without_blocking_and_is_woken_when_one_frees() {
    let _g = serial();
    let engine = Engine::builder().max_in_flight(1).build().unwrap();
    let (a, _p1, _p2) = idle(&engine);
    let (t, r) = tiny(b"hello");
    let rx = drain(r);
    let (count, waker) = counter();
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(engine.submit_async(t));
    let t0 = Instant::now();
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert!(t0.elapsed() < Duration::from_millis(100), "poll blocked");
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    a.cancel();
    assert_eq!(a.wait().unwrap_err().kind(), ErrorKind::Interrupted);
    eventually("woken when the slot frees", || {
        count.0.load(Ordering::SeqCst) > 0
    });
    let Poll::Ready(h) = fut.as_mut().poll(&mut cx) else {
        panic!("still pending after the wake-up");
    };
    assert_eq!(h.unwrap().wait().unwrap().bytes, 5);
    assert_eq!(rx.join().unwrap(), b"hello");
}

#[test]
fn a_dropped_waiter_passes_its_wake_up_on() {
    let _g = serial();
    let engine = Engine::builder().max_in_flight(1).build().unwrap();
    let (a, _p1, _p2) = idle(&engine);
    let (t1, _r1) = tiny(b"one");
    let (t2, r2) = tiny(b"two");
    let rx2 = drain(r2);
    let (c1, w1) = counter();
    let (c2, w2) = counter();
    let mut f1 = Box::pin(engine.submit_async(t1));
    let mut f2 = Box::pin(engine.submit_async(t2));
    assert!(f1.as_mut().poll(&mut Context::from_waker(&w1)).is_pending());
    assert!(f2.as_mut().poll(&mut Context::from_waker(&w2)).is_pending());
    a.cancel();
    let _ = a.wait();
    eventually("the first waiter is woken", || {
        c1.0.load(Ordering::SeqCst) > 0
    });
    drop(f1); // gives up without taking the slot
    eventually("the wake-up is passed on", || {
        c2.0.load(Ordering::SeqCst) > 0
    });
    let Poll::Ready(h) = f2.as_mut().poll(&mut Context::from_waker(&w2)) else {
        panic!("the second waiter did not get the slot");
    };
    h.unwrap().wait().unwrap();
    assert_eq!(rx2.join().unwrap(), b"two");
}

/// The reproduction of issue 21: a waiter dropped while the engine is still at its
/// bound (a lost `select!` branch, a timeout) must not keep its place in the queue, or
/// the next freed slot wakes the dead task and the live waiter hangs.
#[test]
fn a_waiter_dropped_at_the_bound_leaves_the_queue() {
    let _g = serial();
    let engine = Engine::builder().max_in_flight(1).build().unwrap();
    let (a, _p1, _p2) = idle(&engine);
    let (t1, _r1) = tiny(b"one");
    let (t2, r2) = tiny(b"two");
    let rx2 = drain(r2);
    let (c1, w1) = counter();
    let (c2, w2) = counter();
    let mut f1 = Box::pin(engine.submit_async(t1));
    let mut f2 = Box::pin(engine.submit_async(t2));
    assert!(f1.as_mut().poll(&mut Context::from_waker(&w1)).is_pending());
    assert!(f2.as_mut().poll(&mut Context::from_waker(&w2)).is_pending());
    drop(f1); // gives up before any slot freed
    a.cancel();
    let _ = a.wait();
    eventually("the live waiter is woken", || {
        c2.0.load(Ordering::SeqCst) > 0
    });
    assert_eq!(
        c1.0.load(Ordering::SeqCst),
        0,
        "the dropped waiter was woken"
    );
    let Poll::Ready(h) = f2.as_mut().poll(&mut Context::from_waker(&w2)) else {
        panic!("the live waiter did not get the slot");
    };
    h.unwrap().wait().unwrap();
    assert_eq!(rx2.join().unwrap(), b"two");
}

/// Ten tasks wait for one slot; five give up (`tokio::time::timeout`) while the slot is
/// held. Once it frees, the other five all get it, one after another.
#[test]
fn waiters_that_time_out_do_not_starve_the_others_on_tokio() {
    let _g = serial();
    let engine = Arc::new(Engine::builder().max_in_flight(1).build().unwrap());
    let (a, _p1, _p2) = idle(&engine);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut quitters = Vec::new();
        let mut stayers = Vec::new();
        for i in 0..10u8 {
            let engine = engine.clone();
            let (t, r) = tiny(&[i; 3]);
            let rx = drain(r);
            if i % 2 == 0 {
                quitters.push(tokio::spawn(async move {
                    let r =
                        tokio::time::timeout(Duration::from_millis(100), engine.submit_async(t))
                            .await;
                    assert!(r.is_err(), "a quitter got a slot while it was held");
                }));
            } else {
                stayers.push(tokio::spawn(async move {
                    let h = engine.submit_async(t).await.unwrap();
                    assert_eq!(h.await.unwrap().bytes, 3);
                    tokio::task::spawn_blocking(move || rx.join().unwrap())
                        .await
                        .unwrap()
                }));
            }
        }
        for q in quitters {
            q.await.unwrap();
        }
        // Every quitter has gone; now the slot frees.
        a.cancel();
        for (k, s) in stayers.into_iter().enumerate() {
            let got = tokio::time::timeout(Duration::from_secs(10), s)
                .await
                .unwrap_or_else(|_| panic!("stayer {k} never got a slot"))
                .unwrap();
            assert_eq!(got, vec![2 * k as u8 + 1; 3]);
        }
    });
    let _ = a.wait();
}

#[test]
fn a_shut_down_engine_refuses_work_and_wakes_its_waiters_with_an_error() {
    let _g = serial();
    let engine = Engine::builder().max_in_flight(1).build().unwrap();
    let (a, _p1, _p2) = idle(&engine);
    let (t, _r) = tiny(b"x");
    let (count, waker) = counter();
    let mut fut = Box::pin(engine.submit_async(t));
    assert!(fut
        .as_mut()
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    engine.shutdown();
    assert!(
        count.0.load(Ordering::SeqCst) > 0,
        "the waiter was not woken"
    );
    let Poll::Ready(Err(e)) = fut.as_mut().poll(&mut Context::from_waker(&waker)) else {
        panic!("expected an error");
    };
    assert_eq!(e.kind(), ErrorKind::NotConnected, "{e}");
    let (t, _r) = tiny(b"x");
    assert_eq!(
        engine.submit(t).unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    let (t, _r) = tiny(b"x");
    let e = block_on(engine.submit_async(t)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotConnected);
    // What was running still runs and can be cancelled.
    a.cancel();
    assert_eq!(a.wait().unwrap_err().kind(), ErrorKind::Interrupted);
}

#[test]
fn cancel_on_drop_cancels_an_unfinished_transfer_and_leaves_a_finished_one_alone() {
    let _g = serial();
    let engine = engine();
    let (h, _p1, _p2) = idle(&engine);
    let guard = h.cancel_on_drop();
    let progress = guard.progress().unwrap();
    let errors_before = engine.stats().totals().1;
    drop(guard);
    eventually("the dropped transfer ends", || progress.is_finished());
    eventually("as a failure", || {
        engine.stats().totals().1 == errors_before + 1
    });
    // Finished first: dropping the guard changes nothing.
    let (t, r) = tiny(b"done");
    let rx = drain(r);
    let guard = engine.submit(t).unwrap().cancel_on_drop();
    let done = block_on(guard).unwrap();
    assert_eq!(done.bytes, 4);
    assert_eq!(rx.join().unwrap(), b"done");
    let (t, r) = tiny(b"done");
    let rx = drain(r);
    let guard = engine.submit(t).unwrap().cancel_on_drop();
    let p = guard.progress().unwrap();
    eventually("finished", || p.is_finished());
    let errors = engine.stats().totals().1;
    drop(guard);
    assert_eq!(engine.stats().totals().1, errors);
    assert_eq!(rx.join().unwrap(), b"done");
}

/// client ↔ [client_side | proxy | server_side] ↔ server
struct Pair {
    client: TcpStream,
    server: TcpStream,
    handle: ferry_engine::ProxyHandle,
}

fn proxied(engine: &Engine, idle: Option<Duration>) -> Pair {
    let (client, client_side) = tcp_pair();
    let (server_side, server) = tcp_pair();
    let mut p = Proxy::new(Arc::new(client_side), Arc::new(server_side));
    if let Some(d) = idle {
        p = p.idle_timeout(d);
    }
    Pair {
        client,
        server,
        handle: engine.proxy(p).unwrap(),
    }
}

#[test]
fn proxy_moves_both_directions_at_once_byte_for_byte() {
    let _g = serial();
    let engine = engine();
    let Pair {
        client,
        server,
        handle,
    } = proxied(&engine, None);
    let up = pattern(20 << 20, 1);
    let down = pattern(30 << 20, 2);
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (u, d) = (up.clone(), down.clone());
    let w1 = std::thread::spawn(move || {
        (&c2).write_all(&u).unwrap();
        c2.shutdown(Shutdown::Write).unwrap();
    });
    let w2 = std::thread::spawn(move || {
        (&s2).write_all(&d).unwrap();
        s2.shutdown(Shutdown::Write).unwrap();
    });
    let got_up = drain(server);
    let got_down = drain(client);
    w1.join().unwrap();
    w2.join().unwrap();
    assert!(got_up.join().unwrap() == up);
    assert!(got_down.join().unwrap() == down);
    assert_eq!(handle.wait().unwrap(), (up.len() as u64, down.len() as u64));
}

#[test]
fn proxy_half_closes_each_way_and_the_other_direction_keeps_going() {
    let _g = serial();
    let engine = engine();
    for client_first in [true, false] {
        let Pair {
            mut client,
            mut server,
            handle,
        } = proxied(&engine, None);
        let (first, second) = if client_first {
            (&mut client, &mut server)
        } else {
            (&mut server, &mut client)
        };
        first.write_all(b"request").unwrap();
        first.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        second.read_to_end(&mut got).unwrap(); // EOF arrives: half-closed towards it
        assert_eq!(got, b"request");
        // The reverse direction still works after the half-close.
        for _ in 0..3 {
            second.write_all(b"reply").unwrap();
            let mut buf = [0u8; 5];
            first.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"reply");
        }
        second.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        first.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        let (up, down) = block_on(handle).unwrap();
        if client_first {
            assert_eq!((up, down), (7, 15));
        } else {
            assert_eq!((up, down), (15, 7));
        }
    }
}

#[test]
fn proxy_stops_both_directions_promptly_when_either_side_aborts() {
    let _g = serial();
    let engine = engine();
    for abort_client in [true, false] {
        let base = fd_count();
        let Pair {
            client,
            server,
            handle,
        } = proxied(&engine, None);
        // Some traffic first, so both directions have moved bytes.
        (&client).write_all(b"abc").unwrap();
        let mut buf = [0u8; 3];
        (&server).read_exact(&mut buf).unwrap();
        (&server).write_all(b"de").unwrap();
        let mut buf = [0u8; 2];
        (&client).read_exact(&mut buf).unwrap();
        let (aborting, other) = if abort_client {
            (client, server)
        } else {
            (server, client)
        };
        reset_on_close(&aborting);
        let t0 = Instant::now();
        drop(aborting); // RST
        let e = handle.wait().unwrap_err();
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t0.elapsed()
        );
        let pe = ProxyError::of(&e).expect("ProxyError");
        assert_eq!((pe.client_to_server, pe.server_to_client), (3, 2), "{e}");
        assert!(
            matches!(pe.errno, Some(libc::ECONNRESET | libc::EPIPE)),
            "{e} ({:?})",
            pe.errno
        );
        // Nothing kept but the pool's idle pipes (bounded).
        drop(other);
        eventually("fds back to baseline", || {
            fd_count() <= base + 2 * engine.stats().pipes.idle
        });
    }
}

#[test]
fn proxy_idle_timeout_counts_both_directions() {
    let _g = serial();
    let engine = engine();
    let Pair {
        client,
        server,
        handle,
    } = proxied(&engine, Some(Duration::from_millis(300)));
    // Traffic one way only keeps the pair alive past the timeout.
    let t0 = Instant::now();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(100));
        (&client).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        (&server).read_exact(&mut b).unwrap();
    }
    assert!(!handle.is_finished(), "timed out while bytes moved");
    let e = handle.wait().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(850), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(ProxyError::of(&e).unwrap().client_to_server, 6);
}

#[test]
fn proxy_refuses_what_is_not_a_connection_naming_the_argument() {
    let _g = serial();
    let engine = engine();
    let (a, _b) = tcp_pair();
    let a = Arc::new(a);
    let e = engine.proxy(Proxy::new(a.clone(), a.clone())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().starts_with("server:"), "{e}");
    let file = Arc::new(file_with(b"x"));
    let e = engine.proxy(Proxy::new(file, a.clone())).unwrap_err();
    assert!(e.to_string().starts_with("client:"), "{e}");
    let (r, _w) = std::io::pipe().unwrap();
    let e = engine
        .proxy(Proxy::new(a.clone(), Arc::new(r)))
        .unwrap_err();
    assert!(e.to_string().starts_with("server:"), "{e}");
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let e = engine.proxy(Proxy::new(listener, a)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("listening"), "{e}");
}

#[test]
fn two_hundred_concurrent_pairs_and_nothing_kept_afterwards() {
    let _g = serial();
    let engine = engine();
    let base = fd_count();
    let pairs: Vec<Pair> = (0..200).map(|_| proxied(&engine, None)).collect();
    let workers: Vec<_> = pairs
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            std::thread::spawn(move || {
                let data = pattern(16 << 10, i as u32);
                (&p.client).write_all(&data).unwrap();
                p.client.shutdown(Shutdown::Write).unwrap();
                let mut got = Vec::new();
                (&p.server).read_to_end(&mut got).unwrap();
                assert!(got == data);
                (&p.server).write_all(&data[..1000]).unwrap();
                drop(p.server);
                let mut back = Vec::new();
                (&p.client).read_to_end(&mut back).unwrap();
                assert!(back == data[..1000]);
                p.handle.wait().unwrap()
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap(), (16 << 10, 1000));
    }
    eventually("fds back to baseline", || fd_count() <= base + 2 * 64);
    let s = engine.stats();
    assert_eq!(s.in_flight, 0);
    drop(engine);
    eventually("and to the baseline once the pool is gone", || {
        fd_count() <= base
    });
}

/// Under tokio: a client that resets mid-body fails its transfer with the errno and
/// the bytes moved; the runtime keeps serving; fds go back to the baseline.
#[test]
fn tokio_client_reset_mid_body_is_an_error_with_errno_and_bytes_and_serving_goes_on() {
    let _g = serial();
    let engine = Arc::new(engine());
    let data = pattern(32 << 20, 4);
    let file = Arc::new(file_with(&data));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = fd_count();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A client that reads a little, then resets.
        let bad = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            c.read_exact(&mut buf).unwrap();
            reset_on_close(&c);
        });
        let (conn, _) = listener.accept().await.unwrap();
        let h = engine
            .submit_async(Transfer::new(file.clone(), Arc::new(conn)).src_offset(Some(0)))
            .await
            .unwrap();
        let progress = h.progress();
        let e = h.cancel_on_drop().await.unwrap_err();
        bad.join().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e}");
        assert!(progress.bytes() >= 1 << 20 && progress.bytes() < data.len() as u64);
        // Still serving, on the same runtime.
        let good = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            got
        });
        let (conn, _) = listener.accept().await.unwrap();
        let done = engine
            .submit_async(
                Transfer::new(file.clone(), Arc::new(conn))
                    .src_offset(Some(0))
                    .len(Some(100_000)),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(done.bytes, 100_000);
        assert!(good.join().unwrap() == data[..100_000]);
    });
    drop(rt);
    eventually("fds back to baseline", || {
        fd_count() <= base + 2 * engine.stats().pipes.idle
    });
}
