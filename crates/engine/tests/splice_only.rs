//! `Transfer::splice_only`: a small socket → socket flow, which would otherwise start
//! in the 16 KiB relay buffer, is spliced from its first byte (it takes a pooled pipe)
//! and arrives byte for byte; the same flow without it takes no pipe. Every executor:
//! `Engine` on the backend FERRY_BACKEND says, `LocalEngine` on each of its backends.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use ferry_engine::Transfer;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (c, l.accept().unwrap().0)
}

/// A 300-byte flow through `run`; the bytes that arrived.
fn flow(splice_only: bool, run: impl FnOnce(Transfer) -> u64) -> Vec<u8> {
    let (mut client, from_client) = pair();
    let (to_backend, mut backend) = pair();
    let msg: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    client.write_all(&msg).unwrap();
    drop(client);
    let mut t = Transfer::new(Arc::new(from_client), Arc::new(to_backend));
    if splice_only {
        t = t.splice_only();
    }
    assert_eq!(run(t), 300);
    let mut got = vec![0u8; 300];
    backend.read_exact(&mut got).unwrap();
    assert_eq!(got, msg);
    got
}

fn pipes_taken(s: &ferry_pipes::PoolStats) -> u64 {
    s.hits + s.misses
}

#[test]
fn engine_splices_a_small_flow_only_when_asked() {
    let e = engine();
    for splice_only in [false, true] {
        let before = pipes_taken(&e.stats().pipes);
        flow(splice_only, |t| e.submit(t).unwrap().wait().unwrap().bytes);
        let took = pipes_taken(&e.stats().pipes) - before;
        assert_eq!(
            took > 0,
            splice_only,
            "splice_only={splice_only}: {took} pipes taken"
        );
    }
}

#[test]
fn local_engine_splices_a_small_flow_only_when_asked() {
    for b in local_backends() {
        let mut ring = local_ring(b);
        for splice_only in [false, true] {
            let before = pipes_taken(&ring.stats().pipes);
            flow(splice_only, |t| {
                let h = ring.submit(t).unwrap();
                ring.wait(h).unwrap().bytes
            });
            let took = pipes_taken(&ring.stats().pipes) - before;
            assert_eq!(
                took > 0,
                splice_only,
                "{b:?} splice_only={splice_only}: {took} pipes taken"
            );
        }
    }
}
