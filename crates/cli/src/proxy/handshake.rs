//! A client's TLS handshake, before any backend is connected (`--tls-cert`): what
//! arrives is given to rustls, its flights are sent back, and once the handshake is
//! over the record layer moves to the kernel where it can (between two records, the
//! session tickets sent). Plaintext the client sent right behind its `Finished` is kept
//! for the backend. A client that does not finish within `--handshake-timeout` is cut.

use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use ferry_engine::{LocalEngine, OpId};

use crate::tls::{self, Received, Session};

/// A handshake in progress: one op at a time on the client (a receive, or the send of
/// a flight).
pub struct Handshake {
    /// Taken by [`finish`](Handshake::finish).
    session: Option<Box<Session>>,
    pub op: OpId,
    pub deadline: Instant,
    /// Plaintext received with or after the client's `Finished`.
    early: Vec<u8>,
    /// The op is the send of an alert: the connection closes after it.
    alerting: bool,
    /// The client sent `close_notify` with its last flight (it sends nothing more).
    ended: bool,
    peer: Option<IpAddr>,
}

/// Where a handshake stands after an op finished.
pub enum Step {
    /// An op was issued (its id is in `Handshake::op`).
    Waiting,
    /// Over: [`Handshake::finish`].
    Over,
    /// Close the connection: the client left, or broke the protocol (its alert sent).
    Closed,
}

/// A finished handshake: where the records go from now on, and the plaintext the client
/// already sent.
pub struct Finished {
    /// `Some`: sealed and opened in user space by this session; `None`: by the kernel.
    pub session: Option<Box<Session>>,
    pub early: Vec<u8>,
    /// The client has ended already (`close_notify` after `early`).
    pub ended: bool,
}

impl Handshake {
    pub fn start(
        ring: &mut LocalEngine,
        client: &Arc<TcpStream>,
        session: Session,
        deadline: Instant,
        peer: IpAddr,
    ) -> Handshake {
        Handshake {
            session: Some(Box::new(session)),
            op: ring.recv_pooled(client.clone()),
            deadline,
            early: Vec::new(),
            alerting: false,
            ended: false,
            peer: Some(peer),
        }
    }

    /// The client's bytes arrived (`bytes` empty: it closed or failed).
    pub fn received(
        &mut self,
        ring: &mut LocalEngine,
        client: &Arc<TcpStream>,
        bytes: &[u8],
        kernel: bool,
    ) -> Step {
        let Some(session) = self.session.as_mut() else {
            return Step::Closed;
        };
        if bytes.is_empty() {
            return Step::Closed;
        }
        match session.receive(bytes, &mut self.early) {
            Received::Failed { alert, why } => {
                tls::note(self.peer, format_args!("handshake failed: {why}"));
                if alert.is_empty() {
                    return Step::Closed;
                }
                self.alerting = true;
                self.op = ring.send(client.clone(), alert);
                Step::Waiting
            }
            Received::Fine { reply, closed } => {
                self.ended |= closed;
                if reply.is_empty() {
                    return self.go_on(ring, client, kernel);
                }
                self.op = ring.send(client.clone(), reply);
                Step::Waiting
            }
        }
    }

    /// A flight (or the alert) went out, or could not.
    pub fn sent(
        &mut self,
        ring: &mut LocalEngine,
        client: &Arc<TcpStream>,
        ok: bool,
        kernel: bool,
    ) -> Step {
        if !ok || self.alerting {
            return Step::Closed;
        }
        self.go_on(ring, client, kernel)
    }

    /// Receives more, or says the handshake is over: for the kernel, only once it may
    /// take the record layer (at a record's first byte).
    fn go_on(&mut self, ring: &mut LocalEngine, client: &Arc<TcpStream>, kernel: bool) -> Step {
        let Some(s) = &self.session else {
            return Step::Closed;
        };
        if s.handshaking() && self.ended {
            return Step::Closed; // gave up half-way
        }
        if s.handshaking() {
            self.op = ring.recv_pooled(client.clone());
            return Step::Waiting;
        }
        if kernel && !self.ended && !s.kernel_ready() {
            // The client's first records follow its Finished: take just the rest of
            // the one begun, so that the kernel takes over at the next (a receive of
            // any size could end inside a record again, and again).
            self.op = match s.to_record_end() {
                0 => ring.recv_pooled(client.clone()), // tickets still to send
                n => ring.recv(client.clone(), vec![0; n]),
            };
            return Step::Waiting;
        }
        Step::Over
    }

    /// Moves the record layer to `client`'s kernel when `kernel` (falling back to user
    /// space if the socket refuses the `tls` protocol, and staying there for a client
    /// that has ended); `None`: a hand-over failed half-way (the secrets are gone) and
    /// the connection can only be closed.
    pub fn finish(&mut self, client: &TcpStream, kernel: bool) -> Option<Finished> {
        let early = std::mem::take(&mut self.early);
        let session = self.session.take()?;
        let ended = self.ended;
        let user = |session, early| {
            tls::count(false);
            Some(Finished {
                session: Some(session),
                early,
                ended,
            })
        };
        if !kernel || ended {
            return user(session, early);
        }
        if let Err(e) = tls::ktls::attach(client) {
            let why = format_args!("kernel TLS refused ({e}); sealing in user space");
            tls::note(self.peer, why);
            return user(session, early);
        }
        let peer = self.peer;
        match session.into_connection() {
            Some(conn) => match tls::ktls::hand_over(conn, client) {
                Ok(()) => {
                    tls::count(true);
                    Some(Finished {
                        session: None,
                        early,
                        ended: false,
                    })
                }
                Err(e) => {
                    tls::note(peer, format_args!("kernel TLS hand-over failed: {e}"));
                    None
                }
            },
            None => None,
        }
    }
}
