//! The `connections` scenario: what an idle keep-alive connection costs a server
//! (nginx against `ferry serve`) and an idle pair costs a proxy (HAProxy against
//! `ferry proxy`), and what holding them costs the active connections.
//!
//! One run of one subject, on a process started once for the whole benchmark (so later
//! runs show whether memory ratchets up):
//! 1. wrk, 64 connections, the 4 KiB file: CPU per request with nothing idle;
//! 2. the server's anonymous RSS (`RssAnon`: heap and stacks, not mapped code);
//! 3. N clients connect — each from its own address in 127.0.0.0/8, so the ephemeral
//!    port range is no bound — GET the file once (every byte checked) and stay open;
//! 4. RSS again: (3 − 2) / N is the memory of one idle connection;
//! 5. the same wrk with the N held: CPU per request and p99 with N idle;
//! 6. every 50th idle client asks again and must get the file (none was dropped);
//! 7. all N close; once the server's fds are back, RSS again: what it kept.
//!
//! Subjects run interleaved, run by run. Each gets the configuration an operator
//! would write for N connections: nginx `worker_connections`, HAProxy `maxconn`, ferry
//! `--max-connections` (N + N/8 + 1024). The proxies share one origin (nginx where
//! installed, else `ferry serve`), on CPU 1 under `--pin` like wrk; servers on CPU 0.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::common::{fail, Method, RunResult};
use super::peers::{self, Peer};
use super::tcp_proxy::start_haproxy;

/// The file the idle clients and the active load ask for.
pub const ACTIVE_SIZE: u64 = 4096;
/// Connections of the active load.
pub const ACTIVE_CONNECTIONS: usize = 64;
/// Every this many idle clients ask again after the active load.
const RECHECK_EVERY: usize = 50;
/// Idle timeouts of every subject and the origin: opening 50 000 connections on a slow
/// machine takes longer than the usual 60 s, and a client closed for idling is not
/// what is measured here.
const IDLE_SECS: u64 = 3600;

/// The four processes under test and the proxies' origin; a process that cannot run
/// is the reason why.
pub struct Subjects {
    nginx: Result<Peer, String>,
    ferry_serve: Result<Peer, String>,
    haproxy: Result<Peer, String>,
    ferry_proxy: Result<Peer, String>,
    /// Kept alive for the proxies.
    _origin: Result<Peer, String>,
    wrk: Result<PathBuf, String>,
    pin: bool,
}

/// What one run of one subject measured.
#[derive(Debug)]
pub struct IdleRun {
    pub idle: usize,
    /// The server's RssAnon in KB: before the idle clients, while held, after they left.
    pub before_kb: u64,
    pub held_kb: u64,
    pub after_kb: u64,
    /// wrk with nothing idle, and with the N held.
    pub active_alone: RunResult,
    pub active_with_idle: RunResult,
}

impl IdleRun {
    /// Bytes of RSS per idle connection over `base_kb` (the RSS without them).
    pub fn bytes_per_idle(&self, base_kb: u64) -> f64 {
        self.held_kb.saturating_sub(base_kb) as f64 * 1024.0 / self.idle.max(1) as f64
    }
}

impl Subjects {
    /// Starts every subject on `root` (which holds `data-4096`) for up to `most` idle
    /// connections.
    pub fn start(root: &Path, pin: bool, most: usize) -> Subjects {
        let server_cpu = pin.then_some(0);
        let origin_cpu = pin.then_some(1);
        // nginx starts closing idle keep-alive connections to make room once fewer than
        // a sixteenth of `worker_connections` are free: the room is N + N/8 + 1024.
        let room = most + most / 8 + 1024;
        let limit = room.to_string();
        let idle_secs = IDLE_SECS.to_string();
        let nginx = |cpu| match peers::find("nginx") {
            None => Err("not run: nginx not installed (scripts/install-peers.sh)".to_string()),
            Some(bin) => peers::start_nginx(&bin, root, cpu, true, room, IDLE_SECS, None)
                .map_err(|e| format!("nginx did not start: {e}")),
        };
        let origin = match peers::find("nginx") {
            Some(_) => nginx(origin_cpu),
            None => peers::start_ferry_serve(
                root,
                origin_cpu,
                "ferry serve (origin)",
                &["--max-connections", &limit, "--idle-timeout", &idle_secs],
            )
            .map_err(|e| format!("ferry serve (origin) did not start: {e}")),
        };
        let origin_addr = origin.as_ref().map(|p| p.addr).map_err(Clone::clone);
        let haproxy = match (peers::find("haproxy"), &origin_addr) {
            (None, _) => Err("not run: haproxy not installed (scripts/install-peers.sh)".into()),
            (_, Err(e)) => Err(format!("no origin: {e}")),
            (Some(bin), Ok(o)) => {
                start_haproxy(&bin, root, server_cpu, *o, false, (room, IDLE_SECS), None)
                    .map_err(|e| format!("haproxy did not start: {e}"))
            }
        };
        let ferry_proxy = match &origin_addr {
            Err(e) => Err(format!("no origin: {e}")),
            Ok(o) => peers::start_ferry_proxy(
                *o,
                server_cpu,
                &["--max-connections", &limit, "--idle-timeout", &idle_secs],
            )
            .map_err(|e| format!("ferry proxy did not start: {e}")),
        };
        Subjects {
            nginx: nginx(server_cpu),
            ferry_serve: peers::start_ferry_serve(
                root,
                server_cpu,
                "ferry serve",
                &["--max-connections", &limit, "--idle-timeout", &idle_secs],
            )
            .map_err(|e| format!("ferry serve did not start: {e}")),
            haproxy,
            ferry_proxy,
            _origin: origin,
            wrk: peers::find("wrk")
                .ok_or_else(|| "not run: wrk not installed (scripts/install-peers.sh)".into()),
            pin,
        }
    }

    fn peer(&self, m: Method) -> &Result<Peer, String> {
        match m {
            Method::Nginx => &self.nginx,
            Method::FerryServe => &self.ferry_serve,
            Method::Haproxy => &self.haproxy,
            _ => &self.ferry_proxy,
        }
    }

    /// Why `m` cannot run here, if it cannot.
    pub fn unavailable(&self, m: Method) -> Option<String> {
        if let Err(e) = &self.wrk {
            return Some(e.clone());
        }
        self.peer(m).as_ref().err().cloned()
    }

    /// One GET of the file through `m`, every byte checked against `want`.
    pub fn verify(&self, m: Method, want: super::Checksum) -> io::Result<()> {
        let peer = self.peer(m).as_ref().map_err(|e| fail(e.clone()))?;
        peers::verify_get(peer.addr, peer.name, &path(), ACTIVE_SIZE, want)
    }

    /// One measured run of `m` with `idle` idle connections; `body` is the file's bytes.
    pub fn run(&self, m: Method, idle: usize, secs: u64, body: &[u8]) -> io::Result<IdleRun> {
        let peer = self.peer(m).as_ref().map_err(|e| fail(e.clone()))?;
        let wrk = self.wrk.as_ref().map_err(|e| fail(e.clone()))?;
        let url = format!("http://{}{}", peer.addr, path());
        let load = || {
            peers::wrk(
                wrk,
                self.pin,
                &url,
                ACTIVE_CONNECTIONS,
                secs,
                ACTIVE_SIZE,
                peer,
                &[],
            )
        };
        let active_alone = load()?;
        let pid = peer.child.id();
        let fds_before = open_fds(pid);
        let before_kb = rss_anon_kb(pid)?;
        let mut held = Vec::with_capacity(idle);
        for i in 0..idle {
            let mut s = connect_from(i, peer.addr)
                .map_err(|e| fail(format!("{}: idle client {i}: {e}", peer.name)))?;
            get(&mut s, body).map_err(|e| fail(format!("{}: idle client {i}: {e}", peer.name)))?;
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(300));
        let held_kb = rss_anon_kb(pid)?;
        let active_with_idle = load()?;
        for (i, s) in held.iter_mut().enumerate().step_by(RECHECK_EVERY) {
            get(s, body).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: idle client {i} was not answered after the load: {e}",
                        peer.name
                    ),
                )
            })?;
        }
        drop(held);
        // The server has seen every close when its fds are back where they were.
        let t0 = Instant::now();
        while open_fds(pid) > fds_before && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(IdleRun {
            idle,
            before_kb,
            held_kb,
            after_kb: rss_anon_kb(pid)?,
            active_alone,
            active_with_idle,
        })
    }
}

fn path() -> String {
    format!("/data-{ACTIVE_SIZE}")
}

/// A connection from 127.X.Y.Z (a different source address for each `i`) to `to`.
fn connect_from(i: usize, to: SocketAddr) -> io::Result<TcpStream> {
    let n = i as u32;
    let src = Ipv4Addr::new(
        127,
        1 + (n / 62_500 % 200) as u8,
        (n / 250 % 250) as u8,
        (1 + n % 250) as u8,
    );
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddrV4::new(src, 0).into())?;
    s.connect(&to.into())?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// One keep-alive GET of the file on `s`: status 200, its length, and `body` exactly.
fn get(s: &mut TcpStream, body: &[u8]) -> io::Result<()> {
    s.write_all(format!("GET {} HTTP/1.1\r\nHost: bench\r\n\r\n", path()).as_bytes())?;
    let mut buf = Vec::with_capacity(1024 + body.len());
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(fail("the server closed the connection"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(fail(format!("unexpected response {head:?}")));
            }
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| fail("no content-length"))?;
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(fail("the server closed the connection mid-body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if &buf[head_end..] != body {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the body differs from the file",
        ));
    }
    Ok(())
}

/// A process's anonymous resident memory, in KB.
fn rss_anon_kb(pid: u32) -> io::Result<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| fail(format!("no RssAnon in /proc/{pid}/status")))
}

/// How many fds a process has open (0 when it cannot be read).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The most idle connections the fd limit lets this benchmark hold: this process holds
/// one fd per idle client, a proxy two per pair and the origin one.
pub fn most_idle(fd_limit: u64) -> usize {
    (fd_limit.saturating_sub(400) / 2) as usize
}
