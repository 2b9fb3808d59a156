//! One TLS connection's rustls state: bytes received go in, plaintext and the records
//! to answer with (handshake flights, session tickets, alerts) come out; plaintext to
//! send is sealed here, and file bodies by the engine through [`Session::sealer`]. The
//! state sits behind a mutex only because a transfer's sealer must be `Send`: the
//! server thread and the engine's executor on it never contend for it.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use ferry_engine::Seal;
use rustls::{ServerConfig, ServerConnection};

/// A server-side TLS connection.
pub struct Session {
    conn: Arc<Mutex<ServerConnection>>,
    /// Where the received stream is in its records: bytes left of the current record,
    /// and the bytes of a record header seen so far (a hand-over to the kernel must
    /// happen between two records).
    record_left: usize,
    header: ([u8; 5], usize),
    /// Its record layer was counted (`tls::count`) when the handshake ended.
    pub counted: bool,
}

/// What bytes received from the client amounted to.
#[derive(Debug)]
pub enum Received {
    /// Records to send back before anything else (may be empty); `closed`: the client
    /// sent `close_notify` and will send nothing more.
    Fine { reply: Vec<u8>, closed: bool },
    /// The client broke the protocol (garbage, a plain HTTP request, a bad handshake):
    /// send `alert` (may be empty) and close.
    Failed { alert: Vec<u8>, why: rustls::Error },
}

impl Session {
    pub fn new(config: &Arc<ServerConfig>) -> io::Result<Session> {
        let conn = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        Ok(Session {
            conn: Arc::new(Mutex::new(conn)),
            record_left: 0,
            header: ([0; 5], 0),
            counted: false,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ServerConnection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn handshaking(&self) -> bool {
        self.lock().is_handshaking()
    }

    /// Follows the record framing of received `bytes`.
    fn track_records(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.record_left > 0 {
                let n = self.record_left.min(bytes.len());
                self.record_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let (h, seen) = &mut self.header;
            h[*seen] = bytes[0];
            *seen += 1;
            bytes = &bytes[1..];
            if *seen == 5 {
                self.record_left = u16::from_be_bytes([h[3], h[4]]) as usize;
                *seen = 0;
            }
        }
    }

    /// Whether the record layer may move to the kernel now: the handshake is over,
    /// nothing sealed waits to be sent, no transfer holds a sealer, and the received
    /// stream is between two records.
    pub fn kernel_ready(&self) -> bool {
        let c = self.lock();
        !c.is_handshaking()
            && !c.wants_write()
            && Arc::strong_count(&self.conn) == 1
            && self.record_left == 0
            && self.header.1 == 0
    }

    /// Bytes still to receive before the received stream is between two records (the
    /// rest of a record header first, then its body; 0: between two records). Receiving
    /// exactly these, not more, brings a connection to where the kernel may take over
    /// although its client keeps sending.
    pub fn to_record_end(&self) -> usize {
        match self.header.1 {
            0 => self.record_left,
            seen => 5 - seen,
        }
    }

    /// The rustls state, for the hand-over to the kernel (`kernel_ready` first).
    pub fn into_connection(self) -> Option<ServerConnection> {
        let m = Arc::try_unwrap(self.conn).ok()?;
        Some(m.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// Opens `bytes` (as received): their plaintext is appended to `plain`, and the
    /// records to answer with are taken out for the caller to send.
    pub fn receive(&mut self, bytes: &[u8], plain: &mut Vec<u8>) -> Received {
        self.open(bytes, plain, true)
    }

    /// Opens `bytes` while a transfer seals into this connection: records to answer
    /// with (a key update's) stay queued, sealed in order, and leave at the front of
    /// the transfer's next batch or with [`close_notify`](Self::close_notify) — never
    /// beside records sealed before them. `reply` is then empty.
    pub fn receive_queued(&mut self, bytes: &[u8], plain: &mut Vec<u8>) -> Received {
        self.open(bytes, plain, false)
    }

    fn open(&mut self, bytes: &[u8], plain: &mut Vec<u8>, answer: bool) -> Received {
        self.track_records(bytes);
        let mut bytes = bytes;
        let mut c = self.lock();
        let mut closed = false;
        while !bytes.is_empty() {
            if let Err(e) = c.read_tls(&mut bytes) {
                let why = rustls::Error::General(e.to_string());
                return failed(&mut c, why);
            }
            if let Err(why) = c.process_new_packets() {
                return failed(&mut c, why);
            }
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match c.reader().read(&mut chunk) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => plain.extend_from_slice(&chunk[..n]),
                    Err(_) => break, // WouldBlock: nothing more decrypted yet
                }
            }
        }
        let mut reply = Vec::new();
        while answer && c.wants_write() {
            if c.write_tls(&mut reply).is_err() {
                break;
            }
        }
        Received::Fine { reply, closed }
    }

    /// `plain` sealed into records.
    pub fn seal(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plain.len() + 64);
        seal_into(&mut self.lock(), plain, &mut out)?;
        Ok(out)
    }

    /// A sealer for a transfer into this connection.
    pub fn sealer(&self) -> impl Seal + 'static {
        Sealer(self.conn.clone())
    }

    /// The `close_notify` alert, sealed.
    pub fn close_notify(&self) -> Vec<u8> {
        let mut c = self.lock();
        c.send_close_notify();
        let mut out = Vec::new();
        while c.wants_write() {
            if c.write_tls(&mut out).is_err() {
                break;
            }
        }
        out
    }
}

fn failed(c: &mut ServerConnection, why: rustls::Error) -> Received {
    let mut alert = Vec::new();
    while c.wants_write() {
        if c.write_tls(&mut alert).is_err() {
            break;
        }
    }
    Received::Failed { alert, why }
}

fn seal_into(c: &mut ServerConnection, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    c.writer().write_all(plain)?;
    while c.wants_write() {
        c.write_tls(out)?;
    }
    Ok(())
}

struct Sealer(Arc<Mutex<ServerConnection>>);

impl Seal for Sealer {
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seal_into(&mut c, plain, out)
    }
}
