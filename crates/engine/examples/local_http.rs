//! A tiny HTTP/1.1 responder entirely on one `LocalEngine` ring: accept, recv of the
//! request, and the response (head + file body, zero-copy or spliced) as a transfer on
//! the same ring; keep-alive connections go back to recv when the transfer is done.
//!
//! `cargo run -p ferry-engine --example local_http -- --self-test`: 200 concurrent
//! keep-alive clients, 3 responses each, every byte checked. (`ferry serve` is the
//! real server; this shows the shape.)

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ferry_engine::{Event, LocalEngine, LocalHandle, OpId, Transfer};

const CLIENTS: usize = 200;
const REQUESTS: usize = 3;

struct Conn {
    sock: Arc<TcpStream>,
    request: Vec<u8>,
}

fn main() -> io::Result<()> {
    if std::env::args().nth(1).as_deref() != Some("--self-test") {
        eprintln!("usage: local_http --self-test");
        std::process::exit(2);
    }
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let path = std::env::temp_dir().join(format!("ferry-local-http-{}", std::process::id()));
    std::fs::write(&path, &body)?;
    let file = Arc::new(std::fs::File::open(&path)?);
    std::fs::remove_file(&path)?;

    let mut ring = LocalEngine::new()?;
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0")?);
    let addr = listener.local_addr()?;
    let want = body.clone();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let want = want.clone();
            std::thread::spawn(move || -> io::Result<()> {
                let mut c = TcpStream::connect(addr)?;
                for _ in 0..REQUESTS {
                    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", want.len());
                    let mut got = vec![0u8; head.len() + want.len()];
                    c.read_exact(&mut got)?;
                    assert!(got.starts_with(head.as_bytes()), "bad head");
                    assert!(got[head.len()..] == want[..], "body differs");
                }
                Ok(())
            })
        })
        .collect();

    ring.accept(listener);
    let mut recvs: HashMap<OpId, Conn> = HashMap::new();
    let mut sending: HashMap<OpId, (Conn, LocalHandle)> = HashMap::new();
    let (mut served, mut closed) = (0, 0);
    while closed < CLIENTS {
        ring.turn(Some(Duration::from_secs(5)))?;
        let events: Vec<Event> = ring.events().collect();
        for ev in events {
            match ev {
                Event::Accepted { conn, .. } => {
                    let sock = Arc::new(TcpStream::from(conn?));
                    let c = Conn {
                        sock,
                        request: Vec::new(),
                    };
                    recvs.insert(ring.recv(c.sock.clone(), vec![0; 2048]), c);
                }
                Event::Received { op, buf, result } => {
                    let mut c = recvs.remove(&op).expect("our recv");
                    let n = result?;
                    if n == 0 {
                        closed += 1;
                        continue;
                    }
                    c.request.extend_from_slice(&buf[..n]);
                    if let Some(end) = c.request.windows(4).position(|w| w == b"\r\n\r\n") {
                        c.request.drain(..end + 4);
                        let len = file.metadata()?.len();
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
                        let t = Transfer::new(file.clone(), c.sock.clone())
                            .src_offset(Some(0))
                            .len(Some(len))
                            .header(head)
                            .timeout(Duration::from_secs(10));
                        let h = ring.submit(t)?;
                        sending.insert(h.id(), (c, h));
                    } else {
                        recvs.insert(ring.recv(c.sock.clone(), buf), c);
                    }
                }
                Event::TransferDone { op } => {
                    let (c, h) = sending.remove(&op).expect("our transfer");
                    let done = h
                        .try_take()
                        .map_err(|_| io::Error::other("not finished"))??;
                    assert_eq!(done.bytes, body.len() as u64);
                    served += 1;
                    recvs.insert(ring.recv(c.sock.clone(), vec![0; 2048]), c);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    for c in clients {
        c.join().expect("client thread")?;
    }
    assert_eq!(served, CLIENTS * REQUESTS);
    println!(
        "self-test passed: {served} responses to {CLIENTS} keep-alive clients on one ring ({:?})",
        ring.backend()
    );
    Ok(())
}
