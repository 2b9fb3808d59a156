//! `LocalEngine::connect` and `LocalEngine::proxy` on both backends, on real loopback
//! sockets: connect succeeds, is refused, is cancelled; a proxy pair carries bytes both
//! ways at once, half-closes, and a reset on one side fails it promptly.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use ferry_engine::{Event, LocalEngine, LocalProxyHandle, Proxy, ProxyError};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Turns until `pick` returns something from an event (at most 10 s).
fn until<T>(ring: &mut LocalEngine, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        ring.turn(Some(Duration::from_millis(50))).unwrap();
        let events: Vec<Event> = ring.events().collect();
        for ev in events {
            if let Some(t) = pick(ev) {
                return t;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no event in 10 s");
    }
}

fn connected(ring: &mut LocalEngine, op: ferry_engine::OpId) -> std::io::Result<()> {
    until(ring, |ev| match ev {
        Event::Connected { op: o, result } if o == op => Some(result),
        _ => None,
    })
}

fn fresh_socket() -> Arc<socket2::Socket> {
    Arc::new(socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
}

#[test]
fn connect_succeeds_is_refused_and_is_cancelled() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = fresh_socket();
        let op = ring.connect(s.clone(), l.local_addr().unwrap());
        connected(&mut ring, op).unwrap_or_else(|e| panic!("{b:?}: {e}"));
        let (mut peer, _) = l.accept().unwrap();
        (&*s).write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        // A port nobody listens on: refused, with the errno.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let op = ring.connect(fresh_socket(), closed);
        let e = connected(&mut ring, op).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{b:?}: {e}");
        // A connect that cannot finish (a full backlog of a listener nobody accepts on is
        // not reliable on loopback; a non-routable address would leave this machine), so
        // cancel one right after starting it: it ends Interrupted or, if it won the race,
        // refused — never hangs.
        let op = ring.connect(fresh_socket(), closed);
        ring.cancel(op);
        let r = connected(&mut ring, op);
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::Interrupted || e.raw_os_error() == Some(libc::ECONNREFUSED)),
            "{b:?}: {r:?}"
        );
    }
}

/// client ↔ [ring proxy] ↔ server, the proxy's two sockets accepted/connected here.
fn pair_through(ring: &mut LocalEngine) -> (TcpStream, TcpStream, LocalProxyHandle) {
    let front = TcpListener::bind("127.0.0.1:0").unwrap();
    let back = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(front.local_addr().unwrap()).unwrap();
    let (client_side, _) = front.accept().unwrap();
    let server_side = TcpStream::connect(back.local_addr().unwrap()).unwrap();
    let (server, _) = back.accept().unwrap();
    let h = ring
        .proxy(
            Proxy::new(Arc::new(client_side), Arc::new(server_side))
                .idle_timeout(Duration::from_secs(20)),
        )
        .unwrap();
    (client, server, h)
}

fn finish(ring: &mut LocalEngine, mut h: LocalProxyHandle) -> std::io::Result<(u64, u64)> {
    let t0 = Instant::now();
    loop {
        h = match h.try_take() {
            Ok(r) => return r,
            Err(h) => h,
        };
        ring.turn(Some(Duration::from_millis(50))).unwrap();
        ring.events().for_each(drop);
        assert!(t0.elapsed() < Duration::from_secs(20), "proxy did not end");
    }
}

#[test]
fn a_proxy_on_the_ring_carries_both_directions_at_once_and_half_closes() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let (mut client, mut server, h) = pair_through(&mut ring);
        let ids = h.ids();
        assert_ne!(ids[0], ids[1]);
        let up = pattern(3 << 20, 1);
        let down = pattern(5 << 20, 2);
        let (u, d) = (up.clone(), down.clone());
        let mut c2 = client.try_clone().unwrap();
        let writer_c = std::thread::spawn(move || {
            c2.write_all(&u).unwrap();
            c2.shutdown(Shutdown::Write).unwrap();
        });
        let mut s2 = server.try_clone().unwrap();
        let writer_s = std::thread::spawn(move || {
            s2.write_all(&d).unwrap();
            s2.shutdown(Shutdown::Write).unwrap();
        });
        let reader_s = std::thread::spawn(move || {
            let mut got = Vec::new();
            server.read_to_end(&mut got).unwrap();
            got
        });
        let reader_c = std::thread::spawn(move || {
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        let counts = finish(&mut ring, h).unwrap_or_else(|e| panic!("{b:?}: {e}"));
        writer_c.join().unwrap();
        writer_s.join().unwrap();
        assert!(
            reader_s.join().unwrap() == up,
            "{b:?}: client → server bytes differ"
        );
        assert!(
            reader_c.join().unwrap() == down,
            "{b:?}: server → client bytes differ"
        );
        assert_eq!(counts, (3 << 20, 5 << 20), "{b:?}");
    }
}

#[test]
fn a_reset_on_one_side_fails_the_proxy_promptly() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let (mut client, server, h) = pair_through(&mut ring);
        client.write_all(b"request").unwrap();
        reset_on_close(&server);
        drop(server);
        let t0 = Instant::now();
        let e = finish(&mut ring, h).unwrap_err();
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{b:?}: took {:?}",
            t0.elapsed()
        );
        let pe = ProxyError::of(&e).expect("a ProxyError");
        assert!(pe.errno.is_some(), "{b:?}: {pe:?}");
        let _ = client.read(&mut [0u8; 16]);
    }
}

#[test]
fn a_reset_after_data_flowed_still_fails_the_proxy_promptly() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let (mut client, mut server, h) = pair_through(&mut ring);
        client.write_all(b"go").unwrap();
        server.write_all(&pattern(100_000, 3)).unwrap();
        let mut got = vec![0u8; 100_000];
        let reader = std::thread::spawn(move || {
            client.read_exact(&mut got).unwrap();
            (client, got)
        });
        // Let the bytes through before the reset.
        let t0 = Instant::now();
        let mut h = h;
        while h.bytes().1 < 100_000 {
            ring.turn(Some(Duration::from_millis(20))).unwrap();
            ring.events().for_each(drop);
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{b:?}: data did not flow"
            );
            h = match h.try_take() {
                Ok(r) => panic!("{b:?}: ended early: {r:?}"),
                Err(h) => h,
            };
        }
        let (_client, got) = reader.join().unwrap();
        assert_eq!(got, pattern(100_000, 3));
        reset_on_close(&server);
        drop(server);
        let t0 = Instant::now();
        let r = finish(&mut ring, h);
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{b:?}: took {:?}",
            t0.elapsed()
        );
        assert!(r.is_err(), "{b:?}: a reset must fail the proxy: {r:?}");
    }
}

#[test]
fn recv_multi_delivers_every_arrival_until_the_end_and_stops_on_cancel() {
    let _g = serial();
    for b in local_backends() {
        let mut ring = local_ring(b);
        let (mut client, server) = tcp_pair();
        let server = Arc::new(server);
        let op = ring.recv_multi(server.clone());
        let mut sent = Vec::new();
        let writer = std::thread::spawn(move || {
            let mut all = Vec::new();
            for i in 0..5u8 {
                let msg = vec![i; 100 + i as usize];
                client.write_all(&msg).unwrap();
                all.extend_from_slice(&msg);
                std::thread::sleep(Duration::from_millis(20));
            }
            let big = pattern(3 << 20, 9); // more than all provided buffers at once
            client.write_all(&big).unwrap();
            all.extend_from_slice(&big);
            drop(client);
            all
        });
        let mut got = Vec::new();
        let mut arrivals = 0;
        let t0 = Instant::now();
        'outer: loop {
            ring.turn(Some(Duration::from_millis(50))).unwrap();
            let events: Vec<Event> = ring.events().collect();
            for ev in events {
                match ev {
                    Event::Received { op: o, buf, result } if o == op => match result {
                        Ok(0) => break 'outer,
                        Ok(n) => {
                            assert_eq!(n, buf.len(), "{b:?}");
                            got.extend_from_slice(&buf);
                            arrivals += 1;
                        }
                        Err(e) => panic!("{b:?}: {e}"),
                    },
                    other => panic!("{b:?}: unexpected {other:?}"),
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{b:?}: no end of stream"
            );
        }
        sent.extend(writer.join().unwrap());
        assert!(
            got == sent,
            "{b:?}: {} of {} bytes, in order?",
            got.len(),
            sent.len()
        );
        assert!(arrivals >= 5, "{b:?}: {arrivals} arrivals");
        // An idle multishot recv ends Interrupted when cancelled.
        let (_peer, idle) = tcp_pair();
        let op = ring.recv_multi(Arc::new(idle));
        ring.turn(Some(Duration::from_millis(20))).unwrap();
        ring.cancel(op);
        let r = until(&mut ring, |ev| match ev {
            Event::Received { op: o, result, .. } if o == op => Some(result),
            _ => None,
        });
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Interrupted, "{b:?}");
    }
}
