//! Restarting `ferry serve` and `ferry proxy` without refusing a connection: the test
//! plays the service manager (systemd socket activation: it owns the listening socket
//! and passes it as fd 3 with `LISTEN_FDS=1`, `LISTEN_PID`), and a client loop makes
//! one connection per request all along — through a new process started while the old
//! one drains, and through a stop followed by a start (requests wait in the socket's
//! backlog meanwhile). Every request must get its answer: zero refused, reset or short.
//! Each runs the backend `FERRY_BACKEND` says.
#![cfg(target_os = "linux")]

#[path = "support/process.rs"]
#[allow(dead_code)] // cpu_ticks serves other test binaries
mod process;
#[path = "support/ready.rs"]
mod ready;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// A listening socket owned by the test (the "service manager").
fn manager_socket() -> (Socket, SocketAddr) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(1024).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, addr)
}

/// `ferry ARGS…` with `sock` as its fd 3 and the activation variables naming it.
fn activated(sock: &Socket, args: &[&str]) -> process::Running {
    let fd = sock.as_raw_fd();
    // A shell moves the socket to fd 3, sets LISTEN_PID to its own pid and execs ferry,
    // which keeps that pid — what systemd does between fork and exec.
    let script = format!(
        "exec 3<&{fd}; {close} export LISTEN_FDS=1 LISTEN_PID=$$; exec \"$0\" \"$@\"",
        close = if fd == 3 {
            String::new()
        } else {
            format!("exec {fd}<&-;")
        }
    );
    sock.set_cloexec(false).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .stderr(Stdio::inherit());
    let (child, line, _) = ready::spawn_ready(cmd);
    sock.set_cloexec(true).unwrap();
    assert!(line.contains("listening on"), "{line}");
    process::Running::new(child)
}

/// Requests one per connection until `stop`: the bodies seen, and every failure.
struct Client {
    /// What the test is doing (named in failures).
    phase: Arc<Mutex<&'static str>>,
    done: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(addr: SocketAddr) -> Client {
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let phase = Arc::new(Mutex::new("a serving"));
        let (d, s, f, b) = (done.clone(), stop.clone(), failures.clone(), bodies.clone());
        let p = phase.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let during = *p.lock().unwrap();
                match one(addr) {
                    Ok(body) => b.lock().unwrap().push(body),
                    Err(e) => f
                        .lock()
                        .unwrap()
                        .push(format!("{e} (begun while {during})")),
                }
                d.fetch_add(1, Ordering::Relaxed);
            }
        });
        Client {
            phase,
            done,
            stop,
            failures,
            bodies,
            thread: Some(thread),
        }
    }

    /// Waits until `n` more requests were made (at most 60 s).
    fn wait_for(&self, n: usize) {
        let until = self.done.load(Ordering::Relaxed) + n;
        let t0 = Instant::now();
        while self.done.load(Ordering::Relaxed) < until {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the client loop stalled"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn phase(&self, now: &'static str) {
        *self.phase.lock().unwrap() = now;
    }

    fn finish(mut self) -> (usize, Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let bodies = std::mem::take(&mut *self.bodies.lock().unwrap());
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        (self.done.load(Ordering::Relaxed), bodies, failures)
    }
}

fn one(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut all = String::new();
    s.read_to_string(&mut all)
        .map_err(|e| format!("read: {e}"))?;
    match all.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") && body.len() == 1 => {
            Ok(body.to_string())
        }
        _ => Err(format!("answer {all:?}")),
    }
}

fn root(who: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("who"), who).unwrap();
    d
}

/// Old and new overlap (the new one starts, then the old one is stopped), then a plain
/// stop and start with nobody accepting in between; `start(who)` starts a server that
/// answers `who`.
fn restarts(what: &str, addr: SocketAddr, start: impl Fn(&str) -> process::Running) {
    let mut a = start("a");
    let client = Client::start(addr);
    client.wait_for(400);
    client.phase("a and b serving");
    let mut b = start("b");
    client.phase("a stopping");
    assert!(a.stop(Duration::from_secs(20)).success());
    client.phase("b serving");
    client.wait_for(800);
    client.phase("b stopping");
    assert!(b.stop(Duration::from_secs(20)).success());
    // Nobody accepts now: the client's connection waits in the backlog.
    client.phase("none running");
    std::thread::sleep(Duration::from_millis(300));
    let mut c = start("c");
    client.phase("c serving");
    client.wait_for(800);
    let (made, bodies, failures) = client.finish();
    assert!(c.stop(Duration::from_secs(20)).success());
    assert!(
        failures.is_empty(),
        "{what}: {} of {made} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(made >= 2000, "{made} requests");
    for who in ["a", "b", "c"] {
        assert!(
            bodies.iter().any(|b| b == who),
            "server {who} answered nothing"
        );
    }
}

#[test]
fn serve_and_proxy_restart_without_refusing_a_connection() {
    let roots = [root("a"), root("b"), root("c")];
    let dir = |who: &str| {
        roots[(who.as_bytes()[0] - b'a') as usize]
            .path()
            .to_str()
            .unwrap()
            .to_string()
    };

    let (sock, addr) = manager_socket();
    restarts("ferry serve", addr, |who| {
        activated(
            &sock,
            &[
                "serve",
                "--threads",
                "2",
                "--grace",
                "10",
                "--root",
                &dir(who),
            ],
        )
    });

    // The proxy in front of three origins, one per generation.
    let origins: Vec<(process::Running, SocketAddr)> = ["a", "b", "c"]
        .iter()
        .map(|who| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
            cmd.args([
                "serve",
                "--threads",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--root",
                &dir(who),
            ])
            .stderr(Stdio::inherit());
            let (child, _, a) = ready::spawn_ready(cmd);
            (process::Running::new(child), a)
        })
        .collect();
    let (sock, addr) = manager_socket();
    restarts("ferry proxy", addr, |who| {
        let origin = origins[(who.as_bytes()[0] - b'a') as usize].1.to_string();
        // --listen is required by the flags but unused: the passed socket wins.
        activated(
            &sock,
            &[
                "proxy",
                "--threads",
                "2",
                "--grace",
                "10",
                "--listen",
                "127.0.0.1:0",
                "--backend",
                &origin,
            ],
        )
    });
}
