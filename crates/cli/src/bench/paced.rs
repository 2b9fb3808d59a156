//! Light load: one connection asking at a fixed rate ([`RATE`] requests a second, each
//! sent at its planned time whatever happened to the one before), so what a server
//! costs per request while it is mostly waiting shows on its own — the closed-loop
//! cases keep servers busy and hide it. Latency is counted from each request's planned
//! time (a late answer also delays the next request's start, and that delay is counted
//! too). CPU is the server's: its threads' time on CPU (`/proc/PID/task/*/schedstat`,
//! nanoseconds) for a peer process; for the in-process request-response servers, the
//! process's minus the client thread's.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::common::{fail, new_hist, RunResult};

/// Requests a second.
pub const RATE: u32 = 1000;

/// Planned send times, `1/rate` apart from the start.
pub struct Schedule {
    start: Instant,
    period: Duration,
    next: u64,
}

impl Schedule {
    pub fn new(rate: u32) -> Schedule {
        Schedule {
            start: Instant::now(),
            period: Duration::from_secs(1) / rate.max(1),
            next: 0,
        }
    }

    /// Sleeps until the next planned time (at once when it has passed) and returns it.
    pub fn wait(&mut self) -> Instant {
        let at = self.start + self.period * self.next as u32;
        self.next += 1;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        at
    }
}

/// Time on CPU of every thread of process `pid` so far.
pub fn process_cpu_ns(pid: u32) -> io::Result<Duration> {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(s) = std::fs::read_to_string(t?.path().join("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        ns += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(Duration::from_nanos(ns))
}

/// `GET path` on one keep-alive connection to `addr` at [`RATE`] for `secs`; every
/// answer must be `200` with `size` body bytes. CPU: server process `pid`.
pub fn http(addr: SocketAddr, path: &str, size: u64, secs: f64, pid: u32) -> io::Result<RunResult> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    let mut buf = vec![0u8; 256 * 1024];
    // One request first, unplanned: the connection is set up and the file cached.
    get(&mut s, request.as_bytes(), size, &mut buf)?;
    let mut hist = new_hist();
    let cpu0 = process_cpu_ns(pid)?;
    let mut plan = Schedule::new(RATE);
    let start = Instant::now();
    let mut requests = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let planned = plan.wait();
        get(&mut s, request.as_bytes(), size, &mut buf)?;
        hist.saturating_record(planned.elapsed().as_micros() as u64);
        requests += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_ns(pid)?.saturating_sub(cpu0);
    Ok(RunResult {
        bytes: requests * size,
        secs: elapsed,
        requests: Some(requests),
        hist,
        cpu_secs: cpu.as_secs_f64(),
        latency: None,
        machine_cpu_secs: None,
    })
}

/// One request and its whole answer: status 200, `Content-Length: size`, `size` bytes.
fn get(s: &mut TcpStream, request: &[u8], size: u64, buf: &mut [u8]) -> io::Result<()> {
    s.write_all(request)?;
    let mut got = 0;
    let head_end = loop {
        let n = s.read(&mut buf[got..])?;
        if n == 0 {
            return Err(fail("the server closed the connection"));
        }
        got += n;
        if let Some(i) = buf[..got].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if got == buf.len() {
            return Err(fail("no end of the response head"));
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    if !head.starts_with("HTTP/1.1 200") {
        let line = head.lines().next().unwrap_or_default();
        return Err(fail(format!("answer {line:?}, not 200")));
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<u64>().ok())
                .flatten()
        })
        .ok_or_else(|| fail("no Content-Length"))?;
    if length != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("Content-Length {length}, not {size}"),
        ));
    }
    let mut body = (got - head_end) as u64;
    while body < size {
        let n = s.read(buf)?;
        if n == 0 {
            return Err(fail("the server closed the connection mid-body"));
        }
        body += n as u64;
    }
    if body != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "more bytes than Content-Length",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_keeps_its_rate_and_does_not_catch_up_by_bursts_of_its_own() {
        let mut plan = Schedule::new(1000);
        let first = plan.wait();
        // Late by 20 ms: the planned times stay on the grid (their lateness is the
        // latency the client records), they do not shift.
        std::thread::sleep(Duration::from_millis(20));
        let second = plan.wait();
        assert_eq!(second - first, Duration::from_millis(1));
        for _ in 0..50 {
            plan.wait();
        }
        let last = plan.wait();
        assert_eq!(last - first, Duration::from_millis(52));
        assert!(Instant::now() >= last);
    }
}
