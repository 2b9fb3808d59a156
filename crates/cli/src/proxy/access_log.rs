//! `ferry proxy --access-log`: one line per client connection, written when it closed
//! (HAProxy's `tcplog`, in words):
//!
//! `2026-12-06T03:01:20.123Z 127.0.0.1:51234 -> 127.0.0.1:9000 c2s=4 s2c=4 1.234s client=FIN server=FIN`
//!
//! the time it was accepted (UTC), the client, the backend (the last one tried when
//! none answered), bytes client → server and server → client, how long it lived, and
//! how each side ended ([`End`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use ferry_engine::ProxyError;

use crate::log_file::LogWriter;

/// How one side of a pair ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It ended its stream cleanly (ferry read its EOF).
    Fin,
    /// It reset the connection.
    Rst,
    /// Another kernel error on its socket (the errno).
    Error(i32),
    /// Nothing moved either way for `--idle-timeout`.
    Idle,
    /// Cut at the end of the grace period of a stop.
    Grace,
    /// Closed by ferry because the other side failed (it may have ended its own stream
    /// before).
    Cut,
    /// The backend refused every connect (server side).
    Refused,
    /// No backend answered within `--connect-timeout` (server side).
    Timeout,
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Fin => f.write_str("FIN"),
            End::Rst => f.write_str("RST"),
            End::Error(errno) => write!(f, "ERR:{}", errno_name(*errno)),
            End::Idle => f.write_str("IDLE"),
            End::Grace => f.write_str("GRACE"),
            End::Cut => f.write_str("CUT"),
            End::Refused => f.write_str("REFUSED"),
            End::Timeout => f.write_str("TIMEOUT"),
        }
    }
}

/// (client, server) ends of a proxy that finished with `result`; `cutting` when ferry
/// was cancelling it at the end of a grace period.
pub fn ends(result: &io::Result<(u64, u64)>, cutting: bool) -> ((u64, u64), End, End) {
    let e = match result {
        Ok(bytes) => return (*bytes, End::Fin, End::Fin),
        Err(e) => e,
    };
    let Some(pe) = ProxyError::of(e) else {
        return ((0, 0), End::Cut, End::Cut);
    };
    let bytes = (pe.client_to_server, pe.server_to_client);
    let both = |end| (bytes, end, end);
    match (e.kind(), pe.errno) {
        (io::ErrorKind::TimedOut, None) => both(End::Idle),
        (io::ErrorKind::Interrupted, _) if cutting => both(End::Grace),
        (_, Some(errno)) => {
            // The engine reports a dead destination as EPIPE; every other errno comes
            // from reading the source (ECONNRESET: it reset).
            let up = pe.direction.starts_with("client");
            let (src, dst) = if up { (0, 1) } else { (1, 0) };
            let mut sides = [End::Cut, End::Cut];
            match errno {
                libc::EPIPE => sides[dst] = End::Rst,
                libc::ECONNRESET => sides[src] = End::Rst,
                other => sides[src] = End::Error(other),
            }
            (bytes, sides[0], sides[1])
        }
        _ => both(End::Cut),
    }
}

/// The end of a connect that failed.
pub fn connect_end(e: &io::Error) -> End {
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::TimedOut, None) => End::Timeout,
        (_, Some(libc::ECONNREFUSED)) => End::Refused,
        (_, Some(errno)) => End::Error(errno),
        _ => End::Cut,
    }
}

/// One connection's line.
pub struct Line {
    pub client: SocketAddr,
    pub backend: SocketAddr,
    pub bytes: (u64, u64),
    pub lived: Duration,
    pub client_end: End,
    pub server_end: End,
}

impl Line {
    pub fn write(&self, out: &mut LogWriter) {
        let accepted = SystemTime::now() - self.lived;
        out.line(format_args!(
            "{} {} -> {} c2s={} s2c={} {:.3}s client={} server={}",
            humantime::format_rfc3339_millis(accepted),
            self.client,
            self.backend,
            self.bytes.0,
            self.bytes.1,
            self.lived.as_secs_f64(),
            self.client_end,
            self.server_end,
        ));
    }
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EPIPE => "EPIPE",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        _ => return errno.to_string(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(kind: io::ErrorKind, errno: Option<i32>, direction: &'static str) -> io::Error {
        io::Error::new(
            kind,
            ProxyError {
                direction,
                errno,
                client_to_server: 3,
                server_to_client: 7,
                reason: "test".into(),
            },
        )
    }

    #[test]
    fn each_side_is_blamed_for_what_it_did() {
        use io::ErrorKind as K;
        let c2s = "client → server";
        let s2c = "server → client";
        assert_eq!(ends(&Ok((1, 2)), false), ((1, 2), End::Fin, End::Fin));
        let rst = |d| failed(K::ConnectionReset, Some(libc::ECONNRESET), d);
        let pipe = |d| failed(K::BrokenPipe, Some(libc::EPIPE), d);
        assert_eq!(ends(&Err(rst(c2s)), false), ((3, 7), End::Rst, End::Cut));
        assert_eq!(ends(&Err(rst(s2c)), false), ((3, 7), End::Cut, End::Rst));
        assert_eq!(ends(&Err(pipe(c2s)), false), ((3, 7), End::Cut, End::Rst));
        assert_eq!(ends(&Err(pipe(s2c)), false), ((3, 7), End::Rst, End::Cut));
        let idle = failed(K::TimedOut, None, c2s);
        assert_eq!(ends(&Err(idle), false).1, End::Idle);
        let cancelled = failed(K::Interrupted, None, s2c);
        assert_eq!(ends(&Err(cancelled), true).2, End::Grace);
        let unreach = failed(K::HostUnreachable, Some(libc::EHOSTUNREACH), s2c);
        let (_, c, s) = ends(&Err(unreach), false);
        assert_eq!((c, s.to_string().as_str()), (End::Cut, "ERR:EHOSTUNREACH"));
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(connect_end(&refused), End::Refused);
        assert_eq!(connect_end(&io::Error::from(K::TimedOut)), End::Timeout);
    }
}
