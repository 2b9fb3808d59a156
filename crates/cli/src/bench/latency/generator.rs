//! The load generator of `ferry bench --latency`: an open-loop client on one thread
//! (mio, one `epoll`), holding a fixed rate whatever the server does.
//!
//! Each of the N connections has its own schedule, `N / rate` apart, the connections
//! staggered `1 / rate` apart, so the requests of all of them are evenly spaced (wrk2's
//! model). A connection has one request in flight (HTTP/1.1 without pipelining): when an
//! answer is late, the connection's next request goes out late, at once when the answer
//! ends, and its latency is still counted from its *planned* time. That is the
//! correction for coordinated omission: a server that stalls for 200 ms is charged for
//! every request that should have been sent during the stall, not just for the one that
//! was waiting. Every answer is also timed from when its request actually left
//! (`from_send`): what a closed-loop tool reports.
//!
//! The generator's own lateness is measured too: for each request, how long after it
//! could have gone (its planned time, or the end of the answer before it, whichever is
//! later) it was written. Its p99 and max say whether the generator kept the rate.
//!
//! Without a rate the same client is closed-loop (each connection asks again as soon as
//! an answer ends): how the baseline's peak is found.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::super::common::{cpu_time, new_hist};
use super::answer::{AnswerReader, Fed, Protocol};
use super::timer::{now_ns, Alarm};

const ALARM: Token = Token(usize::MAX);

/// One run of the generator.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    pub addr: SocketAddr,
    pub connections: usize,
    /// Requests a second over all connections; `None`: closed loop.
    pub rate: Option<f64>,
    /// Run at the rate this long first, unrecorded (connections warm, caches full).
    pub warmup: Duration,
    /// Then record the requests planned in this window.
    pub measure: Duration,
    pub protocol: &'a Protocol,
    /// A connection that fails is counted and opened again (servers that take any
    /// number of connections); else the run fails (the in-process request-response
    /// servers accept exactly N).
    pub reconnect: bool,
    /// Whose CPU time over the window is measured (the server), if anyone's.
    pub cpu_of: Option<CpuOf>,
}

/// A server's threads, for their time on CPU.
#[derive(Debug, Clone, Copy)]
pub enum CpuOf {
    /// Every thread of a process.
    Process(u32),
    /// One thread of this process.
    Thread(i32),
}

impl CpuOf {
    fn read(self) -> Option<Duration> {
        match self {
            CpuOf::Process(pid) => super::super::paced::process_cpu_ns(pid).ok(),
            CpuOf::Thread(tid) => {
                let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
                let ns = s.split_whitespace().next()?.parse().ok()?;
                Some(Duration::from_nanos(ns))
            }
        }
    }
}

/// What one run measured; latencies in µs, of the requests planned in the window.
#[derive(Debug)]
pub struct Measured {
    /// From each request's planned time to the last byte of its answer.
    pub corrected: Histogram<u64>,
    /// From when each request was written to the last byte of its answer.
    pub from_send: Histogram<u64>,
    /// How late the generator wrote each request (see the module docs).
    pub lag: Histogram<u64>,
    /// Answers that arrived whole.
    pub requests: u64,
    /// Failed requests: a connection closed or reset, an answer that was not the one
    /// expected.
    pub errors: u64,
    /// Requests planned in the window that had no answer when the run gave up waiting
    /// (`measure` after the window, at least 2 s): a server that fell behind.
    pub unanswered: u64,
    /// From the window's start to the last answer.
    pub secs: f64,
    /// CPU time of the generator's thread in the window.
    pub cpu_secs: f64,
    /// CPU time of [`Load::cpu_of`] from the window's start to the run's end.
    pub server_cpu_secs: Option<f64>,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

impl Measured {
    /// Answers a second.
    pub fn achieved(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }
}

struct Flight {
    planned: u64,
    sent: u64,
}

struct Conn {
    sock: Option<TcpStream>,
    /// Planned time of its next request.
    next: u64,
    /// When it could last send: its last answer's end, or its opening.
    free_since: u64,
    flight: Option<Flight>,
    reader: AnswerReader,
    /// Bytes of the request in flight not yet written.
    unsent: usize,
    done: bool,
}

/// Runs `load` on the calling thread and returns what it measured.
pub fn run(load: &Load) -> io::Result<Measured> {
    Generator::new(load)?.run()
}

struct Generator<'a> {
    load: &'a Load<'a>,
    request: Vec<u8>,
    poll: Poll,
    alarm: Alarm,
    conns: Vec<Conn>,
    /// Idle connections by planned time of their next request.
    due: BinaryHeap<Reverse<(u64, usize)>>,
    period: u64,
    window: (u64, u64),
    active: usize,
    m: Measured,
    last_answer: u64,
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(TcpStream::from_std(s))
}

impl<'a> Generator<'a> {
    fn new(load: &'a Load<'a>) -> io::Result<Generator<'a>> {
        if load.connections == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connections: at least one",
            ));
        }
        if let Some(r) = load.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("rate {r}: must be a positive number of requests a second"),
                ));
            }
        }
        // The timer is exact; epoll's own timeouts (for the drain) need no slack either.
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
        let poll = Poll::new()?;
        let alarm = Alarm::new()?;
        poll.registry().register(
            &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&alarm)),
            ALARM,
            Interest::READABLE,
        )?;
        let mut conns = Vec::with_capacity(load.connections);
        for i in 0..load.connections {
            let mut sock = connect(load.addr)?;
            poll.registry().register(
                &mut sock,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            conns.push(Conn {
                sock: Some(sock),
                next: 0,
                free_since: 0,
                flight: None,
                reader: AnswerReader::new(),
                unsent: 0,
                done: false,
            });
        }
        let period = load.rate.map_or(0, |r| {
            (load.connections as f64 * 1e9 / r).round().max(1.0) as u64
        });
        Ok(Generator {
            load,
            request: load.protocol.request(),
            poll,
            alarm,
            active: conns.len(),
            conns,
            due: BinaryHeap::new(),
            period,
            window: (0, 0),
            m: Measured {
                corrected: new_hist(),
                from_send: new_hist(),
                lag: new_hist(),
                requests: 0,
                errors: 0,
                unanswered: 0,
                secs: 0.0,
                cpu_secs: 0.0,
                server_cpu_secs: None,
                first_error: None,
            },
            last_answer: 0,
        })
    }

    fn in_window(&self, planned: u64) -> bool {
        planned >= self.window.0 && planned < self.window.1
    }

    fn run(mut self) -> io::Result<Measured> {
        let start = now_ns() + 1_000_000; // a millisecond to set up the schedule
        self.window = (
            start + ns(self.load.warmup),
            start + ns(self.load.warmup) + ns(self.load.measure),
        );
        let drain_end = self.window.1 + ns(self.load.measure).max(2_000_000_000);
        let stagger = self.period / self.conns.len() as u64;
        for i in 0..self.conns.len() {
            let at = start + stagger * i as u64;
            self.conns[i].next = at;
            self.conns[i].free_since = start;
            self.due.push(Reverse((at, i)));
        }
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; 256 * 1024];
        let mut armed: Option<u64> = None;
        let mut cpu0 = None;
        let mut server0 = None;
        loop {
            let now = now_ns();
            if cpu0.is_none() && now >= self.window.0 {
                cpu0 = Some(cpu_time(true));
                server0 = self.load.cpu_of.and_then(CpuOf::read);
            }
            while let Some(&Reverse((at, i))) = self.due.peek() {
                if at > now {
                    break;
                }
                self.due.pop();
                self.send(i, now)?;
            }
            if self.active == 0 || now >= drain_end {
                break;
            }
            // The alarm is set again only to ring earlier than it will (or after it rang):
            // one `timerfd_settime` per ring, not per request. Ringing early costs a
            // wake-up that finds nothing due.
            if let Some(at) = self.due.peek().map(|r| r.0 .0) {
                if armed.is_none_or(|a| at < a) {
                    self.alarm.set(at)?;
                    armed = Some(at);
                }
            }
            let timeout = Duration::from_nanos((drain_end - now).min(1_000_000_000));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == ALARM {
                    self.alarm.clear();
                    armed = None;
                    continue;
                }
                let i = ev.token().0;
                if ev.is_writable() && self.conns[i].unsent > 0 {
                    if let Err(e) = self.write_rest(i) {
                        self.failed(i, e)?;
                        continue;
                    }
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    if let Err(e) = self.read(i, &mut buf) {
                        self.failed(i, e)?;
                    }
                }
            }
        }
        let end = cpu_time(true);
        self.m.cpu_secs = cpu0.map_or(0.0, |c| (end - c).as_secs_f64());
        if let (Some(a), Some(b)) = (server0, self.load.cpu_of.and_then(CpuOf::read)) {
            self.m.server_cpu_secs = Some(b.saturating_sub(a).as_secs_f64());
        }
        // What the server never answered in time.
        for c in &self.conns {
            if c.done {
                continue;
            }
            if let Some(f) = &c.flight {
                if f.planned >= self.window.0 && f.planned < self.window.1 {
                    self.m.unanswered += 1;
                }
            }
            if self.period > 0 && c.sock.is_some() {
                let mut t = c.next;
                while t < self.window.1 {
                    if t >= self.window.0 {
                        self.m.unanswered += 1;
                    }
                    t += self.period;
                }
            }
        }
        self.m.secs = self.last_answer.saturating_sub(self.window.0) as f64 / 1e9;
        if self.m.requests == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer from {} in the measured window{}",
                    self.load.addr,
                    self.m
                        .first_error
                        .as_ref()
                        .map_or(String::new(), |e| format!(" (first failure: {e})"))
                ),
            ));
        }
        Ok(self.m)
    }

    /// Writes connection `i`'s next request now.
    fn send(&mut self, i: usize, now: u64) -> io::Result<()> {
        let c = &mut self.conns[i];
        if c.sock.is_none() || c.done {
            return Ok(());
        }
        let planned = c.next;
        let lag = now.saturating_sub(planned.max(c.free_since));
        c.flight = Some(Flight { planned, sent: now });
        c.unsent = self.request.len();
        if planned >= self.window.0 && planned < self.window.1 {
            self.m.lag.saturating_record(lag / 1000);
        }
        if let Err(e) = self.write_rest(i) {
            self.failed(i, e)?;
        }
        Ok(())
    }

    fn write_rest(&mut self, i: usize) -> io::Result<()> {
        let c = &mut self.conns[i];
        let sock = c.sock.as_ref().expect("open");
        while c.unsent > 0 {
            let from = self.request.len() - c.unsent;
            match (&*sock).write(&self.request[from..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => c.unsent -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what connection `i` has; ends its answer if it is whole.
    fn read(&mut self, i: usize, buf: &mut [u8]) -> io::Result<()> {
        loop {
            let Some(sock) = self.conns[i].sock.as_ref() else {
                return Ok(());
            };
            let n = match (&*sock).read(buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let c = &mut self.conns[i];
            if c.flight.is_none() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bytes arrived with no request in flight",
                ));
            }
            if c.reader.feed(self.load.protocol, &buf[..n])? == Fed::Whole {
                // Nothing more is due on this connection until its next request: no
                // read to learn `EAGAIN` (epoll reports bytes that arrive later anew, and
                // the next read finds any that should not have come).
                return self.answered(i, now_ns());
            }
        }
    }

    /// Connection `i`'s answer ended at `now`: recorded; its next request planned.
    fn answered(&mut self, i: usize, now: u64) -> io::Result<()> {
        let f = self.conns[i].flight.take().expect("in flight");
        if self.in_window(f.planned) {
            self.m
                .corrected
                .saturating_record(now.saturating_sub(f.planned) / 1000);
            self.m
                .from_send
                .saturating_record(now.saturating_sub(f.sent) / 1000);
            self.m.requests += 1;
            self.last_answer = now;
        }
        self.plan_next(i, now, true)
    }

    /// Plans connection `i`'s next request (idle since `now`): sent at once when due
    /// and `at_once`, else queued.
    fn plan_next(&mut self, i: usize, now: u64, at_once: bool) -> io::Result<()> {
        let (period, end) = (self.period, self.window.1);
        let c = &mut self.conns[i];
        c.free_since = now;
        c.next = if period == 0 { now } else { c.next + period };
        if c.next >= end {
            c.done = true;
            self.active -= 1;
            return Ok(());
        }
        if at_once && c.next <= now {
            return self.send(i, now);
        }
        self.due.push(Reverse((c.next, i)));
        Ok(())
    }

    /// Connection `i` failed with `e`: counted and opened again, or the run fails.
    fn failed(&mut self, i: usize, e: io::Error) -> io::Result<()> {
        let now = now_ns();
        self.m.errors += 1;
        if self.m.first_error.is_none() {
            self.m.first_error = Some(e.to_string());
        }
        if !self.load.reconnect {
            return Err(io::Error::new(
                e.kind(),
                format!("connection {i} to {}: {e}", self.load.addr),
            ));
        }
        if let Some(mut old) = self.conns[i].sock.take() {
            let _ = self.poll.registry().deregister(&mut old);
        }
        let c = &mut self.conns[i];
        c.flight = None;
        c.unsent = 0;
        c.reader = AnswerReader::new();
        if c.done {
            return Ok(());
        }
        match connect(self.load.addr) {
            Ok(mut sock) => {
                self.poll.registry().register(
                    &mut sock,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                self.conns[i].sock = Some(sock);
                // The failed request is an error, not planned again: the next one is,
                // through the queue (a server that fails every request at once does
                // not recurse here).
                self.plan_next(i, now, false)
            }
            Err(_) => {
                // Lost for the rest of the run (the server does not take connections).
                self.conns[i].done = true;
                self.active -= 1;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::responder::{Responder, Stall};
    use super::*;

    fn quantile_ms(h: &Histogram<u64>, q: f64) -> f64 {
        h.value_at_quantile(q) as f64 / 1000.0
    }

    #[test]
    fn the_generator_keeps_a_fixed_rate_against_a_trivial_responder() {
        let proto = Protocol::http(4096);
        let floor = Responder::start(&proto, None, None).unwrap();
        let load = Load {
            addr: floor.addr(),
            connections: 4,
            rate: Some(2000.0),
            warmup: Duration::from_millis(300),
            measure: Duration::from_secs(2),
            protocol: &proto,
            reconnect: true,
            cpu_of: None,
        };
        let m = run(&load).unwrap();
        // Every request planned in the 2 s window went out and was answered: 4000
        // (± one per connection for where the window cuts each schedule).
        assert!(
            (3996..=4004).contains(&m.requests),
            "{} answers",
            m.requests
        );
        assert_eq!((m.errors, m.unanswered), (0, 0), "{:?}", m.first_error);
        let achieved = m.achieved();
        assert!(
            (1800.0..2200.0).contains(&achieved),
            "achieved {achieved:.0}/s, offered 2000/s"
        );
        // The generator wrote its requests on time: half of them within 0.5 ms of their
        // plan even on a loaded machine (an event loop that waited in whole
        // milliseconds, or sent in bursts, would not).
        assert!(
            quantile_ms(&m.lag, 0.5) < 0.5,
            "median lag {} ms",
            quantile_ms(&m.lag, 0.5)
        );
        let answers = floor.stop().unwrap();
        assert!(answers >= m.requests, "{answers} written");
    }

    #[test]
    fn a_stall_shows_in_the_corrected_tail_and_not_in_the_closed_loop_view_of_the_same_run() {
        let proto = Protocol::http(1024);
        // 1000 requests a second on one connection; 1 s into the 3 s window the
        // responder stops for 200 ms.
        let stall = Stall {
            after: 1200,
            pause: Duration::from_millis(200),
        };
        let floor = Responder::start(&proto, None, Some(stall)).unwrap();
        let load = Load {
            addr: floor.addr(),
            connections: 1,
            rate: Some(1000.0),
            warmup: Duration::from_millis(200),
            measure: Duration::from_secs(3),
            protocol: &proto,
            reconnect: true,
            cpu_of: None,
        };
        let m = run(&load).unwrap();
        assert_eq!(m.errors, 0, "{:?}", m.first_error);
        assert!((2999..=3001).contains(&m.requests), "{}", m.requests);
        // ~200 requests were planned during the stall: 6.7 % of the run waited up to
        // 200 ms, so the corrected p99 and p99.9 carry it …
        let corrected = quantile_ms(&m.corrected, 0.999);
        assert!(corrected >= 150.0, "corrected p99.9 {corrected} ms");
        assert!(quantile_ms(&m.corrected, 0.99) >= 100.0);
        // … while timed from when each request was written (closed loop), only the one
        // request in flight during the stall waited: 1 in 3000, below p99.9.
        let closed = quantile_ms(&m.from_send, 0.999);
        assert!(closed < 50.0, "closed-loop p99.9 {closed} ms");
        // Both saw the stall itself.
        assert!(m.from_send.max() >= 190_000 && m.corrected.max() >= 190_000);
    }

    #[test]
    fn without_a_rate_it_is_closed_loop_and_counts_from_the_send() {
        let proto = Protocol::Wire { size: 100 };
        let floor = Responder::start(&proto, None, None).unwrap();
        let load = Load {
            addr: floor.addr(),
            connections: 2,
            rate: None,
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(400),
            protocol: &proto,
            reconnect: false,
            cpu_of: Some(CpuOf::Thread(floor.tid())),
        };
        let m = run(&load).unwrap();
        assert!(m.requests > 100, "{}", m.requests);
        assert_eq!(m.corrected.len(), m.from_send.len());
        assert_eq!(m.corrected.max(), m.from_send.max());
        // The responder's thread (its CPU alone, not the process's) worked in the
        // window: a closed loop keeps it busy a good part of the 0.4 s.
        let cpu = m.server_cpu_secs.expect("read");
        assert!(cpu > 0.01 && cpu < 1.0, "{cpu} s");
    }

    #[test]
    fn a_server_that_answers_wrongly_is_counted_as_errors_or_fails_the_run() {
        // A responder answering 20-byte bodies to a client that wants 10: every answer
        // is bad.
        let floor = Responder::start(&Protocol::http(20), None, None).unwrap();
        let http = Protocol::http(10);
        let mut load = Load {
            addr: floor.addr(),
            connections: 1,
            rate: Some(200.0),
            warmup: Duration::ZERO,
            measure: Duration::from_millis(300),
            protocol: &http,
            reconnect: false,
            cpu_of: None,
        };
        let e = run(&load).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("Content-Length 20, not 10"), "{e}");
        load.reconnect = true;
        let e = run(&load).unwrap_err();
        // Nothing answered well: the run says so, with the first failure.
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains("first failure"), "{e}");
        let bad_rate = Load {
            rate: Some(0.0),
            ..load
        };
        assert_eq!(
            run(&bad_rate).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
