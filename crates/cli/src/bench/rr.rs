//! request-response: N connections each asking again and again for a file; latency from
//! request to the last response byte. The server is one event loop (mio) whose
//! response path is the method; the client is another event loop in this process.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll, Wake, Waker};
use std::time::{Duration, Instant};

use ferry_compat::SpliceFlags;
use ferry_engine::{Transfer, TransferHandle};
use ferry_pipes::{PipePool, PoolConfig, PooledPipe};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::common::{cpu_time, fail, new_hist, Checksum, Method, RunResult};
use super::paced::Schedule;
use super::rr_wire::{header, HDR};
use super::Engines;

const WAKE: Token = Token(usize::MAX);

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// One benchmark run: `conns` connections for `duration`, closed loop, or with `pace`
/// requests a second in all, each sent at its planned time (`super::paced`).
#[allow(clippy::too_many_arguments)] // one call site, each argument a separate knob
pub fn request_response(
    method: Method,
    path: &std::path::Path,
    size: u64,
    conns: usize,
    duration: Duration,
    engines: &Engines,
    expect: Option<Checksum>,
    pin: bool,
    pace: Option<u32>,
) -> io::Result<RunResult> {
    with_server(method, path, size, conns, engines, pin, |addr| {
        let cpu0 = cpu_time(false);
        let mut r = client(addr, conns, size, duration, expect, pace)?;
        let cpu_total = (cpu_time(false) - cpu0).as_secs_f64();
        r.cpu_secs = (cpu_total - r.cpu_secs).max(0.0); // minus the client's own CPU
        Ok(r)
    })
}

/// Runs `method`'s server for `conns` connections (on CPU 0 with `pin`) while `client`
/// runs on a thread of its own (on CPU 1 with `pin`) with the server's address; the
/// server ends when the client has closed all of them.
pub(super) fn with_server<T: Send>(
    method: Method,
    path: &std::path::Path,
    size: u64,
    conns: usize,
    engines: &Engines,
    pin: bool,
    client: impl FnOnce(SocketAddr) -> io::Result<T> + Send,
) -> io::Result<T> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let file = Arc::new(File::open(path)?);
    let engine = match method {
        Method::EngineUring => Some(engines.uring.as_ref().map_err(|r| fail(r.clone()))?),
        Method::EngineBlocking => Some(engines.blocking.as_ref().map_err(|r| fail(r.clone()))?),
        _ => None,
    };
    std::thread::scope(|s| {
        // Named, so per-thread accounting (scripts/per-request.sh) tells them apart.
        let server = std::thread::Builder::new()
            .name("rr-server".into())
            .spawn_scoped(s, || {
                if pin {
                    pin_to_cpu(0)?;
                }
                match method {
                    Method::EngineLocal => super::rr_local::serve(listener, file, size, conns),
                    _ => serve(method, listener, file, size, conns, engine),
                }
            })?;
        let res = std::thread::Builder::new()
            .name("rr-client".into())
            .spawn_scoped(s, || {
                if pin {
                    pin_to_cpu(1)?;
                }
                client(addr)
            })?
            .join()
            .map_err(|_| fail("client panicked"))?;
        let srv = server.join().map_err(|_| fail("server panicked"))?;
        let r = res?;
        srv?;
        Ok(r)
    })
}

enum St {
    Idle,
    Resp(Resp),
    Engine(TransferHandle),
}

#[derive(Default)]
struct Resp {
    hdr_sent: usize,
    off: u64,
    in_pipe: usize,
    pipe: Option<PooledPipe>,
}

struct Conn {
    sock: Arc<TcpStream>,
    st: St,
    buf: Vec<u8>,
    open: bool,
}

/// What the server's connections share.
struct Server<'a> {
    method: Method,
    file: Arc<File>,
    size: u64,
    hdr: [u8; HDR],
    pool: PipePool,
    engine: Option<&'a ferry_engine::Engine>,
    poll: Poll,
    waker: Waker,
    open: usize,
}

struct MioWake(mio::Waker);
impl Wake for MioWake {
    fn wake(self: Arc<Self>) {
        let _ = self.0.wake();
    }
}

fn send_more(sock: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    socket2::SockRef::from(sock).send_with_flags(buf, libc::MSG_MORE | libc::MSG_NOSIGNAL)
}

fn serve(
    method: Method,
    listener: std::net::TcpListener,
    file: Arc<File>,
    size: u64,
    n: usize,
    engine: Option<&ferry_engine::Engine>,
) -> io::Result<()> {
    let poll = Poll::new()?;
    let waker = Arc::new(MioWake(mio::Waker::new(poll.registry(), WAKE)?));
    let mut srv = Server {
        method,
        file,
        size,
        hdr: header(size),
        pool: PipePool::new(PoolConfig {
            capacity: n,
            ..PoolConfig::default()
        })?,
        engine,
        poll,
        waker: Waker::from(waker),
        open: n,
    };
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let (s, _) = listener.accept()?;
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
        let mut sock = TcpStream::from_std(s);
        srv.poll.registry().register(
            &mut sock,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut buf = Vec::new();
        if method == Method::ReadWrite {
            buf = vec![0u8; HDR + size as usize];
            buf[..HDR].copy_from_slice(&srv.hdr);
        }
        conns.push(Conn {
            sock: Arc::new(sock),
            st: St::Idle,
            buf,
            open: true,
        });
    }
    let mut events = Events::with_capacity(1024);
    while srv.open > 0 {
        srv.poll.poll(&mut events, Some(Duration::from_secs(10)))?;
        if events.is_empty() {
            return Err(fail("server: no event for 10 s"));
        }
        let mut woken = false;
        for ev in events.iter() {
            if ev.token() == WAKE {
                woken = true;
            } else if conns[ev.token().0].open {
                srv.progress(&mut conns[ev.token().0])?;
            }
        }
        if woken {
            let waker = srv.waker.clone();
            let mut cx = Context::from_waker(&waker);
            for c in conns.iter_mut() {
                if let St::Engine(h) = &mut c.st {
                    if let TaskPoll::Ready(r) = std::pin::Pin::new(h).poll(&mut cx) {
                        r?;
                        c.st = St::Idle;
                        srv.progress(c)?;
                    }
                }
            }
        }
    }
    Ok(())
}

impl Server<'_> {
    /// Advances connection `c` as far as it can go without blocking.
    fn progress(&mut self, c: &mut Conn) -> io::Result<()> {
        loop {
            match &mut c.st {
                St::Engine(_) => return Ok(()),
                St::Idle => {
                    let mut req = [0u8; 64];
                    match (&*c.sock).read(&mut req) {
                        Ok(0) => {
                            c.open = false;
                            self.open -= 1;
                            if let Some(s) = Arc::get_mut(&mut c.sock) {
                                self.poll.registry().deregister(s)?;
                            }
                            return Ok(());
                        }
                        Ok(_) => {
                            if let Some(engine) = self.engine {
                                let t = Transfer::new(self.file.clone(), c.sock.clone())
                                    .src_offset(Some(0))
                                    .len(Some(self.size))
                                    .header(self.hdr.to_vec());
                                let mut h = engine.submit(t)?;
                                // Poll once: registers the waker (or it is already done).
                                match std::pin::Pin::new(&mut h)
                                    .poll(&mut Context::from_waker(&self.waker))
                                {
                                    TaskPoll::Ready(r) => {
                                        r?;
                                        continue;
                                    }
                                    TaskPoll::Pending => c.st = St::Engine(h),
                                }
                                return Ok(());
                            }
                            if self.method == Method::ReadWrite {
                                let body = &mut c.buf[HDR..];
                                let mut got = 0;
                                while got < body.len() {
                                    let k = std::os::unix::fs::FileExt::read_at(
                                        &*self.file,
                                        &mut body[got..],
                                        got as u64,
                                    )?;
                                    if k == 0 {
                                        return Err(fail("data file shrank"));
                                    }
                                    got += k;
                                }
                            }
                            c.st = St::Resp(Resp::default());
                        }
                        Err(e) if would_block(&e) => return Ok(()),
                        Err(e) => return Err(e),
                    }
                }
                St::Resp(r) => match self.respond(r, &c.sock, &c.buf) {
                    Ok(true) => c.st = St::Idle,
                    Ok(false) => return Ok(()),
                    Err(e) if would_block(&e) => return Ok(()),
                    Err(e) => return Err(e),
                },
            }
        }
    }

    /// Advances a response; Ok(true) when all of it is in the socket.
    fn respond(&self, r: &mut Resp, sock: &TcpStream, buf: &[u8]) -> io::Result<bool> {
        let (method, file, size, hdr, pool) =
            (self.method, &*self.file, self.size, &self.hdr, &self.pool);
        if method == Method::ReadWrite {
            while r.hdr_sent < buf.len() {
                r.hdr_sent += (&*sock).write(&buf[r.hdr_sent..])?;
            }
            return Ok(true);
        }
        while r.hdr_sent < HDR {
            r.hdr_sent += send_more(sock, &hdr[r.hdr_sent..])?;
        }
        match method {
            Method::Sendfile => {
                while r.off < size {
                    let n =
                        ferry_compat::sendfile(sock, file, Some(r.off), (size - r.off) as usize)?;
                    if n == 0 {
                        return Err(fail("data file shrank"));
                    }
                    r.off += n as u64;
                }
            }
            Method::Splice => {
                if r.pipe.is_none() {
                    r.pipe = Some(pool.get()?);
                }
                let pipe = r.pipe.as_ref().expect("pipe");
                let nb = SpliceFlags::NONBLOCK;
                while r.off < size || r.in_pipe > 0 {
                    if r.in_pipe == 0 {
                        let want = ((size - r.off) as usize).min(pipe.size());
                        let n =
                            ferry_compat::splice(file, pipe.writer(), want, Some(r.off), None, nb)?;
                        if n == 0 {
                            return Err(fail("data file shrank"));
                        }
                        r.off += n as u64;
                        r.in_pipe = n;
                    }
                    let flags = if r.off < size {
                        nb | SpliceFlags::MORE
                    } else {
                        nb
                    };
                    r.in_pipe -=
                        ferry_compat::splice(pipe.reader(), sock, r.in_pipe, None, None, flags)?;
                }
                r.pipe = None; // empty: back to the pool
            }
            _ => return Err(fail("method has no event-loop responder")),
        }
        Ok(true)
    }
}

struct ClientConn {
    sock: TcpStream,
    got: usize,
    hdr: [u8; HDR],
    sum: Checksum,
    t0: Instant,
    done: bool,
}

/// Drives `n` connections until `duration` is over; returns the run's result with
/// `cpu_secs` = the client thread's own CPU (the caller subtracts it). With `pace`,
/// requests go out at their planned times and latency counts from those.
fn client(
    addr: SocketAddr,
    n: usize,
    size: u64,
    duration: Duration,
    expect: Option<Checksum>,
    pace: Option<u32>,
) -> io::Result<RunResult> {
    let cpu0 = cpu_time(true);
    let mut poll = Poll::new()?;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut sock = TcpStream::from_std(s);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE)?;
        conns.push(ClientConn {
            sock,
            got: 0,
            hdr: [0; HDR],
            sum: Checksum::default(),
            t0: Instant::now(),
            done: false,
        });
    }
    let total = HDR + size as usize;
    let mut hist = new_hist();
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let deadline = start + duration;
    let mut plan = pace.map(Schedule::new);
    let mut send_time = || plan.as_mut().map_or_else(Instant::now, Schedule::wait);
    for c in conns.iter_mut() {
        c.t0 = send_time();
        (&c.sock).write_all(b"G")?;
    }
    let (mut requests, mut active) = (0u64, n);
    let mut events = Events::with_capacity(1024);
    while active > 0 {
        poll.poll(&mut events, Some(Duration::from_secs(10)))?;
        if events.is_empty() {
            return Err(fail("client: no response for 10 s"));
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            loop {
                let k = match (&c.sock).read(&mut buf) {
                    Ok(0) => return Err(fail("server closed a connection mid-run")),
                    Ok(k) => k,
                    Err(e) if would_block(&e) => break,
                    Err(e) => return Err(e),
                };
                let data = &buf[..k];
                if c.got + k > total {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "more bytes than the response holds",
                    ));
                }
                let mut body = data;
                if c.got < HDR {
                    let h = (HDR - c.got).min(k);
                    c.hdr[c.got..c.got + h].copy_from_slice(&data[..h]);
                    body = &data[h..];
                }
                if expect.is_some() {
                    c.sum.update(body);
                }
                c.got += k;
                if c.got == total {
                    hist.saturating_record(c.t0.elapsed().as_micros() as u64);
                    if c.hdr != header(size) {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "bad response header",
                        ));
                    }
                    if let Some(e) = expect {
                        if c.sum.value() != e.value() {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "response body differs from the file (checksum)",
                            ));
                        }
                        c.sum = Checksum::default();
                    }
                    requests += 1;
                    c.got = 0;
                    if Instant::now() < deadline {
                        c.t0 = send_time();
                        (&c.sock).write_all(b"G")?;
                    } else if !c.done {
                        c.done = true;
                        active -= 1;
                    }
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = (cpu_time(true) - cpu0).as_secs_f64();
    drop(conns); // the server sees EOF on each and stops
    Ok(RunResult {
        bytes: requests * size,
        secs,
        requests: Some(requests),
        hist,
        cpu_secs: cpu,
        latency: None,
        machine_cpu_secs: None,
    })
}

/// Pins the calling thread to one CPU (`--pin`).
pub(super) fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(io::Error::from)
}
