//! The generator's floor: a trivial responder that answers every request with the
//! same bytes (no parsing beyond counting requests), one thread, one `epoll`. The
//! answer sits in a memfd and leaves by `sendfile` (no copy through user space, as
//! cheap per byte as any subject; a `write` of 64 KiB answers fell behind the rates
//! `sendfile` servers carry). What latency the generator measures against it, at a
//! rate, is the generator's and the loopback's own while the responder has CPU to
//! spare — its CPU per answer is reported to tell. For the test of the generator it
//! can also stall once, as a server pausing in the middle of a run.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::answer::Protocol;

const LISTENER: Token = Token(usize::MAX - 1);
const STOP: Token = Token(usize::MAX);

/// A one-time pause of the whole responder.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// After this many answers …
    pub after: u64,
    /// … it answers nothing for this long.
    pub pause: Duration,
}

/// A running responder; stopped when dropped.
#[derive(Debug)]
pub struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    /// The responding thread's id (0 until it started), for its CPU time.
    tid: Arc<AtomicI32>,
    thread: Option<JoinHandle<io::Result<u64>>>,
}

struct Peer {
    sock: TcpStream,
    partial: Vec<u8>,
    /// Answers asked for and not yet wholly written.
    owed: usize,
    /// Bytes of the first owed answer written so far.
    written: usize,
}

impl Responder {
    /// Listens on loopback and answers `proto`'s requests; on CPU `cpu` if given.
    pub fn start(proto: &Protocol, cpu: Option<usize>, stall: Option<Stall>) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), STOP)?);
        let stop = Arc::new(AtomicBool::new(false));
        let tid = Arc::new(AtomicI32::new(0));
        let answer = answer_file(&proto.answer())?;
        let (proto, flag, id) = (proto.clone(), stop.clone(), tid.clone());
        let thread = std::thread::Builder::new()
            .name("bench-floor".into())
            .spawn(move || {
                id.store(
                    rustix::thread::gettid().as_raw_nonzero().get(),
                    Ordering::Release,
                );
                if let Some(cpu) = cpu {
                    super::super::rr::pin_to_cpu(cpu)?;
                }
                let l = TcpListener::from_std(listener);
                serve(poll, l, &proto, &answer, stall, &flag)
            })?;
        while tid.load(Ordering::Acquire) == 0 && !thread.is_finished() {
            std::thread::yield_now();
        }
        Ok(Responder {
            addr,
            stop,
            waker,
            tid,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The thread that answers (its CPU time is the floor's).
    pub fn tid(&self) -> i32 {
        self.tid.load(Ordering::Acquire)
    }

    /// Stops it; how many answers it wrote, or how it failed.
    pub fn stop(mut self) -> io::Result<u64> {
        self.finish()
    }

    fn finish(&mut self) -> io::Result<u64> {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("the responder panicked"))?,
            None => Ok(0),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The answer's bytes in a memfd (memory, no disk), for `sendfile`.
fn answer_file(bytes: &[u8]) -> io::Result<File> {
    let fd = rustix::fs::memfd_create("ferry-floor", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut f = File::from(fd);
    f.write_all(bytes)?;
    Ok(f)
}

fn serve(
    mut poll: Poll,
    mut listener: TcpListener,
    proto: &Protocol,
    answer: &File,
    mut stall: Option<Stall>,
    stop: &AtomicBool,
) -> io::Result<u64> {
    let len = answer.metadata()?.len() as usize;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut peers: Slab<Peer> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut answers = 0u64;
    while !stop.load(Ordering::Acquire) {
        match poll.poll(&mut events, Some(Duration::from_millis(200))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            match ev.token() {
                STOP => {}
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            sock.set_nodelay(true)?;
                            let entry = peers.vacant_entry();
                            poll.registry().register(
                                &mut sock,
                                Token(entry.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            entry.insert(Peer {
                                sock,
                                partial: Vec::new(),
                                owed: 0,
                                written: 0,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                },
                Token(k) => {
                    let Some(p) = peers.get_mut(k) else { continue };
                    let open = p.progress(proto, (answer, len), &mut buf, &mut answers);
                    if !open {
                        let mut p = peers.remove(k);
                        let _ = poll.registry().deregister(&mut p.sock);
                    }
                    if let Some(s) = stall.filter(|s| answers >= s.after) {
                        std::thread::sleep(s.pause);
                        stall = None;
                    }
                }
            }
        }
    }
    Ok(answers)
}

impl Peer {
    /// Reads what was asked and writes what is owed; false once the peer is gone.
    fn progress(
        &mut self,
        proto: &Protocol,
        (answer, len): (&File, usize),
        buf: &mut [u8],
        answers: &mut u64,
    ) -> bool {
        loop {
            match self.sock.read(buf) {
                Ok(0) => return false,
                Ok(n) => self.owed += proto.requests_in(&buf[..n], &mut self.partial),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        while self.owed > 0 {
            let at = Some(self.written as u64);
            match ferry_compat::sendfile(&self.sock, answer, at, len - self.written) {
                Ok(0) => return false,
                Ok(n) => {
                    self.written += n;
                    if self.written == len {
                        self.written = 0;
                        self.owed -= 1;
                        *answers += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}
