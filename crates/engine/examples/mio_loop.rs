//! A mio event loop serving a file with `Engine`: mio reports readable requests, the
//! engine sends the responses, and its completions come back into the same loop
//! through a `mio::Waker` (each handle is a `Future` whose waker wakes the loop).
//!
//! `cargo run -p ferry-engine --example mio_loop -- --self-test`: serves 50 requests on
//! 10 keep-alive connections from client threads and checks every byte.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use ferry_engine::{Engine, Transfer, TransferHandle};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll as MioPoll, Token};

const LISTENER: Token = Token(0);
const ENGINE: Token = Token(1);

/// Wakes the mio loop when a transfer completes.
struct LoopWaker(mio::Waker);
impl Wake for LoopWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.wake();
    }
}

struct Conn {
    stream: Arc<TcpStream>,
    buf: Vec<u8>,
    sending: Option<TransferHandle>,
}

fn main() -> io::Result<()> {
    if std::env::args().nth(1).as_deref() != Some("--self-test") {
        eprintln!("usage: mio_loop --self-test");
        std::process::exit(2);
    }
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let path = std::env::temp_dir().join(format!("ferry-mio-{}", std::process::id()));
    std::fs::write(&path, &data)?;
    let file = Arc::new(std::fs::File::open(&path)?);
    std::fs::remove_file(&path)?;

    let engine = Engine::new()?;
    let mut poll = MioPoll::new()?;
    let waker = Waker::from(Arc::new(LoopWaker(mio::Waker::new(
        poll.registry(),
        ENGINE,
    )?)));
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().expect("an address"))?;
    let addr = listener.local_addr()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;

    let clients: Vec<_> = (0..10)
        .map(|_| {
            let want = data.clone();
            std::thread::spawn(move || -> io::Result<()> {
                let mut c = std::net::TcpStream::connect(addr)?;
                for _ in 0..5 {
                    c.write_all(b"GET\n")?;
                    let mut got = vec![0u8; want.len()];
                    c.read_exact(&mut got)?;
                    assert!(got == want, "response differs");
                }
                Ok(())
            })
        })
        .collect();

    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next = 2;
    let mut served = 0;
    let mut events = Events::with_capacity(128);
    while served < 50 {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            match ev.token() {
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            let t = Token(next);
                            next += 1;
                            poll.registry().register(&mut s, t, Interest::READABLE)?;
                            conns.insert(
                                t,
                                Conn {
                                    stream: Arc::new(s),
                                    buf: Vec::new(),
                                    sending: None,
                                },
                            );
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                },
                ENGINE => {} // completions: looked at below
                t => {
                    let Some(c) = conns.get_mut(&t) else { continue };
                    let mut b = [0u8; 64];
                    loop {
                        match (&*c.stream).read(&mut b) {
                            Ok(0) => break,
                            Ok(n) => c.buf.extend_from_slice(&b[..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
        // Start a response for every complete request, reap finished responses.
        let mut cx = Context::from_waker(&waker);
        for c in conns.values_mut() {
            if let Some(h) = c.sending.as_mut() {
                if let Poll::Ready(r) = Pin::new(h).poll(&mut cx) {
                    assert_eq!(r?.bytes, data.len() as u64);
                    c.sending = None;
                    served += 1;
                }
            }
            if c.sending.is_none() {
                if let Some(end) = c.buf.iter().position(|&b| b == b'\n') {
                    c.buf.drain(..=end);
                    let t = Transfer::new(file.clone(), c.stream.clone()).src_offset(Some(0));
                    let mut h = engine.try_submit(t)?;
                    if let Poll::Ready(r) = Pin::new(&mut h).poll(&mut cx) {
                        assert_eq!(r?.bytes, data.len() as u64); // finished inline
                        served += 1;
                    } else {
                        c.sending = Some(h);
                    }
                }
            }
        }
    }
    for c in clients {
        c.join().expect("client thread")?;
    }
    println!("self-test passed: {served} responses from a mio loop");
    Ok(())
}
