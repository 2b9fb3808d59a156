//! One server thread: a `LocalEngine` ring running every connection of its listener —
//! accept, recv of request heads, send of small responses and transfers of file bodies
//! — with no other thread involved.
//!
//! A connection has at most one op in flight (a recv, a send or a transfer), so its
//! responses go out in request order and its socket is closed only when the ring has let
//! go of it. Pipelined requests already received are answered one after another without
//! a recv in between. Timeouts are swept four times a second: a recv past its deadline
//! (header timeout while a head is incomplete, idle timeout between requests) or a send
//! past the send timeout is cancelled and the connection closed; a file body fails on
//! its own when no byte moved for the send timeout (`Transfer::idle_timeout`).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::{Event, LocalEngine, LocalHandle, OpId, Transfer};
use slab::Slab;

use super::access_log::AccessLog;
use super::clock::Clock;
use super::request::{self, Parsed};
use super::respond::{self, Body, Piece, Site};
use crate::acceptor::{self, Acceptor};
use crate::tables;
use crate::tls::{self, Received};

const SWEEP: Duration = Duration::from_millis(250);
/// While stopping, how long a connection that has sent nothing yet may take to send its
/// first request.
const FIRST_REQUEST_AT_STOP: Duration = Duration::from_secs(2);
/// How long a connection closed after an error keeps draining what the client still
/// sends, so that our answer is not destroyed by a reset (lingering close).
const LINGER: Duration = Duration::from_secs(2);

/// The limits and timeouts of a server thread.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    /// After the stop signal, how long responses in flight may take.
    pub grace: Duration,
}

enum Pending {
    None,
    Recv(OpId),
    Send(OpId),
    Transfer(LocalHandle, u64),
}

/// The rest of a response after the op in flight.
struct Rest {
    file: Option<Arc<File>>,
    pieces: VecDeque<Piece>,
    trailer: Vec<u8>,
    keep_alive: bool,
}

struct Conn {
    sock: Arc<TcpStream>,
    peer: Option<IpAddr>,
    /// Received bytes not parsed yet (no allocation while empty: an idle connection
    /// owns no buffer, its recv takes one of the ring's only when bytes arrive).
    buf: Vec<u8>,
    pending: Pending,
    rest: Option<Rest>,
    deadline: Instant,
    /// When the first byte of the head being received arrived (header timeout).
    head_started: Instant,
    /// Answered with `Connection: close`: drain input until EOF or `LINGER`, then close.
    lingering: bool,
    /// Close as soon as the op in flight ends.
    doomed: bool,
    /// A request was answered: while stopping, the connection is closed when idle. One
    /// that has not sent its first request yet gets [`FIRST_REQUEST_AT_STOP`] for it.
    served: bool,
    /// HTTPS: the connection's TLS state (what is received is opened, what is sent is
    /// sealed). Boxed: a plain connection pays one pointer.
    tls: Option<Box<tls::Session>>,
    /// Its record layer is in the kernel (kTLS).
    kernel_tls: bool,
}

pub struct Worker {
    ring: LocalEngine,
    site: Site,
    acceptor: Acceptor,
    conns: Slab<Conn>,
    ops: HashMap<OpId, usize>,
    shrinker: tables::Shrinker,
    limits: Limits,
    log: Option<AccessLog>,
    clock: Clock,
    /// The time after the last turn: one clock reading per batch of events.
    now: Instant,
    /// The events of the last turn (kept to reuse its allocation).
    batch: Vec<Event>,
    stop: Arc<AtomicBool>,
    /// HTTPS: every connection speaks TLS with this config.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// After its handshake, a connection's record layer moves to the kernel (kTLS).
    kernel_tls: bool,
}

impl Worker {
    pub fn new(
        ring: LocalEngine,
        site: Site,
        listener: TcpListener,
        limits: Limits,
        log: Option<AccessLog>,
        stop: Arc<AtomicBool>,
    ) -> Worker {
        Worker {
            ring,
            site,
            acceptor: Acceptor::new(listener),
            conns: Slab::new(),
            ops: HashMap::new(),
            shrinker: tables::Shrinker::default(),
            limits,
            log,
            clock: Clock::default(),
            now: Instant::now(),
            batch: Vec::new(),
            stop,
            tls: None,
            kernel_tls: false,
        }
    }

    /// Every connection speaks TLS with `config`; with `kernel`, its record layer
    /// moves to the kernel after the handshake.
    pub fn with_tls(mut self, config: Option<Arc<rustls::ServerConfig>>, kernel: bool) -> Worker {
        self.tls = config;
        self.kernel_tls = kernel;
        self
    }

    /// A TLS connection whose handshake is over moves its record layer to the kernel
    /// (when it can: between two records, nothing sealed still to send); from then on
    /// it is served as plain HTTP — file bodies by `sendfile`/`splice`, sealed by the
    /// kernel. A hand-over that fails half-way (the secrets are gone) dooms the
    /// connection.
    fn move_to_kernel_tls(&mut self, k: usize) {
        let c = &mut self.conns[k];
        let Some(s) = &mut c.tls else {
            return;
        };
        if s.counted || s.handshaking() {
            return;
        }
        if !self.kernel_tls {
            s.counted = true;
            return tls::count(false);
        }
        if !s.kernel_ready() {
            return; // again after the next receive or send
        }
        s.counted = true;
        if let Err(e) = tls::ktls::attach(&c.sock) {
            tls::note(
                c.peer,
                format_args!("kernel TLS refused ({e}); sealing in user space"),
            );
            return tls::count(false);
        }
        let conn = c.tls.take().and_then(|s| s.into_connection());
        match conn.map(|conn| tls::ktls::hand_over(conn, &c.sock)) {
            Some(Ok(())) => {
                c.kernel_tls = true;
                tls::count(true);
            }
            Some(Err(e)) => {
                tls::note(c.peer, format_args!("kernel TLS hand-over failed: {e}"));
                c.doomed = true;
            }
            None => c.doomed = true,
        }
    }

    /// Serves until the stop flag is raised, then finishes responses in flight (within
    /// the grace period) and returns.
    pub fn run(mut self) -> io::Result<()> {
        self.acceptor.start(&mut self.ring);
        let mut next_sweep = Instant::now() + SWEEP;
        let mut stop_by: Option<Instant> = None;
        loop {
            if stop_by.is_none() && self.stop.load(Ordering::Relaxed) {
                stop_by = Some(Instant::now() + self.limits.grace);
                self.begin_stop();
            }
            if let Some(by) = stop_by {
                let drained = self.conns.is_empty() && self.acceptor.settled();
                if drained || Instant::now() >= by {
                    return Ok(());
                }
            }
            let wait = self.acceptor.wait(Instant::now(), SWEEP);
            self.ring.turn(Some(wait))?;
            self.clock.tick();
            self.now = Instant::now();
            let mut batch = std::mem::take(&mut self.batch);
            batch.extend(self.ring.events());
            for ev in batch.drain(..) {
                self.on_event(ev);
            }
            self.batch = batch;
            while let Some(fd) = self.acceptor.poll(&mut self.ring, self.now) {
                self.accepted(TcpStream::from(fd));
            }
            if let Some(log) = &mut self.log {
                log.flush();
            }
            crate::error_log::tick();
            if self.now >= next_sweep {
                self.sweep(self.now);
                next_sweep = self.now + SWEEP;
            }
        }
    }

    fn begin_stop(&mut self) {
        self.acceptor.stop(&mut self.ring);
        let idle: Vec<(usize, OpId)> = self
            .conns
            .iter()
            .filter_map(|(k, c)| match c.pending {
                Pending::Recv(op) if (c.buf.is_empty() && c.served) || c.lingering => Some((k, op)),
                _ => None,
            })
            .collect();
        // A connection still waiting for its first request (the client connected just
        // before the stop) is given a moment to send it, not closed under it.
        let soon = self.now + FIRST_REQUEST_AT_STOP;
        for (_, c) in self.conns.iter_mut().filter(|(_, c)| !c.served) {
            c.deadline = c.deadline.min(soon);
        }
        for (k, op) in idle {
            self.conns[k].doomed = true;
            self.ring.cancel(op);
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Accepted { op, conn } => {
                // EMFILE and friends pause accepting (`Acceptor`).
                if let Some(fd) = self.acceptor.on_event(op, conn, self.now) {
                    self.accepted(TcpStream::from(fd));
                }
            }
            Event::Received { op, buf, result } => {
                let Some(k) = self.ops.remove(&op) else {
                    return;
                };
                self.received(k, buf, result);
            }
            Event::Sent { op, result, .. } => {
                let Some(k) = self.ops.remove(&op) else {
                    return;
                };
                self.conns[k].pending = Pending::None;
                match result {
                    Ok(_) => {
                        self.move_to_kernel_tls(k);
                        self.next_piece(k)
                    }
                    Err(_) => self.close(k),
                }
            }
            Event::TransferDone { op } => {
                let Some(k) = self.ops.remove(&op) else {
                    return;
                };
                let Pending::Transfer(h, want) =
                    std::mem::replace(&mut self.conns[k].pending, Pending::None)
                else {
                    return;
                };
                match h.try_take() {
                    Ok(Ok(done)) if done.bytes == want => self.next_piece(k),
                    // A file that shrank (UnexpectedEof), a peer gone, a send timeout:
                    // Content-Length was promised, so the connection cannot go on.
                    _ => self.close(k),
                }
            }
            // Ops this server does not start.
            _ => {}
        }
    }

    /// A new connection — also while stopping, when the accept op still delivers what
    /// it took before its cancel: its first request is answered.
    fn accepted(&mut self, sock: TcpStream) {
        if self.conns.len() >= self.limits.max_connections {
            // Refused at once: the client sees its connection closed, not a queue.
            acceptor::refused(self.limits.max_connections);
            return;
        }
        let _ = sock.set_nodelay(true);
        // The engine sends small bodies inline only to non-blocking sockets.
        let _ = sock.set_nonblocking(true);
        let peer = sock.peer_addr().ok().map(|a| a.ip());
        let tls = match &self.tls {
            Some(config) => match tls::Session::new(config) {
                Ok(s) => Some(Box::new(s)),
                Err(_) => return, // out of memory: closed at once
            },
            None => None,
        };
        let k = self.conns.insert(Conn {
            sock: Arc::new(sock),
            peer,
            buf: Vec::new(),
            pending: Pending::None,
            rest: None,
            deadline: self.now,
            head_started: self.now,
            lingering: false,
            doomed: false,
            served: false,
            tls,
            kernel_tls: false,
        });
        if self.stop.load(Ordering::Relaxed) {
            let c = &mut self.conns[k];
            c.deadline = c.deadline.min(self.now + FIRST_REQUEST_AT_STOP);
        }
        self.acceptor.admitted();
        self.serve_buffered(k);
    }

    /// `buf` holds exactly the bytes received (`recv_pooled`).
    fn received(&mut self, k: usize, buf: Vec<u8>, result: io::Result<usize>) {
        let c = &mut self.conns[k];
        c.pending = Pending::None;
        match result {
            Ok(n) if n > 0 && !c.doomed => {}
            _ => return self.close(k),
        }
        if c.lingering {
            return self.recv(k);
        }
        let was_empty = c.buf.is_empty();
        if let Some(s) = &mut c.tls {
            match s.receive(&buf, &mut c.buf) {
                Received::Failed { alert, why } => {
                    // Not TLS, or broken TLS: the alert, then the connection closes.
                    tls::note(c.peer, format_args!("failed: {why}"));
                    c.doomed = true;
                    if alert.is_empty() {
                        return self.close(k);
                    }
                    return self.send_records(k, alert);
                }
                Received::Fine { reply, closed } => {
                    if was_empty && !c.buf.is_empty() {
                        c.head_started = self.now;
                    }
                    // close_notify: nothing more comes; what is buffered is answered.
                    c.doomed |= closed && c.buf.is_empty();
                    if !reply.is_empty() {
                        // Handshake flights and tickets first; `next_piece` goes on.
                        return self.send_records(k, reply);
                    }
                    self.move_to_kernel_tls(k);
                    if self.conns[k].doomed {
                        return self.close(k);
                    }
                }
            }
        } else if was_empty {
            c.head_started = self.now;
            c.buf = buf;
        } else {
            c.buf.extend_from_slice(&buf);
        }
        self.serve_buffered(k);
    }

    /// Answers the next complete request in the buffer, or waits for more bytes.
    fn serve_buffered(&mut self, k: usize) {
        if self.stop.load(Ordering::Relaxed) && self.conns[k].buf.is_empty() && self.conns[k].served
        {
            return self.close(k);
        }
        let (response, line) = match request::parse(&self.conns[k].buf) {
            Parsed::Partial => return self.recv(k),
            Parsed::Invalid(status) => {
                self.conns[k].buf.clear();
                (respond::error(status, self.clock.http(), false), None)
            }
            Parsed::Complete(req, len) => {
                let c = &mut self.conns[k];
                c.served = true;
                c.buf.drain(..len);
                c.head_started = self.now;
                let mut r = self.site.respond(&req, self.clock.http(), self.now);
                if self.stop.load(Ordering::Relaxed) {
                    r.keep_alive = false; // the header may say keep-alive; we close after
                }
                let line = self
                    .log
                    .as_ref()
                    .map(|_| format!("{} {} HTTP/1.{}", req.method_text, req.target, req.minor));
                (r, line)
            }
        };
        if let Some(log) = &mut self.log {
            let peer = self.conns[k].peer;
            log.line(
                peer,
                self.clock.clf(),
                line.as_deref(),
                response.status,
                response.body_len,
            );
        }
        let (file, pieces, trailer) = match response.body {
            Body::None => (None, VecDeque::new(), Vec::new()),
            Body::File {
                file,
                pieces,
                trailer,
            } => (Some(file), pieces.into(), trailer),
        };
        self.conns[k].rest = Some(Rest {
            file,
            pieces,
            trailer,
            keep_alive: response.keep_alive,
        });
        if response.head.is_empty() {
            self.next_piece(k);
        } else {
            self.send(k, response.head);
        }
    }

    /// The op in flight of a response finished well: start the next one, or the next
    /// request when the response is complete.
    fn next_piece(&mut self, k: usize) {
        let c = &mut self.conns[k];
        if c.doomed {
            return self.close(k);
        }
        let Some(rest) = c.rest.as_mut() else {
            return self.serve_buffered(k);
        };
        if let Some(p) = rest.pieces.pop_front() {
            let file = rest.file.clone().expect("pieces come with their file");
            let trailer = if rest.pieces.is_empty() {
                std::mem::take(&mut rest.trailer)
            } else {
                Vec::new()
            };
            let mut t = Transfer::new(file, c.sock.clone())
                .src_offset(Some(p.offset))
                .len(Some(p.len))
                .header(p.prefix)
                .trailer(trailer)
                .idle_timeout(self.limits.send_timeout);
            if let Some(s) = &c.tls {
                t = t.seal(s.sealer());
            }
            match self.ring.submit(t) {
                Ok(h) => {
                    self.ops.insert(h.id(), k);
                    self.conns[k].pending = Pending::Transfer(h, p.len);
                }
                Err(_) => self.close(k),
            }
            return;
        }
        let keep_alive = rest.keep_alive;
        c.rest = None;
        if keep_alive {
            self.serve_buffered(k);
        } else {
            self.linger(k);
        }
    }

    /// Sends response bytes (sealed first on a TLS connection).
    fn send(&mut self, k: usize, bytes: Vec<u8>) {
        let bytes = match &self.conns[k].tls {
            Some(s) => match s.seal(&bytes) {
                Ok(records) => records,
                Err(_) => return self.close(k),
            },
            None => bytes,
        };
        self.send_records(k, bytes);
    }

    /// Sends bytes as they are (on a TLS connection: records already made).
    fn send_records(&mut self, k: usize, bytes: Vec<u8>) {
        let c = &mut self.conns[k];
        c.deadline = self.now + self.limits.send_timeout;
        let op = self.ring.send(c.sock.clone(), bytes);
        c.pending = Pending::Send(op);
        self.ops.insert(op, k);
    }

    fn recv(&mut self, k: usize) {
        let c = &mut self.conns[k];
        let now = self.now;
        let handshaking = c.tls.as_ref().is_some_and(|s| s.handshaking());
        if !c.lingering {
            c.deadline = if c.buf.is_empty() && !handshaking {
                now + self.limits.idle_timeout
            } else {
                // A head keeps its first deadline however slowly its bytes trickle in.
                c.head_started + self.limits.header_timeout
            };
        }
        if c.buf.is_empty() {
            // Going idle: give back what the last requests' bytes took.
            c.buf = Vec::new();
        }
        let op = self.ring.recv_pooled(c.sock.clone());
        c.pending = Pending::Recv(op);
        self.ops.insert(op, k);
    }

    /// After a `Connection: close` answer: no more writes, read what the client still
    /// sends until it closes (or `LINGER`), so that the kernel does not reset the
    /// connection under our answer.
    fn linger(&mut self, k: usize) {
        let c = &mut self.conns[k];
        if let Some(s) = &c.tls {
            // The TLS end of the answer (a few bytes into an idle socket buffer; a full
            // one only loses the alert, which clients do not need after Content-Length).
            let _ = (&*c.sock).write(&s.close_notify());
        } else if c.kernel_tls {
            let _ = tls::ktls::send_close_notify(&c.sock);
        }
        let _ = c.sock.shutdown(Shutdown::Write);
        c.lingering = true;
        c.deadline = self.now + LINGER;
        c.buf = Vec::new();
        self.recv(k);
    }

    fn sweep(&mut self, now: Instant) {
        self.site.cache.purge_expired(now);
        self.shrinker.sweep(&mut self.conns, &mut self.ops);
        let late: Vec<OpId> = self
            .conns
            .iter_mut()
            .filter(|(_, c)| c.deadline <= now && !c.doomed)
            .filter_map(|(_, c)| match c.pending {
                Pending::Recv(op) | Pending::Send(op) => {
                    c.doomed = true;
                    Some(op)
                }
                _ => None,
            })
            .collect();
        for op in late {
            self.ring.cancel(op);
        }
    }

    /// Forgets a connection with no op in flight; dropping the last `Arc` closes it.
    fn close(&mut self, k: usize) {
        let c = self.conns.remove(k);
        debug_assert!(matches!(c.pending, Pending::None));
        drop(c);
        self.acceptor.on_close(self.now);
    }
}
