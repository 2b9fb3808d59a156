//! What every scenario shares: methods, built-in data, verification, CPU accounting.

use hdrhistogram::Histogram;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

/// A way of moving bytes, compared side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    ReadWrite,
    StdCopy,
    Sendfile,
    Splice,
    EngineUring,
    EngineBlocking,
    EngineLocal,
    /// nginx serving the file (http-static), `tcp_nopush on`.
    Nginx,
    /// The same nginx with `tcp_nopush off` (the research found either can be faster).
    NginxNoPush,
    /// `ferry serve` serving the file (http-static).
    FerryServe,
    /// nginx serving the file over HTTPS (https-static; OpenSSL, `ssl_session_tickets`).
    NginxTls,
    /// `ferry serve --tls-cert --tls-key` (https-static).
    FerryServeTls,
    /// HAProxy, TCP mode, `option splice-auto` (tcp-proxy).
    Haproxy,
    /// HAProxy, TCP mode, splice both ways through 1 MiB pipes (tcp-proxy).
    HaproxySplice,
    /// `ferry proxy` (tcp-proxy).
    FerryProxy,
    /// HAProxy terminating TLS (`bind … ssl crt`, OpenSSL), TCP mode (tls-proxy).
    HaproxyTls,
    /// `ferry proxy --tls-cert --tls-key` (tls-proxy).
    FerryProxyTls,
}

impl Method {
    pub const ALL: [Method; 17] = [
        Method::ReadWrite,
        Method::StdCopy,
        Method::Sendfile,
        Method::Splice,
        Method::EngineUring,
        Method::EngineBlocking,
        Method::EngineLocal,
        Method::Nginx,
        Method::NginxNoPush,
        Method::FerryServe,
        Method::NginxTls,
        Method::FerryServeTls,
        Method::Haproxy,
        Method::HaproxySplice,
        Method::FerryProxy,
        Method::HaproxyTls,
        Method::FerryProxyTls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::ReadWrite => "read-write",
            Method::StdCopy => "std-copy",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
            Method::EngineUring => "engine-uring",
            Method::EngineBlocking => "engine-blocking",
            Method::EngineLocal => "engine-local",
            Method::Nginx => "nginx",
            Method::NginxNoPush => "nginx-nopush-off",
            Method::FerryServe => "ferry-serve",
            Method::NginxTls => "nginx-tls",
            Method::FerryServeTls => "ferry-serve-tls",
            Method::Haproxy => "haproxy",
            Method::HaproxySplice => "haproxy-splice",
            Method::FerryProxy => "ferry-proxy",
            Method::HaproxyTls => "haproxy-tls",
            Method::FerryProxyTls => "ferry-proxy-tls",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }

    pub fn is_ferry(self) -> bool {
        matches!(
            self,
            Method::EngineUring
                | Method::EngineBlocking
                | Method::EngineLocal
                | Method::FerryServe
                | Method::FerryServeTls
                | Method::FerryProxy
                | Method::FerryProxyTls
        )
    }

    /// The scenario family a method belongs to: byte movers (every scenario but the
    /// two below), HTTP servers (http-static) or TCP proxies (tcp-proxy).
    pub fn family(self) -> Scenario {
        match self {
            Method::Nginx | Method::NginxNoPush | Method::FerryServe => Scenario::HttpStatic,
            Method::NginxTls | Method::FerryServeTls => Scenario::HttpsStatic,
            Method::Haproxy | Method::HaproxySplice | Method::FerryProxy => Scenario::TcpProxy,
            Method::HaproxyTls | Method::FerryProxyTls => Scenario::TlsProxy,
            _ => Scenario::FileToSocket,
        }
    }
}

/// The scenarios of `ferry bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    FileToSocket,
    SocketToSocket,
    RequestResponse,
    FileToFile,
    /// nginx against `ferry serve` under wrk.
    HttpStatic,
    /// The same over HTTPS (both encrypting in user space where the kernel has no TLS).
    HttpsStatic,
    /// https-static with a new connection (a new TLS handshake) per request.
    HttpsHandshakes,
    /// HAProxy against `ferry proxy`.
    TcpProxy,
    /// The same, terminating TLS from the clients (HTTP origin behind, plain TCP).
    TlsProxy,
    /// Many idle connections: nginx and HAProxy against `ferry serve` and `ferry proxy`.
    Connections,
}

impl Scenario {
    pub const ALL: [Scenario; 10] = [
        Scenario::FileToSocket,
        Scenario::SocketToSocket,
        Scenario::RequestResponse,
        Scenario::FileToFile,
        Scenario::HttpStatic,
        Scenario::HttpsStatic,
        Scenario::HttpsHandshakes,
        Scenario::TcpProxy,
        Scenario::TlsProxy,
        Scenario::Connections,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::FileToSocket => "file-to-socket",
            Scenario::SocketToSocket => "socket-to-socket",
            Scenario::RequestResponse => "request-response",
            Scenario::FileToFile => "file-to-file",
            Scenario::HttpStatic => "http-static",
            Scenario::HttpsStatic => "https-static",
            Scenario::HttpsHandshakes => "https-handshakes",
            Scenario::TcpProxy => "tcp-proxy",
            Scenario::TlsProxy => "tls-proxy",
            Scenario::Connections => "connections",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Whether `m` is compared in this scenario at all: servers in http-static, byte
    /// movers everywhere else. (Methods of the other family are left out of the table.)
    pub fn compares(self, m: Method) -> bool {
        match self {
            Scenario::HttpsHandshakes => m.family() == Scenario::HttpsStatic,
            Scenario::HttpStatic
            | Scenario::HttpsStatic
            | Scenario::TcpProxy
            | Scenario::TlsProxy => m.family() == self,
            // One configuration of each server: the memory of a connection does not
            // depend on tcp_nopush or the pipe size.
            Scenario::Connections => matches!(
                m,
                Method::Nginx | Method::FerryServe | Method::Haproxy | Method::FerryProxy
            ),
            _ => m.family() == Scenario::FileToSocket,
        }
    }

    /// Why a method does not apply here, if it does not.
    pub fn not_applicable(self, m: Method) -> Option<&'static str> {
        match (self, m) {
            (Scenario::SocketToSocket, Method::Sendfile) => {
                Some("sendfile needs a file source (the proxy reads a socket)")
            }
            (Scenario::RequestResponse, Method::StdCopy) => {
                Some("std::io::copy blocks; the many-connection server is an event loop")
            }
            _ => None,
        }
    }
}

/// One measured repetition of one method on one case.
#[derive(Debug)]
pub struct RunResult {
    /// Payload bytes moved (verified).
    pub bytes: u64,
    pub secs: f64,
    /// Requests completed (request-response only).
    pub requests: Option<u64>,
    /// Latencies in µs: per request, or the whole run for bulk scenarios.
    pub hist: Histogram<u64>,
    /// CPU seconds of the method's own threads (process CPU minus the load generator's),
    /// or of the server process (http-static).
    pub cpu_secs: f64,
    /// Percentiles reported by an external load generator (http-static: wrk), when
    /// `hist` has no samples of ours.
    pub latency: Option<PeerLatency>,
    /// Busy time of every CPU of the machine during the run (scenarios with a peer
    /// process: http-static, tcp-proxy): the method's cost including the work it leaves
    /// to its peers and to the kernel outside any process (docs/benchmarks.md,
    /// "Congestion control").
    pub machine_cpu_secs: Option<f64>,
}

/// Latency percentiles of one run as wrk reports them, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLatency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Deterministic pseudo-random bytes (xorshift), the same on every machine.
pub fn fill_pattern(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// Writes a data file of `size` bytes and reads it once so it is in the page cache.
pub fn make_file(path: &Path, size: u64, seed: u64) -> io::Result<()> {
    let mut f = File::create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    let mut s = seed;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..n], s);
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.sync_data().ok();
    Ok(())
}

/// A streaming checksum (order-sensitive, ~word speed); chunk boundaries do not matter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    h: u64,
    n: u64,
    pending: [u8; 8],
    plen: usize,
}

impl Checksum {
    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.n += data.len() as u64;
        if self.plen > 0 {
            let take = (8 - self.plen).min(data.len());
            self.pending[self.plen..self.plen + take].copy_from_slice(&data[..take]);
            self.plen += take;
            data = &data[take..];
            if self.plen < 8 {
                return;
            }
            let w = u64::from_le_bytes(self.pending);
            self.mix(w);
            self.plen = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.plen = rest.len();
    }

    /// The final value (the pending tail included).
    pub fn value(&self) -> (u64, u64) {
        let mut c = *self;
        if c.plen > 0 {
            let mut tail = [0u8; 8];
            tail[..c.plen].copy_from_slice(&c.pending[..c.plen]);
            c.mix(u64::from_le_bytes(tail) ^ (c.plen as u64) << 56);
        }
        (c.h, c.n)
    }

    pub fn of_file(path: &Path, offset: u64, len: u64) -> io::Result<Checksum> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut c = Checksum::default();
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = f.read(&mut buf[..left.min(1 << 20) as usize])?;
            if n == 0 {
                break;
            }
            c.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(c)
    }
}

/// Busy time of all CPUs of the machine so far (user, nice, system, irq and softirq
/// from /proc/stat), or `None` where it cannot be read.
pub fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal …
    let ticks = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// `machine_busy()` between two readings, in seconds.
pub fn machine_busy_since(start: Option<Duration>) -> Option<f64> {
    Some(machine_busy()?.checked_sub(start?)?.as_secs_f64())
}

/// CPU time (user + system) of the whole process or the calling thread, in
/// nanoseconds (the kernel's CPU clocks).
pub fn cpu_time(thread: bool) -> Duration {
    use rustix::time::{clock_gettime, ClockId};
    let clock = if thread {
        ClockId::ThreadCPUTime
    } else {
        ClockId::ProcessCPUTime
    };
    let t = clock_gettime(clock);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

pub fn fail(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}
