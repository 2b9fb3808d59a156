//! An echo server entirely on one `LocalEngine` ring: accept, recv and send of many
//! connections go out together in one `io_uring_enter` per turn, on one thread.
//!
//! `cargo run -p ferry-engine --example local_echo -- --self-test`: 200 concurrent
//! clients, each echoing 10 messages, every byte checked. `FERRY_BACKEND=blocking`
//! runs the same program on the epoll readiness loop.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::{Event, LocalEngine, OpId};

const CLIENTS: usize = 200;
const ROUNDS: usize = 10;

fn main() -> io::Result<()> {
    if std::env::args().nth(1).as_deref() != Some("--self-test") {
        eprintln!("usage: local_echo --self-test");
        std::process::exit(2);
    }
    let mut ring = LocalEngine::new()?;
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0")?);
    let addr = listener.local_addr()?;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || -> io::Result<()> {
                let mut c = TcpStream::connect(addr)?;
                for r in 0..ROUNDS {
                    let msg = format!("client {i} round {r}\n").into_bytes();
                    c.write_all(&msg)?;
                    let mut back = vec![0u8; msg.len()];
                    c.read_exact(&mut back)?;
                    assert_eq!(back, msg, "echo differs");
                }
                Ok(())
            })
        })
        .collect();

    ring.accept(listener);
    // What each op was for: a recv or a send on a connection.
    let mut ops: HashMap<OpId, Arc<TcpStream>> = HashMap::new();
    let mut closed = 0;
    while closed < CLIENTS {
        ring.turn(Some(Duration::from_secs(5)))?;
        let events: Vec<Event> = ring.events().collect();
        for ev in events {
            match ev {
                Event::Accepted { conn, .. } => {
                    let s = Arc::new(TcpStream::from(conn?));
                    ops.insert(ring.recv(s.clone(), vec![0; 4096]), s);
                }
                Event::Received {
                    op,
                    mut buf,
                    result,
                } => {
                    let s = ops.remove(&op).expect("our recv");
                    match result? {
                        0 => closed += 1, // the client is done: drop our Arc, the fd closes
                        n => {
                            buf.truncate(n);
                            ops.insert(ring.send(s.clone(), buf), s);
                        }
                    }
                }
                Event::Sent { op, result, .. } => {
                    result?;
                    let s = ops.remove(&op).expect("our send");
                    ops.insert(ring.recv(s.clone(), vec![0; 4096]), s);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    for c in clients {
        c.join().expect("client thread")?;
    }
    println!(
        "self-test passed: {CLIENTS} clients × {ROUNDS} messages echoed on one ring ({:?})",
        ring.backend()
    );
    Ok(())
}
