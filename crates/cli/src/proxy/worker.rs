//! One proxy thread: a `LocalEngine` ring running every pair of its listener — accept,
//! connect to a backend (round robin, the next one on refusal or timeout), the optional
//! PROXY protocol header, then the engine's two-way proxy — with no other thread.
//! With `--tls-cert` the client's handshake comes first (`handshake`), then the pair
//! runs as a `tls_pair` (spliced over kernel TLS, sealed and opened in user space
//! elsewhere).
//!
//! A pair is closed when both directions have ended. A direction that failed on a
//! kernel error (a reset, a dead peer) closes both sockets with `SO_LINGER 0`, so the
//! other side sees a reset too, never a clean end of a truncated stream.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::{Event, LocalEngine, LocalProxyHandle, OpId, Proxy, ProxyError};
use slab::Slab;
use socket2::{Domain, SockRef, Socket, Type};

use super::access_log::{self, End, Line};
use super::backends::{Backends, Health};
use super::handshake::{Finished, Handshake, Step};
use super::proxy_protocol::{self, Version};
use super::tls_pair::{Outcome, TlsPair};
use crate::acceptor::{self, Acceptor};
use crate::congestion::Congestion;
use crate::error_log::{self, Kind, Level};
use crate::log_file::{LogWriter, Target};
use crate::tables;
use crate::tls::Session;

const SWEEP: Duration = Duration::from_millis(100);

/// What every thread of `ferry proxy` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backends: Arc<Health>,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// Per thread.
    pub max_connections: usize,
    pub grace: Duration,
    pub send_proxy: Option<Version>,
    /// Set on each backend socket (the listener carries it for the clients).
    pub congestion: Option<Congestion>,
    /// `--access-log`: each thread writes its own lines.
    pub access_log: Option<Target>,
    /// `--tls-cert`/`--tls-key`: clients speak TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The record layer moves to the kernel after each handshake.
    pub kernel_tls: bool,
    pub handshake_timeout: Duration,
}

enum State {
    /// The client's TLS handshake (no backend yet).
    Handshake(Handshake),
    Connecting {
        op: OpId,
        server: Arc<Socket>,
        backend: usize,
        tries: usize,
        deadline: Instant,
        cancelled: bool,
    },
    /// The PROXY protocol header, and plaintext the client sent with its handshake,
    /// are being sent.
    Header {
        op: OpId,
        server: Arc<Socket>,
    },
    Running(LocalProxyHandle, Arc<Socket>),
    /// A TLS client's pair (kernel TLS or user space).
    Tls(Box<TlsPair>, Arc<Socket>),
}

struct Pair {
    client: Arc<TcpStream>,
    peer: SocketAddr,
    local: SocketAddr,
    state: State,
    accepted: Instant,
    /// The backend connected to, or last tried.
    backend: usize,
    /// A TLS client's finished handshake, until its pair starts. Boxed: a plain pair
    /// pays one pointer.
    tls: Option<Box<Finished>>,
}

pub struct Worker {
    ring: LocalEngine,
    acceptor: Acceptor,
    backends: Backends,
    pairs: Slab<Pair>,
    ops: HashMap<OpId, usize>,
    shrinker: tables::Shrinker,
    settings: Settings,
    stop: Arc<AtomicBool>,
    /// The grace period is over: what is still open is being cancelled.
    cutting: bool,
    access_log: Option<LogWriter>,
}

impl Worker {
    pub fn new(
        ring: LocalEngine,
        listener: TcpListener,
        settings: Settings,
        thread: usize,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Worker> {
        let access_log = settings
            .access_log
            .as_ref()
            .map(Target::writer)
            .transpose()?;
        Ok(Worker {
            ring,
            acceptor: Acceptor::new(listener),
            backends: Backends::new(settings.backends.clone(), thread),
            pairs: Slab::new(),
            ops: HashMap::new(),
            shrinker: tables::Shrinker::default(),
            settings,
            stop,
            cutting: false,
            access_log,
        })
    }

    /// Proxies until the stop flag is raised; then lets live pairs finish within the
    /// grace period, cancels the rest, and returns when every pair is closed.
    pub fn run(mut self) -> io::Result<()> {
        self.acceptor.start(&mut self.ring);
        let mut next_sweep = Instant::now() + SWEEP;
        let mut grace_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if grace_until.is_none() && self.stop.load(Ordering::Relaxed) {
                grace_until = Some(now + self.settings.grace);
                self.acceptor.stop(&mut self.ring);
            }
            if let Some(until) = grace_until {
                if self.pairs.is_empty() && self.acceptor.settled() {
                    self.flush_log();
                    return Ok(());
                }
                if now >= until && !self.cutting {
                    self.cutting = true;
                    self.cancel_all();
                }
                if now >= until + Duration::from_secs(5) {
                    self.flush_log();
                    return Ok(()); // dropping the ring ends what is left
                }
            }
            self.ring.turn(Some(self.acceptor.wait(now, SWEEP)))?;
            let events: Vec<Event> = self.ring.events().collect();
            let now = Instant::now();
            for ev in events {
                self.on_event(ev, now);
            }
            while let Some(fd) = self.acceptor.poll(&mut self.ring, now) {
                self.accepted(TcpStream::from(fd), now);
            }
            self.flush_log();
            error_log::tick();
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP;
            }
        }
    }

    fn flush_log(&mut self) {
        if let Some(Err(e)) = self.access_log.as_mut().map(LogWriter::flush) {
            error_log::say(
                Level::Error,
                Kind::LogFile,
                format_args!("reopening the access log: {e} (still writing the old file)"),
            );
        }
    }

    fn on_event(&mut self, ev: Event, now: Instant) {
        match ev {
            Event::Accepted { op, conn } => {
                // EMFILE and friends pause accepting (`Acceptor`).
                if let Some(fd) = self.acceptor.on_event(op, conn, now) {
                    self.accepted(TcpStream::from(fd), now);
                }
            }
            Event::Connected { op, result } => {
                if let Some(k) = self.ops.remove(&op) {
                    self.connected(k, result, now);
                }
            }
            Event::Received { op, buf, result } => {
                let Some(k) = self.ops.remove(&op) else {
                    return;
                };
                // `recv_pooled` gives exactly the bytes, `recv` its whole buffer back.
                let got = *result.as_ref().unwrap_or(&0);
                let buf = &buf[..got.min(buf.len())];
                let p = &mut self.pairs[k];
                match &mut p.state {
                    State::Handshake(hs) => {
                        let kernel = self.settings.kernel_tls;
                        let step = hs.received(&mut self.ring, &p.client, buf, kernel);
                        self.handshake_step(k, step, now);
                    }
                    State::Tls(r, _) => {
                        let o = r.received(&mut self.ring, buf, result, now);
                        self.tls_outcome(k, o);
                    }
                    _ => {}
                }
            }
            Event::Sent { op, result, .. } => {
                let Some(k) = self.ops.remove(&op) else {
                    return;
                };
                let p = &mut self.pairs[k];
                match &mut p.state {
                    State::Header { server, .. } => {
                        let server = server.clone();
                        match result {
                            Ok(_) => self.start_proxy(k, server, now),
                            Err(e) => {
                                let end = access_log::connect_end(&e);
                                self.close(k, true, End::Cut, end);
                            }
                        }
                    }
                    State::Handshake(hs) => {
                        let kernel = self.settings.kernel_tls;
                        let step = hs.sent(&mut self.ring, &p.client, result.is_ok(), kernel);
                        self.handshake_step(k, step, now);
                    }
                    State::Tls(r, _) => {
                        let o = r.sent(&mut self.ring, op, result);
                        self.tls_outcome(k, o);
                    }
                    _ => {}
                }
            }
            Event::TransferDone { op } => {
                let Some(k) = self.ops.remove(&op) else {
                    return;
                };
                match &mut self.pairs.get_mut(k).map(|p| &mut p.state) {
                    Some(State::Running(h, _)) if h.is_finished() => self.finished(k, None),
                    Some(State::Tls(r, _)) => {
                        let o = r.transfer_done(&mut self.ring, op);
                        self.tls_outcome(k, o);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn accepted(&mut self, client: TcpStream, now: Instant) {
        // Accepted while stopping too (before the cancel took effect): proxied in the
        // grace like the others.
        if self.acceptor.is_paused() {
            // Out of fds: the spare fds are for the pairs already open; this client
            // waits (as it would have in the listen queue).
            return self.acceptor.hold(client.into());
        }
        if self.pairs.len() >= self.settings.max_connections {
            // Closed at once: refused, not queued.
            acceptor::refused(self.settings.max_connections);
            return;
        }
        let _ = client.set_nodelay(true);
        let (Ok(peer), Ok(local)) = (client.peer_addr(), client.local_addr()) else {
            return; // already gone
        };
        let (backend, addr) = self.backends.pick(now);
        let k = self.pairs.vacant_key();
        let client = Arc::new(client);
        let state = match &self.settings.tls {
            // The handshake first; the backend (picked now) once it is over.
            Some(config) => match Session::new(config) {
                Ok(session) => {
                    let deadline = now + self.settings.handshake_timeout;
                    let hs =
                        Handshake::start(&mut self.ring, &client, session, deadline, peer.ip());
                    self.ops.insert(hs.op, k);
                    Some(State::Handshake(hs))
                }
                Err(_) => None,
            },
            None => self.connect(k, backend, addr, 1, now),
        };
        match state {
            Some(state) => {
                self.acceptor.admitted();
                self.pairs.insert(Pair {
                    client,
                    peer,
                    local,
                    state,
                    accepted: now,
                    backend,
                    tls: None,
                });
            }
            // No socket for the backend: out of fds (accepting paused, the client
            // waits) or some other failure (closed).
            None if self.acceptor.is_paused() => {
                if let Ok(c) = Arc::try_unwrap(client) {
                    self.acceptor.hold(c.into());
                }
            }
            None => drop(client),
        }
    }

    /// After a handshake op: wait, close, or (over) connect the backend.
    fn handshake_step(&mut self, k: usize, step: Step, now: Instant) {
        match step {
            Step::Waiting => {
                if let State::Handshake(hs) = &self.pairs[k].state {
                    self.ops.insert(hs.op, k);
                }
            }
            Step::Closed => self.close(k, false, End::Cut, End::Cut),
            Step::Over => {
                let p = &mut self.pairs[k];
                let State::Handshake(hs) = &mut p.state else {
                    return;
                };
                let Some(done) = hs.finish(&p.client, self.settings.kernel_tls) else {
                    return self.close(k, true, End::Cut, End::Cut);
                };
                p.tls = Some(Box::new(done));
                let backend = p.backend;
                let addr = self.backends.addr(backend);
                match self.connect(k, backend, addr, 1, now) {
                    Some(state) => self.pairs[k].state = state,
                    None => self.close(k, false, End::Cut, End::Cut),
                }
            }
        }
    }

    /// Starts a connect of pair `k` to backend `i`; `None` when no socket could be made.
    fn connect(
        &mut self,
        k: usize,
        i: usize,
        addr: SocketAddr,
        tries: usize,
        now: Instant,
    ) -> Option<State> {
        let s = match Socket::new(Domain::for_address(addr), Type::STREAM, None) {
            Ok(s) => s,
            Err(e) => {
                // Out of fds: stop taking clients we cannot connect.
                self.acceptor.out_of(&e, &mut self.ring, now);
                return None;
            }
        };
        let _ = s.set_tcp_nodelay(true);
        if let Some(c) = &self.settings.congestion {
            // The listeners took the same name at start, so the kernel has it.
            let _ = c.apply(&s);
        }
        let server = Arc::new(s);
        let op = self.ring.connect(server.clone(), addr);
        self.ops.insert(op, k);
        Some(State::Connecting {
            op,
            server,
            backend: i,
            tries,
            deadline: now + self.settings.connect_timeout,
            cancelled: false,
        })
    }

    fn connected(&mut self, k: usize, result: io::Result<()>, now: Instant) {
        let State::Connecting {
            server,
            backend,
            tries,
            cancelled,
            ..
        } = &self.pairs[k].state
        else {
            return;
        };
        let (server, backend, tries, cancelled) = (server.clone(), *backend, *tries, *cancelled);
        if let Err(e) = result {
            if self.cutting {
                // Cancelled at the end of the grace: the backend did nothing wrong.
                return self.close(k, false, End::Grace, End::Grace);
            }
            let e = if cancelled {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no answer within --connect-timeout {} s",
                        self.settings.connect_timeout.as_secs_f64()
                    ),
                )
            } else {
                e
            };
            // Refused, unreachable or timed out: skip it for a while, try the next one.
            self.backends.mark_down(backend, now, &e);
            let addr = self.backends.addr(backend);
            let peer = self.pairs[k].peer;
            if tries >= self.backends.len() || !self.acceptor.is_open() {
                error_log::say(
                    Level::Warn,
                    Kind::Connect,
                    format_args!("client {peer}: connect to backend {addr}: {e}; no backend left to try, client closed"),
                );
                return self.close(k, false, End::Cut, access_log::connect_end(&e));
            }
            let (next, next_addr) = self.backends.after(backend);
            error_log::say(
                Level::Warn,
                Kind::Connect,
                format_args!("client {peer}: connect to backend {addr}: {e}; trying {next_addr}"),
            );
            self.pairs[k].backend = next;
            match self.connect(k, next, next_addr, tries + 1, now) {
                Some(state) => self.pairs[k].state = state,
                None => self.close(k, false, End::Cut, End::Cut),
            }
            return;
        }
        self.backends.mark_up(backend, now);
        let p = &mut self.pairs[k];
        // The PROXY header, then what the client sent with its TLS handshake.
        let mut first = match self.settings.send_proxy {
            Some(v) => proxy_protocol::header(v, p.peer, p.local),
            None => Vec::new(),
        };
        if let Some(t) = &p.tls {
            first.extend_from_slice(&t.early);
        }
        if first.is_empty() {
            return self.start_proxy(k, server, now);
        }
        let op = self.ring.send(server.clone(), first);
        p.state = State::Header { op, server };
        self.ops.insert(op, k);
    }

    fn start_proxy(&mut self, k: usize, server: Arc<Socket>, now: Instant) {
        let p = &mut self.pairs[k];
        let _ = server.set_nonblocking(true);
        let _ = p.client.set_nonblocking(true);
        if let Some(t) = p.tls.take() {
            let client = p.client.clone();
            let (session, early, ended) = (t.session, t.early.len() as u64, t.ended);
            let pair = TlsPair::start(
                &mut self.ring,
                session,
                client,
                server.clone(),
                early,
                ended,
                now,
            );
            return match pair {
                Ok(r) => {
                    for id in r.ops() {
                        self.ops.insert(id, k);
                    }
                    self.pairs[k].state = State::Tls(Box::new(r), server);
                }
                Err(_) => self.close(k, true, End::Cut, End::Cut),
            };
        }
        let proxy =
            Proxy::new(p.client.clone(), server.clone()).idle_timeout(self.settings.idle_timeout);
        match self.ring.proxy(proxy) {
            Ok(h) => {
                for id in h.ids() {
                    self.ops.insert(id, k);
                }
                self.pairs[k].state = State::Running(h, server);
            }
            Err(_) => self.close(k, true, End::Cut, End::Cut),
        }
    }

    /// Both directions have ended (`tls_result`: a TLS pair's): close the pair, with
    /// resets when a side failed.
    fn finished(&mut self, k: usize, tls_result: Option<io::Result<(u64, u64)>>) {
        let p = self.pairs.remove(k);
        self.acceptor.on_close(Instant::now());
        let not_done = || Err(io::Error::other("proxy not finished"));
        // Both directions may end in one batch, a TLS pair's ops may still complete: their
        // events must not find a reused slot.
        let (result, server) = match p.state {
            State::Running(h, server) => {
                for id in h.ids() {
                    self.ops.remove(&id);
                }
                let result = h.try_take().unwrap_or_else(|_| not_done());
                (result, server)
            }
            State::Tls(r, server) => {
                for id in r.ops() {
                    self.ops.remove(&id);
                }
                (tls_result.unwrap_or_else(not_done), server)
            }
            _ => return,
        };
        // A kernel error (reset, dead peer): pass it on as a reset. Timeouts and cancels
        // end with a clean close.
        let reset = match &result {
            Ok(_) => false,
            Err(e) => ProxyError::of(e).is_none_or(|pe| pe.errno.is_some()),
        };
        if let Some(out) = &mut self.access_log {
            let (bytes, client_end, server_end) = access_log::ends(&result, self.cutting);
            Line {
                client: p.peer,
                backend: self.backends.addr(p.backend),
                bytes,
                lived: p.accepted.elapsed(),
                client_end,
                server_end,
            }
            .write(out);
        }
        if reset {
            let _ = SockRef::from(&*p.client).set_linger(Some(Duration::ZERO));
            let _ = server.set_linger(Some(Duration::ZERO));
        }
    }

    /// Closes pair `k` now (no proxy running): the client, and the server if any;
    /// `ends` are what the access log says of each side.
    fn close(&mut self, k: usize, reset: bool, client_end: End, server_end: End) {
        let p = self.pairs.remove(k);
        self.acceptor.on_close(Instant::now());
        if reset {
            let _ = SockRef::from(&*p.client).set_linger(Some(Duration::ZERO));
        }
        if let Some(out) = &mut self.access_log {
            Line {
                client: p.peer,
                backend: self.backends.addr(p.backend),
                bytes: (0, 0),
                lived: p.accepted.elapsed(),
                client_end,
                server_end,
            }
            .write(out);
        }
    }

    /// What an event of a TLS pair did: its new ops are filed, or the pair is done.
    fn tls_outcome(&mut self, k: usize, o: Outcome) {
        match o {
            Outcome::Going => {
                if let State::Tls(r, _) = &self.pairs[k].state {
                    for id in r.ops() {
                        self.ops.insert(id, k);
                    }
                }
            }
            Outcome::Done(result) => self.finished(k, Some(result)),
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.shrinker.sweep(&mut self.pairs, &mut self.ops);
        let (mut late, mut tls) = (Vec::new(), Vec::new());
        for (k, p) in self.pairs.iter_mut() {
            match &mut p.state {
                State::Connecting {
                    op,
                    deadline,
                    cancelled,
                    ..
                } if *deadline <= now && !*cancelled => {
                    *cancelled = true;
                    self.ring.cancel(*op);
                }
                State::Handshake(hs) if hs.deadline <= now => late.push((k, hs.op)),
                State::Tls(..) => tls.push(k),
                _ => {}
            }
        }
        for (k, op) in late {
            // Too slow a handshake: cut (its op completes later, to no one).
            self.ring.cancel(op);
            self.ops.remove(&op);
            let peer = Some(self.pairs[k].peer.ip());
            let t = self.settings.handshake_timeout.as_secs_f64();
            crate::tls::note(
                peer,
                format_args!("no handshake within --handshake-timeout {t} s"),
            );
            self.close(k, false, End::Timeout, End::Cut);
        }
        let idle = self.settings.idle_timeout;
        for k in tls {
            if let State::Tls(r, _) = &mut self.pairs[k].state {
                if r.idle_for(idle, now) {
                    let o = r.time_out(&mut self.ring, idle);
                    self.tls_outcome(k, o);
                }
            }
        }
    }

    fn cancel_all(&mut self) {
        for (_, p) in self.pairs.iter_mut() {
            match &mut p.state {
                State::Running(h, _) => h.cancel(),
                State::Connecting { op, cancelled, .. } if !*cancelled => {
                    *cancelled = true;
                    self.ring.cancel(*op);
                }
                State::Header { op, .. } => self.ring.cancel(*op),
                State::Handshake(hs) => self.ring.cancel(hs.op),
                State::Tls(r, _) => r.stop(&mut self.ring),
                _ => {}
            }
        }
    }
}
