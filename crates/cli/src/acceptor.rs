//! Accepting on a server thread's listener, where running out of fds or memory is a
//! state, not a crash.
//!
//! An accept that fails with `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM` ends the
//! `LocalEngine`'s accept op (the engine never re-arms it). The thread then stops
//! accepting — the connections wait in the listen queue — and starts again when one of
//! its connections closes or after a back-off (5 ms, doubling to 1 s; reset by the next
//! connection accepted). While paused nothing spins and nothing is allocated; the
//! connections already open are served as before. The error log says why (at most one
//! line a second, `crate::error_log`). Connections refused over `--max-connections` are
//! counted and reported the same way.

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_engine::{LocalEngine, OpId};

use crate::error_log::{self, Kind, Level};
use crate::fd_budget;

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// One thread's listener and its accept op.
#[derive(Debug)]
pub struct Acceptor {
    listener: Option<Arc<TcpListener>>,
    op: Option<OpId>,
    /// The op cancelled by `stop` until its last event: connections it accepted before
    /// the cancel took effect still arrive, and are the caller's to serve.
    draining: Option<OpId>,
    /// The listener while `draining`: its queue is emptied once the op ended (below).
    closing: Option<Arc<TcpListener>>,
    /// Accepting is paused until then.
    paused_until: Option<Instant>,
    pause: Duration,
    /// Connections accepted in the batch that ran out, kept back until fds are to
    /// spare again (instead of being closed): admitted before accepting again.
    waiting: VecDeque<OwnedFd>,
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Acceptor {
        Acceptor {
            listener: Some(Arc::new(listener)),
            op: None,
            draining: None,
            closing: None,
            paused_until: None,
            pause: FIRST_PAUSE,
            waiting: VecDeque::new(),
        }
    }

    /// Stopped, the accept op's last event has come and every connection taken has
    /// been given out: no connection will arrive any more.
    pub fn settled(&self) -> bool {
        self.listener.is_none() && self.draining.is_none() && self.waiting.is_empty()
    }

    /// Still accepting (or paused); false once stopped.
    pub fn is_open(&self) -> bool {
        self.listener.is_some()
    }

    /// Out of fds: accepting waits. A connection accepted before the pause began (in
    /// the same batch of events) should not take the spare fds: `hold` it.
    pub fn is_paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// Keeps an accepted connection back until the pause is over (`poll` gives it).
    pub fn hold(&mut self, fd: OwnedFd) {
        self.waiting.push_back(fd);
    }

    /// Starts accepting, unless already accepting, paused or stopped.
    pub fn start(&mut self, ring: &mut LocalEngine) {
        if let (Some(l), None, None) = (&self.listener, self.op, self.paused_until) {
            self.op = Some(ring.accept(l.clone()));
        }
    }

    /// An `Event::Accepted` of op `op`: the new connection, or `None` (an error paused
    /// accepting, or the op was cancelled).
    pub fn on_event(
        &mut self,
        op: OpId,
        conn: io::Result<OwnedFd>,
        now: Instant,
    ) -> Option<OwnedFd> {
        let e = match conn {
            Ok(fd) => return Some(fd),
            Err(e) => e,
        };
        if self.draining == Some(op) {
            self.draining = None; // the cancelled op's last event
            self.take_queue();
            return None;
        }
        if self.op != Some(op) {
            return None; // the end of an op cancelled earlier
        }
        // Every error is the op's last event.
        self.op = None;
        match e.raw_os_error() {
            // A connection that went away in the queue: go on at once.
            Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR) => {}
            _ if e.kind() == io::ErrorKind::Interrupted => {}
            _ => self.pause_for(&e, "accept", now),
        }
        None
    }

    /// Something other than accept ran out (a backend socket's `EMFILE`): pause
    /// accepting as if accept had failed; other errors are none of its business.
    pub fn out_of(&mut self, e: &io::Error, ring: &mut LocalEngine, now: Instant) {
        if fd_budget::is_exhaustion(e) && self.paused_until.is_none() {
            if let Some(op) = self.op.take() {
                ring.cancel(op);
            }
            self.pause_for(e, "socket", now);
        }
    }

    /// A connection accepted and set up well: the back-off starts over.
    pub fn admitted(&mut self) {
        self.pause = FIRST_PAUSE;
    }

    fn pause_for(&mut self, e: &io::Error, call: &str, now: Instant) {
        let (level, kind) = if fd_budget::is_exhaustion(e) {
            (Level::Warn, Kind::AcceptPaused)
        } else {
            (Level::Error, Kind::Listener)
        };
        error_log::say(
            level,
            kind,
            format_args!(
                "{call}: {}; accepting paused until connections close (≤ {:?})",
                fd_budget::explain(e),
                LONGEST_PAUSE,
            ),
        );
        // What is open must go on: its files and pipes get the spare fds.
        fd_budget::release_spares();
        self.paused_until = Some(now + self.pause);
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
    }

    /// A connection of this thread closed: an fd is free, so a pause ends now.
    pub fn on_close(&mut self, now: Instant) {
        if let Some(until) = &mut self.paused_until {
            *until = (*until).min(now);
        }
    }

    /// When the pause is over: a connection kept back to admit (call again until
    /// `None`), then accepting again. Call after every turn.
    pub fn poll(&mut self, ring: &mut LocalEngine, now: Instant) -> Option<OwnedFd> {
        match self.paused_until {
            Some(u) if u > now => return None,
            Some(_) if !fd_budget::hold_spares() => {
                // Still no fds to spare: wait longer, quietly.
                self.paused_until = Some(now + self.pause);
                self.pause = (self.pause * 2).min(LONGEST_PAUSE);
                return None;
            }
            _ => self.paused_until = None,
        }
        // Clients that gave up while held would keep their fds (and, retried one at a
        // time, could keep the process at its fd limit for good): let them go first.
        self.waiting.retain(still_there);
        if let Some(fd) = self.waiting.pop_front() {
            return Some(fd);
        }
        self.start(ring);
        None
    }

    /// How long a turn may sleep without missing the end of a pause.
    pub fn wait(&self, now: Instant, most: Duration) -> Duration {
        self.paused_until
            .map_or(most, |u| u.saturating_duration_since(now).min(most))
    }

    /// Stops accepting for good (cancels the op; closes the listener). Connections the
    /// op accepted before the cancel took effect may still arrive (`on_event` gives
    /// them), and once its last event came, the connections still in the listen queue
    /// are taken too (`poll` gives them): serve them all. When the listening socket is
    /// shared with the next process (socket activation), a connection left behind
    /// could wait unanswered: the kernel wakes one accept waiter per new connection, and
    /// the wake-up can go to this ring's accept just as it is being cancelled, while the
    /// other process's accept sleeps on (seen: one request in ~2000 across restarts,
    /// stuck until the next connection arrived).
    pub fn stop(&mut self, ring: &mut LocalEngine) {
        self.closing = self.listener.take();
        self.paused_until = None;
        match self.op.take() {
            Some(op) => {
                ring.cancel(op);
                self.draining = Some(op);
            }
            None => self.take_queue(),
        }
    }

    /// Accepts what waits in the closing listener's queue (non-blocking, until it is
    /// empty) into `waiting`, then closes it.
    fn take_queue(&mut self) {
        let Some(l) = self.closing.take() else { return };
        if l.set_nonblocking(true).is_err() {
            return;
        }
        while let Ok((c, _)) = l.accept() {
            self.waiting.push_back(OwnedFd::from(c));
        }
    }
}

/// Whether a held client is still connected: a peek that sees the end of its stream or
/// an error (a reset) says it left; no data yet, or data, says it is there.
fn still_there(fd: &OwnedFd) -> bool {
    use rustix::net::{recv, RecvFlags};
    let mut byte = [0u8; 1];
    match recv(fd, &mut byte, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((0, _)) => false,
        Ok(_) => true,
        Err(e) => e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::INTR,
    }
}

/// A connection refused over `--max-connections` (closed at once by the caller):
/// counted, and said in the error log (at most once a second).
pub fn refused(max_per_thread: usize) {
    let n = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
    error_log::say(
        Level::Warn,
        Kind::Refused,
        format_args!(
            "connection refused: at --max-connections ({max_per_thread} per thread); {n} refused in all"
        ),
    );
}

static REFUSED: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_client_that_left_is_let_go_not_given_out() {
        let mut ring = LocalEngine::new().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (gone, stays) = (
            std::net::TcpStream::connect(addr).unwrap(),
            std::net::TcpStream::connect(addr).unwrap(),
        );
        let (a1, _) = l.accept().unwrap();
        let (a2, _) = l.accept().unwrap();
        let mut a = Acceptor::new(l);
        let t0 = Instant::now();
        a.paused_until = Some(t0);
        a.hold(OwnedFd::from(a1));
        a.hold(OwnedFd::from(a2));
        drop(gone);
        std::thread::sleep(Duration::from_millis(50)); // its FIN arrives
        let given = a.poll(&mut ring, t0).expect("the client still there");
        assert!(
            a.poll(&mut ring, t0).is_none(),
            "the client that left was given out"
        );
        drop((given, stays));
    }

    #[test]
    fn pauses_grow_to_a_second_reset_on_success_and_end_on_close() {
        let mut ring = LocalEngine::new().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut a = Acceptor::new(l);
        a.start(&mut ring);
        let op = a.op.expect("accepting");
        let t0 = Instant::now();
        let emfile = || Err(io::Error::from_raw_os_error(libc::EMFILE));
        let mut pauses = Vec::new();
        for _ in 0..10 {
            a.op = Some(op);
            assert!(a.on_event(op, emfile(), t0).is_none());
            assert!(a.op.is_none(), "an error ends the op");
            pauses.push(a.wait(t0, Duration::from_secs(5)));
        }
        assert_eq!(pauses[0], Duration::from_millis(5));
        assert_eq!(pauses[1], Duration::from_millis(10));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert_eq!(*pauses.last().unwrap(), LONGEST_PAUSE);
        // Paused: no accept is started; a connection accepted meanwhile is kept back.
        assert!(a.poll(&mut ring, t0).is_none());
        assert!(a.op.is_none());
        a.hold(OwnedFd::from(std::net::TcpStream::connect(addr).unwrap()));
        // A close ends the pause now: the connection kept back first, then accepting.
        a.on_close(t0);
        assert_eq!(a.wait(t0, Duration::from_secs(5)), Duration::ZERO);
        assert!(a.poll(&mut ring, t0).is_some(), "the held connection");
        assert!(a.op.is_none());
        assert!(a.poll(&mut ring, t0).is_none());
        let op = a.op.expect("accepting again");
        // An accepted connection set up well starts the back-off over.
        let s = std::net::TcpStream::connect(addr).unwrap();
        assert!(a.on_event(op, Ok(OwnedFd::from(s)), t0).is_some());
        a.admitted();
        a.on_event(op, emfile(), t0);
        assert_eq!(a.wait(t0, Duration::from_secs(5)), FIRST_PAUSE);
        // The end of an op cancelled earlier changes nothing.
        a.paused_until = None;
        assert!(a.poll(&mut ring, t0).is_none());
        let newer = a.op.expect("accepting");
        assert!(a.on_event(op, emfile(), t0).is_none());
        assert_eq!(a.op, Some(newer));
        assert!(a.paused_until.is_none());
        // A cancelled op is no reason to pause.
        let cancelled = io::Error::new(io::ErrorKind::Interrupted, "accept cancelled");
        assert!(a.on_event(newer, Err(cancelled), t0).is_none());
        assert!(a.paused_until.is_none());
        a.stop(&mut ring);
        assert!(!a.is_open());
    }
}
