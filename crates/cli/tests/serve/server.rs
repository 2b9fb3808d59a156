//! A real `ferry serve` process on a temporary root, and a raw HTTP/1.1 client for it.
//! The server runs whatever backend `FERRY_BACKEND` says (the suite runs once with
//! io_uring and once with `FERRY_BACKEND=blocking`: LocalEngine's readiness fallback).
#![allow(dead_code)] // each test binary uses a part of these helpers

#[path = "../support/process.rs"]
mod process;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub proc: process::Running,
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    /// What the server printed on its ready line (`-v`: backend, containment).
    pub banner: String,
}

impl Server {
    /// Starts `ferry serve` on a fresh root filled by `fill`, with extra flags.
    pub fn start(fill: impl FnOnce(&Path), flags: &[&str]) -> Server {
        Server::start_env(fill, flags, &[])
    }

    /// `start` with extra environment variables for the server.
    pub fn start_env(fill: impl FnOnce(&Path), flags: &[&str], env: &[(&str, &str)]) -> Server {
        let root = tempfile::tempdir().expect("temp root");
        fill(root.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .envs(env.iter().copied())
            .args(["serve", "-v", "--listen", "127.0.0.1:0", "--root"])
            .arg(root.path())
            .args(if flags.contains(&"--threads") {
                &[][..]
            } else {
                &["--threads", "2"][..]
            })
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ferry serve");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        out.read_line(&mut banner).expect("ready line");
        let addr = banner
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.split("://").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {banner:?}"))
            .parse()
            .expect("address");
        // Keep draining stdout (access log) so the server never blocks on it.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Server {
            proc: process::Running::new(child),
            addr,
            root,
            banner,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// One request on a new connection.
    pub fn get(&self, request: &str) -> Response {
        let mut s = self.connect();
        s.write_all(request.as_bytes()).expect("send request");
        read_response(&mut s, request.starts_with("HEAD"))
    }

    /// SIGTERM, then waits for the exit status (at most `within`).
    pub fn stop(mut self, within: Duration) -> std::process::ExitStatus {
        self.proc.stop(within)
    }

    /// Sends `sig` (`USR1`, `TERM` …) to the server.
    pub fn signal(&self, sig: &str) {
        let pid = self.proc.child.id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{sig} {pid}");
    }

    /// The server's open fds by kind: (sockets, files beneath the root, pipes).
    pub fn fds(&self) -> (usize, usize, usize) {
        let (mut sockets, mut files, mut pipes) = (0, 0, 0);
        let root = std::fs::canonicalize(self.root.path()).unwrap();
        for e in std::fs::read_dir(format!("/proc/{}/fd", self.proc.child.id()))
            .unwrap()
            .flatten()
        {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if t.starts_with("socket:") {
                sockets += 1;
            } else if t.starts_with("pipe:") {
                pipes += 1;
            } else if target.starts_with(&root) && target != root {
                files += 1;
            }
        }
        (sockets, files, pipes)
    }

    /// Waits (≤ 5 s) until the server holds no more sockets than `sockets`, no file of
    /// the root open (its file cache forgets files after 1 s idle), and at most `pipes`
    /// pipe ends (the pools keep up to 64 idle pipes per thread).
    pub fn wait_fds(&self, sockets: usize, pipes: usize) {
        let start = Instant::now();
        loop {
            let (s, f, p) = self.fds();
            if s <= sockets && f == 0 && p <= pipes {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "server holds {s} sockets (baseline {sockets}), {f} root files (want 0), {p} pipe ends (max {pipes})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header lines as (lowercase name, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response: the head, then exactly Content-Length body bytes (none for HEAD
/// and 304), panicking on a short body.
pub fn read_response(s: &mut impl Read, head_only: bool) -> Response {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "connection ended in a head ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let text = String::from_utf8(head).expect("ascii head");
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next().unwrap()[9..12].parse().expect("status");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let mut r = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if !head_only && status != 304 {
        let len: usize = r
            .header("content-length")
            .expect("content-length")
            .parse()
            .unwrap();
        r.body = vec![0; len];
        s.read_exact(&mut r.body).expect("whole body");
    }
    r
}

/// Reads until the peer closes (or errors); returns what arrived.
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Deterministic content.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_mul(2654435761) >> 7) as u32 ^ seed) as u8)
        .collect()
}

/// nginx's ETag for a path: `"<hex mtime>-<hex size>"`.
pub fn etag_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    format!("\"{:x}-{:x}\"", m.mtime(), m.size())
}
