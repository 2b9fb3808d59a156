//! Thread-per-core servers (`ferry serve`, `ferry proxy`): one `LocalEngine` ring and
//! one `SO_REUSEPORT` listener per thread, so a connection lives on one thread from
//! accept to close and the kernel spreads new connections over the threads; SIGINT and
//! SIGTERM raise one shared stop flag that every thread checks between turns.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use ferry_engine::{LocalEngine, RunsOn};

use crate::congestion::Congestion;
use socket2::{Domain, Protocol, Socket, Type};

/// The running server threads.
pub struct Rings {
    /// The address really listened on (port 0 resolved).
    pub addr: SocketAddr,
    pub threads: usize,
    /// What the rings run on (io_uring or the readiness fallback).
    pub runs_on: Option<RunsOn>,
    /// The TCP congestion control of the connections, for the ready line.
    congestion: String,
    handles: Vec<JoinHandle<io::Result<()>>>,
}

/// `--threads`, or the number of CPUs.
pub fn thread_count(threads: Option<u64>) -> usize {
    threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |n| n as usize,
    )
}

impl Rings {
    /// Binds `threads` listeners on `listen` (with `congestion` set on each, so every
    /// socket they accept has it) and starts one thread per listener named `name-i`; `per_thread(i)` (on this thread) prepares what thread `i` runs with its
    /// ring, listener and the stop flag. Returns once every ring exists.
    pub fn start<F, W>(
        name: &str,
        listen: SocketAddr,
        congestion: Option<&Congestion>,
        threads: usize,
        mut per_thread: F,
    ) -> io::Result<Rings>
    where
        F: FnMut(usize) -> io::Result<W>,
        W: FnOnce(LocalEngine, TcpListener, Arc<AtomicBool>) -> io::Result<()> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        crate::signals::install(&stop)?;
        let (listeners, addr) = match crate::activation::inherited()? {
            Some(passed) => shared_listeners(passed, congestion, threads)?,
            None => reuseport_listeners(listen, congestion, threads)?,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut handles = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let work = per_thread(i)?;
            let (stop, ready) = (stop.clone(), ready_tx.clone());
            let h = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || -> io::Result<()> {
                    // No engine body cache: `ferry serve` keeps small bodies itself (with
                    // their validators, behind one fstat), `ferry proxy` moves no files.
                    // Idle pooled pipes hold two fds each: near a small fd limit
                    // they must not take what connections need (64 at ≥ 1024 fds).
                    let idle_pipes = crate::fd_budget::limit().map_or(64, |l| {
                        (l / 16 / threads.max(1) as u64).clamp(2, 64) as usize
                    });
                    let ring = LocalEngine::builder()
                        .body_cache(0, 0)
                        .pipe_pool_capacity(idle_pipes)
                        .build();
                    let _ = ready.send(
                        ring.as_ref()
                            .map(|r| r.runs_on())
                            .map_err(|e| e.to_string()),
                    );
                    let ring = ring?;
                    // A thread that panicked would leave its listener accepting into a
                    // queue nobody serves: the whole process goes instead, loudly.
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        work(ring, listener, stop)
                    })) {
                        Ok(r) => r,
                        Err(_) => {
                            crate::error_log::say(
                                crate::error_log::Level::Error,
                                crate::error_log::Kind::Lifecycle,
                                "a server thread panicked; exiting",
                            );
                            std::process::exit(101);
                        }
                    }
                })?;
            handles.push(h);
        }
        drop(ready_tx);
        let mut runs_on = None;
        for r in ready_rx.iter().take(threads) {
            runs_on = Some(r.map_err(|e| io::Error::other(format!("cannot start a ring: {e}")))?);
        }
        let congestion = match congestion {
            Some(c) => c.name().to_string(),
            None => crate::congestion::system_default().map_or_else(
                || "the machine's default".into(),
                |d| format!("{d} (the machine's default)"),
            ),
        };
        Ok(Rings {
            addr,
            threads,
            runs_on,
            congestion,
            handles,
        })
    }

    /// `"N thread(s)"` for the ready line.
    pub fn threads_text(&self) -> String {
        format!(
            "{} thread{}",
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )
    }

    /// `"io_uring rings, congestion C"` for the ready line under `-v`: how it runs.
    pub fn mechanics(&self) -> String {
        let rings = match self.runs_on {
            Some(RunsOn::OwnerRing) => "io_uring rings",
            Some(RunsOn::ReadinessLoop) => "epoll readiness loops",
            _ => "rings",
        };
        format!("{rings}, congestion {}", self.congestion)
    }

    /// Waits for every thread; the first error is the result.
    pub fn join(self) -> io::Result<()> {
        let mut first_err = None;
        for h in self.handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(_) => {
                    first_err = first_err.or(Some(io::Error::other("a server thread panicked")))
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// `n` listeners bound to `addr`; port 0 picks a free port, shared by all of them.
///
/// `SO_REUSEPORT` lets this process's threads each have a listener on one port, but it
/// would also let any other process of the same user join the group and take a share of
/// the connections — a second `ferry serve` started by mistake on a port already served
/// would run silently beside the first. So the port is claimed first: a socket *without*
/// `SO_REUSEPORT` binds only where nothing else is bound or listening (`SO_REUSEADDR`
/// only passes over connections in TIME_WAIT), and an error there is the operator's
/// "address already in use", as nginx says it. Once the group is bound, a later probe of
/// another ferry fails the same way against it.
fn reuseport_listeners(
    addr: SocketAddr,
    congestion: Option<&Congestion>,
    n: usize,
) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    let bound = claim(addr)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        if let Some(c) = congestion {
            c.apply(&s)?;
        }
        s.bind(&bound.into()).map_err(|e| in_use(addr, e))?;
        s.listen(4096)?;
        out.push(TcpListener::from(s));
    }
    Ok((out, bound))
}

/// The listeners a service manager passed (`crate::activation`): `--listen` is not
/// used; thread `i` accepts on passed socket `i mod n` (its own fd of it, so one ring
/// never closes another's), several threads sharing one accept queue where fewer
/// sockets than threads were passed. The address is the first socket's.
fn shared_listeners(
    passed: Vec<TcpListener>,
    congestion: Option<&Congestion>,
    n: usize,
) -> io::Result<(Vec<TcpListener>, SocketAddr)> {
    let addr = passed[0].local_addr()?;
    if let Some(c) = congestion {
        for l in &passed {
            c.apply(&Socket::from(l.try_clone()?))?;
        }
    }
    let out = (0..n.max(1))
        .map(|i| passed[i % passed.len()].try_clone())
        .collect::<io::Result<Vec<_>>>()?;
    Ok((out, addr))
}

/// Binds (and lets go of) a socket without `SO_REUSEPORT` at `addr`: the address the
/// listeners will use (port 0: a free port the kernel picked), or the reason it is taken.
fn claim(addr: SocketAddr) -> io::Result<SocketAddr> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|e| in_use(addr, e))?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("listener has no socket address"))
}

fn in_use(addr: SocketAddr, e: io::Error) -> io::Error {
    let why = if e.kind() == io::ErrorKind::AddrInUse {
        "address already in use (another process is bound or listening there)".to_string()
    } else {
        e.to_string()
    };
    io::Error::new(e.kind(), format!("--listen {addr}: {why}"))
}
