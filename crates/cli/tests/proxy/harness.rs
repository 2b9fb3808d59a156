//! A real `ferry proxy` process and real backends on loopback. The proxy runs whatever
//! backend `FERRY_BACKEND` says (the suite runs once with io_uring and once with the
//! readiness fallback).
#![allow(dead_code)] // each test binary uses a part of these helpers

#[path = "../support/process.rs"]
mod process;
#[path = "../support/ready.rs"]
mod ready;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct ProxyProc {
    pub proc: process::Running,
    pub addr: SocketAddr,
    pub banner: String,
}

impl ProxyProc {
    pub fn start(backends: &[SocketAddr], flags: &[&str]) -> ProxyProc {
        ProxyProc::start_env(backends, flags, &[])
    }

    /// `start` with these environment variables set for the proxy.
    pub fn start_env(backends: &[SocketAddr], flags: &[&str], env: &[(&str, &str)]) -> ProxyProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.envs(env.iter().copied());
        cmd.args(["proxy", "-v", "--listen", "127.0.0.1:0"]);
        if !flags.contains(&"--threads") {
            cmd.args(["--threads", "2"]);
        }
        for b in backends {
            cmd.arg("--backend").arg(b.to_string());
        }
        cmd.args(flags).stderr(Stdio::inherit());
        let (child, banner, addr) = ready::spawn_ready(cmd);
        ProxyProc {
            proc: process::Running::new(child),
            addr,
            banner,
        }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// Socket fds of the proxy process.
    pub fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.proc.child.id()))
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
            })
            .count()
    }

    /// Waits (≤ `within`) until the proxy holds at most `n` sockets.
    pub fn wait_sockets(&self, n: usize, within: Duration) {
        let start = Instant::now();
        while self.sockets() > n {
            assert!(
                start.elapsed() < within,
                "proxy holds {} sockets, baseline {n}",
                self.sockets()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// utime + stime of the proxy, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.proc.cpu_ticks()
    }

    pub fn stop(mut self, within: Duration) -> std::process::ExitStatus {
        self.proc.stop(within)
    }
}

/// A backend: a listener whose connections are each handled by `serve` on a thread.
pub struct Backend {
    pub addr: SocketAddr,
    _accept: JoinHandle<()>,
}

impl Backend {
    pub fn start(serve: impl Fn(TcpStream) + Send + Sync + Clone + 'static) -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let accept = std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let serve = serve.clone();
                std::thread::spawn(move || serve(c));
            }
        });
        Backend {
            addr,
            _accept: accept,
        }
    }

    /// Echoes every byte back, half-closing after the client's EOF.
    pub fn echo() -> Backend {
        Backend::start(|mut c| {
            let mut r = c.try_clone().unwrap();
            let _ = std::io::copy(&mut r, &mut c);
            let _ = c.shutdown(Shutdown::Write);
        })
    }
}

/// A backend that reads everything the client sends (recording it in `got`) while
/// sending `down` pattern bytes (seed 7) of its own, then half-closes; a read that ends
/// in an error records nothing.
pub fn upload_download(down: usize, got: Arc<Mutex<Vec<Vec<u8>>>>) -> Backend {
    Backend::start(move |c| {
        let w = send_then_eof(c.try_clone().unwrap(), pattern(down, 7));
        let mut r = c;
        let (up, err) = read_all(&mut r);
        assert!(err.is_none(), "backend read ended with {err:?}");
        got.lock().unwrap().push(up);
        w.join().unwrap();
    })
}

/// An address where nothing listens.
pub fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_mul(2654435761) >> 7) as u32 ^ seed) as u8)
        .collect()
}

/// Reads until EOF; `Err` kind when the stream ended with an error (a reset).
pub fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (all, None),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (all, Some(e.kind())),
        }
    }
}

/// Sets SO_LINGER 0: closing sends a reset.
pub fn reset_on_close(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

/// Writes all of `data` then half-closes, on a thread.
pub fn send_then_eof(mut s: TcpStream, data: Vec<u8>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        s.write_all(&data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    })
}
