//! A pair whose client speaks TLS, after its handshake. Two directions, each its own
//! engine transfer or loop, neither cancelling the other when it ends cleanly:
//!
//! * **Kernel TLS** (the client socket carries the record layer): both directions are
//!   ordinary engine transfers, spliced from the first byte (`splice_only`) — the
//!   payload never enters user space. What
//!   the kernel will not pass on as data (`EIO`/`EINVAL` on the client → backend
//!   transfer) is taken off the socket and read: the client's `close_notify` ends that
//!   direction like a FIN; another alert or a post-handshake message (a key update)
//!   ends the pair.
//! * **User space** (no kernel TLS): backend → client is an engine transfer sealed by
//!   the client's session (the plan's sealed strategy); client → backend is opened here
//!   a receive at a time, its plaintext sent on before the next receive (a slow backend
//!   slows the client, as the kernel's buffers would).
//!
//! Ends as the engine's two-way proxy does: an end of stream (or `close_notify`)
//! half-closes the other side; when the backend ends, the client gets `close_notify`
//! then a FIN; the pair closes when both directions have ended. A failure on either
//! side (a reset, a broken record) ends both at once, passed on as a reset.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::{LocalEngine, LocalHandle, OpId, ProxyError, Transfer, TransferError};
use socket2::Socket;

use crate::tls::ktls::{self, NotData};
use crate::tls::{Received, Session};

enum Up {
    /// Kernel TLS: client → backend spliced.
    Moving(LocalHandle),
    /// User space: waiting for the client's records …
    Receiving(OpId),
    /// … or sending their plaintext (`true`: the client has ended).
    Sending(OpId, bool),
    Ended,
}

enum Down {
    Moving(LocalHandle),
    /// User space: the sealed `close_notify` is being sent.
    Notifying(OpId),
    Ended,
}

/// One TLS pair in flight.
pub struct TlsPair {
    /// `None`: the kernel has the record layer.
    session: Option<Box<Session>>,
    client: Arc<TcpStream>,
    server: Arc<Socket>,
    up: Up,
    down: Down,
    up_bytes: u64,
    down_bytes: u64,
    /// Ops cancelled, whose completions may still come (kept in the worker's table
    /// until the pair is gone).
    cancelled: Vec<OpId>,
    /// When a byte last moved either way (transfers' progress is read at each sweep).
    active: Instant,
    seen: (u64, u64),
}

/// What an event did to the pair.
pub enum Outcome {
    Going,
    /// Both directions ended (`Ok`: bytes client → server, server → client), or the
    /// first failure (a [`ProxyError`] inside).
    Done(io::Result<(u64, u64)>),
}

fn failure(
    up: bool,
    kind: io::ErrorKind,
    errno: Option<i32>,
    bytes: (u64, u64),
    reason: String,
) -> io::Error {
    let direction = if up {
        "client → server"
    } else {
        "server → client"
    };
    let e = ProxyError {
        direction,
        errno,
        client_to_server: bytes.0,
        server_to_client: bytes.1,
        reason,
    };
    io::Error::new(kind, e)
}

impl TlsPair {
    /// Starts both directions. `session`: the client's TLS in user space (`None`: in
    /// its socket's kernel). `early`: plaintext of the client's already sent to the
    /// backend (counted here); `ended`: the client has sent all it will.
    pub fn start(
        ring: &mut LocalEngine,
        session: Option<Box<Session>>,
        client: Arc<TcpStream>,
        server: Arc<Socket>,
        early: u64,
        ended: bool,
        now: Instant,
    ) -> io::Result<TlsPair> {
        // Kernel TLS: plaintext stays in the kernel, small flows too (`splice_only`).
        let down = Transfer::new(server.clone(), client.clone());
        let down = match &session {
            Some(s) => down.seal(s.sealer()),
            None => down.splice_only(),
        };
        let down = ring.submit(down)?;
        let up = match &session {
            _ if ended => {
                let _ = server.shutdown(Shutdown::Write);
                Up::Ended
            }
            Some(_) => Up::Receiving(ring.recv_pooled(client.clone())),
            None => {
                match ring.submit(Transfer::new(client.clone(), server.clone()).splice_only()) {
                    Ok(h) => Up::Moving(h),
                    Err(e) => {
                        down.cancel();
                        return Err(e);
                    }
                }
            }
        };
        Ok(TlsPair {
            session,
            client,
            server,
            up,
            down: Down::Moving(down),
            up_bytes: early,
            down_bytes: 0,
            cancelled: Vec::new(),
            active: now,
            seen: (0, 0),
        })
    }

    /// The ops in flight or cancelled, for the worker's table.
    pub fn ops(&self) -> Vec<OpId> {
        let mut ops = self.cancelled.clone();
        match &self.up {
            Up::Moving(h) => ops.push(h.id()),
            Up::Receiving(op) | Up::Sending(op, _) => ops.push(*op),
            Up::Ended => {}
        }
        match &self.down {
            Down::Moving(h) => ops.push(h.id()),
            Down::Notifying(op) => ops.push(*op),
            Down::Ended => {}
        }
        ops
    }

    fn outcome(&self) -> Outcome {
        match (&self.up, &self.down) {
            (Up::Ended, Down::Ended) => Outcome::Done(Ok((self.up_bytes, self.down_bytes))),
            _ => Outcome::Going,
        }
    }

    /// Ends both directions: `up` says which failed first; `errno` when the kernel said.
    fn fail(
        &mut self,
        ring: &mut LocalEngine,
        up: bool,
        kind: io::ErrorKind,
        errno: Option<i32>,
        reason: String,
    ) -> Outcome {
        self.cancel(ring);
        let bytes = (self.up_bytes, self.down_bytes);
        Outcome::Done(Err(failure(up, kind, errno, bytes, reason)))
    }

    /// Stops what is in flight.
    fn cancel(&mut self, ring: &mut LocalEngine) {
        match std::mem::replace(&mut self.up, Up::Ended) {
            Up::Moving(h) => {
                self.up_bytes += h.progress().bytes();
                h.cancel();
                self.cancelled.push(h.id());
            }
            Up::Receiving(op) | Up::Sending(op, _) => {
                ring.cancel(op);
                self.cancelled.push(op);
            }
            Up::Ended => {}
        }
        match std::mem::replace(&mut self.down, Down::Ended) {
            Down::Moving(h) => {
                self.down_bytes = h.progress().bytes();
                h.cancel();
                self.cancelled.push(h.id());
            }
            Down::Notifying(op) => {
                ring.cancel(op);
                self.cancelled.push(op);
            }
            Down::Ended => {}
        }
    }

    /// Cuts the pair (the grace period is over): what is in flight ends `Interrupted`,
    /// and the pair then ends as on a failure.
    pub fn stop(&mut self, ring: &mut LocalEngine) {
        match &self.up {
            Up::Moving(h) => h.cancel(),
            Up::Receiving(op) | Up::Sending(op, _) => ring.cancel(*op),
            Up::Ended => {}
        }
        match &self.down {
            Down::Moving(h) => h.cancel(),
            Down::Notifying(op) => ring.cancel(*op),
            Down::Ended => {}
        }
    }

    /// The client → backend direction has ended cleanly: half-close the backend.
    fn up_ended(&mut self) -> Outcome {
        let _ = self.server.shutdown(Shutdown::Write);
        self.up = Up::Ended;
        self.outcome()
    }

    /// User space: the client's bytes arrived (none: it closed, or the receive failed).
    pub fn received(
        &mut self,
        ring: &mut LocalEngine,
        bytes: &[u8],
        result: io::Result<usize>,
        now: Instant,
    ) -> Outcome {
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                let reason = format!("receiving from the client: {e}");
                return self.fail(ring, true, e.kind(), e.raw_os_error(), reason);
            }
        };
        self.active = now;
        let mut plain = Vec::new();
        let closed = match (n, self.session.as_mut()) {
            (0, _) | (_, None) => true, // a FIN without close_notify: an end all the same
            (_, Some(s)) => match s.receive_queued(bytes, &mut plain) {
                Received::Fine { closed, .. } => closed,
                Received::Failed { why, .. } => {
                    let reason = format!("a bad TLS record from the client: {why}");
                    let kind = io::ErrorKind::InvalidData;
                    return self.fail(ring, true, kind, Some(libc::EBADMSG), reason);
                }
            },
        };
        if !plain.is_empty() {
            self.up_bytes += plain.len() as u64;
            self.up = Up::Sending(ring.send(self.server.clone(), plain), closed);
            return Outcome::Going;
        }
        self.up_next(ring, closed)
    }

    fn up_next(&mut self, ring: &mut LocalEngine, closed: bool) -> Outcome {
        if closed {
            return self.up_ended();
        }
        self.up = Up::Receiving(ring.recv_pooled(self.client.clone()));
        Outcome::Going
    }

    /// User space: a send finished (the client's plaintext to the backend, or
    /// `close_notify` to the client).
    pub fn sent(&mut self, ring: &mut LocalEngine, op: OpId, result: io::Result<usize>) -> Outcome {
        if let Up::Sending(sending, closed) = self.up {
            if sending == op {
                return match result {
                    Ok(_) => self.up_next(ring, closed),
                    Err(e) => {
                        // The backend is gone: as the engine reports a dead destination.
                        let reason = format!("sending to the backend: {e}");
                        self.fail(ring, true, e.kind(), Some(libc::EPIPE), reason)
                    }
                };
            }
        }
        if matches!(self.down, Down::Notifying(n) if n == op) {
            if let Err(e) = result {
                let reason = format!("sending close_notify: {e}");
                return self.fail(ring, false, e.kind(), Some(libc::EPIPE), reason);
            }
            return self.down_ended();
        }
        Outcome::Going
    }

    fn down_ended(&mut self) -> Outcome {
        let _ = self.client.shutdown(Shutdown::Write);
        self.down = Down::Ended;
        self.outcome()
    }

    /// A transfer of the pair finished (`op`: its id).
    pub fn transfer_done(&mut self, ring: &mut LocalEngine, op: OpId) -> Outcome {
        if matches!(&self.up, Up::Moving(h) if h.id() == op) {
            return self.up_done(ring);
        }
        let Down::Moving(h) = std::mem::replace(&mut self.down, Down::Ended) else {
            return Outcome::Going;
        };
        let result = match h.try_take() {
            Ok(r) => r,
            Err(h) => {
                self.down = Down::Moving(h);
                return Outcome::Going;
            }
        };
        match result {
            Ok(done) => {
                // The backend ended: the client is told (close_notify), then a FIN.
                self.down_bytes = done.bytes;
                match &self.session {
                    Some(s) => {
                        let notify = s.close_notify();
                        self.down = Down::Notifying(ring.send(self.client.clone(), notify));
                        Outcome::Going
                    }
                    None => {
                        let _ = ktls::send_close_notify(&self.client);
                        self.down_ended()
                    }
                }
            }
            Err(e) => {
                let t = TransferError::of(&e);
                self.down_bytes = t.map_or(0, |t| t.bytes);
                let errno = t.and_then(|t| t.errno).or(e.raw_os_error());
                let reason = e.to_string();
                self.fail(ring, false, e.kind(), errno, reason)
            }
        }
    }

    /// Kernel TLS: the client → backend transfer finished.
    fn up_done(&mut self, ring: &mut LocalEngine) -> Outcome {
        let Up::Moving(h) = std::mem::replace(&mut self.up, Up::Ended) else {
            return Outcome::Going;
        };
        let result = match h.try_take() {
            Ok(r) => r,
            Err(h) => {
                self.up = Up::Moving(h);
                return Outcome::Going;
            }
        };
        let e = match result {
            Ok(done) => {
                self.up_bytes += done.bytes;
                return self.up_ended();
            }
            Err(e) => e,
        };
        let t = TransferError::of(&e);
        self.up_bytes += t.map_or(0, |t| t.bytes);
        let errno = t.and_then(|t| t.errno).or(e.raw_os_error());
        if !matches!(errno, Some(libc::EIO) | Some(libc::EINVAL)) {
            let reason = e.to_string();
            return self.fail(ring, true, e.kind(), errno, reason);
        }
        // The kernel would not pass the next record on as data: what was it?
        match ktls::next_not_data(&self.client) {
            Ok(NotData::CloseNotify) => self.up_ended(),
            Ok(NotData::Alert(level, desc)) => {
                let reason = format!("the client sent alert {desc} (level {level})");
                self.fail(ring, true, io::ErrorKind::ConnectionAborted, None, reason)
            }
            Ok(NotData::Handshake) => {
                let reason = "the client sent a key update or another post-handshake \
                              message, which kernel TLS cannot follow"
                    .to_string();
                self.fail(ring, true, io::ErrorKind::Unsupported, None, reason)
            }
            Ok(NotData::Neither) => {
                let reason = e.to_string();
                self.fail(ring, true, e.kind(), errno, reason)
            }
            Err(re) => {
                let reason = format!("{e}; reading the record: {re}");
                self.fail(ring, true, re.kind(), re.raw_os_error(), reason)
            }
        }
    }

    /// Whether nothing moved either way for `idle` (then the worker ends the pair).
    pub fn idle_for(&mut self, idle: Duration, now: Instant) -> bool {
        let up = match &self.up {
            Up::Moving(h) => h.progress().bytes(),
            _ => self.up_bytes,
        };
        let down = match &self.down {
            Down::Moving(h) => h.progress().bytes(),
            _ => self.down_bytes,
        };
        if (up, down) != self.seen {
            self.seen = (up, down);
            self.active = now;
        }
        now.duration_since(self.active) >= idle
    }

    /// Ends the pair for being idle, as the engine's proxy does (`TimedOut`).
    pub fn time_out(&mut self, ring: &mut LocalEngine, idle: Duration) -> Outcome {
        let reason = format!("idle for {} s", idle.as_secs_f64());
        self.fail(ring, true, io::ErrorKind::TimedOut, None, reason)
    }
}
