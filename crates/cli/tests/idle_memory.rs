//! What an idle connection costs: 2000 keep-alive connections held by `ferry serve`
//! (each after one request) and 2000 idle pairs held by `ferry proxy` (each after one
//! echo), three rounds each: the server's anonymous RSS growth per connection under a
//! generous bound — the tight goals (≤ 1 KB, ≤ 3 KB) are measured in docs/serve.md and
//! docs/proxy.md — and no ratchet: what a round leaves stays under the first round's
//! peak. Each
//! runs the backend `FERRY_BACKEND` says.
#![cfg(target_os = "linux")]

#[path = "support/process.rs"]
#[allow(dead_code)] // stop and cpu_ticks serve other test binaries
mod process;
#[path = "support/ready.rs"]
mod ready;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const N: usize = 2000;

fn raise_own_limit() {
    ready::raise_fd_limit(2 * N as u64 + 100);
}

fn start(args: &[&str]) -> (process::Running, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args).stderr(Stdio::inherit());
    let (child, _, addr) = ready::spawn_ready(cmd);
    (process::Running::new(child), addr)
}

/// The server's anonymous resident memory (heap, stacks; not its mapped binary, whose
/// pages come in as code runs for the first time), in KB.
fn rss_kb(p: &process::Running) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("RssAnon in /proc/PID/status")
}

/// Waits (≤ 5 s) for RSS to stop changing once a crowd has left (the server sees the
/// closes, shrinks its tables, trims the heap); returns the last reading.
fn settle(p: &process::Running) -> u64 {
    let start = Instant::now();
    let mut last = rss_kb(p);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = rss_kb(p);
        if now == last || start.elapsed() > Duration::from_secs(5) {
            return now;
        }
        last = now;
    }
}

/// A warm-up of 200 connections (what is allocated once — the 64 provided buffers,
/// stats histograms — is then in the baseline), then three rounds of `N` idle
/// connections made by `open`: per-connection growth while held under `per_conn_max`
/// bytes, and after each round RSS no higher than the first round's peak + `slack_kb`.
///
/// What is left once a crowd leaves is not a fixed figure: `malloc_trim` gives back
/// whole free pages, and how many of the freed connections' pages stay partly used
/// depends on where the few long-lived allocations landed (seen: 0.1–1.1 MB above the
/// baseline after the same round, on both backends). So the leak check is against the
/// high-water mark of round 0, under which freed memory is reused: `ferry serve`
/// leaking ≥ 300 B a connection would take round 2's leftover past it (3 × 2000 ×
/// 300 B against ~1 MB of peak growth + 512 KB).
fn rounds(
    p: &process::Running,
    what: &str,
    per_conn_max: u64,
    slack_kb: u64,
    open: impl Fn(usize) -> Vec<TcpStream>,
) {
    drop(open(200));
    std::thread::sleep(Duration::from_millis(500));
    let start = rss_kb(p);
    let mut peak0 = None;
    for round in 0..3 {
        let base = rss_kb(p);
        let held = open(N);
        std::thread::sleep(Duration::from_millis(500));
        let with = rss_kb(p);
        let per = with.saturating_sub(base) * 1024 / N as u64;
        println!("{what} round {round}: RSS {base} KB → {with} KB with {N} idle: {per} B each");
        assert!(
            per <= per_conn_max,
            "{what}: {per} B per idle connection (RSS {base} → {with} KB)"
        );
        let bound = *peak0.get_or_insert(with) + slack_kb;
        drop(held);
        let after = settle(p);
        println!("{what} round {round}: RSS {after} KB once they left (baseline {start} KB)");
        assert!(
            after <= bound,
            "{what}: RSS {after} KB after round {round} left, above round 0's peak \
             {} KB + {slack_kb} KB (baseline {start} KB): memory not reused",
            bound - slack_kb
        );
    }
}

#[test]
fn serve_holds_idle_keep_alive_connections_in_little_memory() {
    raise_own_limit();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), "idle\n").unwrap();
    let dir = root.path().display().to_string();
    let (p, addr) = start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--root",
        &dir,
    ]);
    rounds(&p, "serve", 4096, 512, |n| {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            held.push(s);
        }
        for s in &mut held {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"idle\n") {
                let n = s.read(&mut buf).expect("response");
                assert!(n > 0, "closed");
                got.extend_from_slice(&buf[..n]);
            }
        }
        held
    });
}

#[test]
fn proxy_holds_idle_pairs_in_little_memory() {
    raise_own_limit();
    // The backend answers each connection's first 4 bytes, keeps it open, and closes
    // it when the proxy ends it (polled: one thread for thousands of connections).
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let baddr = backend.local_addr().unwrap();
    backend.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut kept: Vec<TcpStream> = Vec::new();
        loop {
            let mut accepted = false;
            while let Ok((mut s, _)) = backend.accept() {
                accepted = true;
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut ping = [0u8; 4];
                if s.read_exact(&mut ping).is_ok() && s.write_all(&ping).is_ok() {
                    s.set_nonblocking(true).unwrap();
                    kept.push(s);
                }
            }
            let mut buf = [0u8; 64];
            kept.retain_mut(|s| !matches!(s.read(&mut buf), Ok(0)));
            if !accepted {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let b = baddr.to_string();
    let (p, addr) = start(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--backend",
        &b,
    ]);
    // A proxy keeps 2–5 MB more after a crowd of 2000 (tables indexed by fd number,
    // the allocator's fragments; a plateau, not a ratchet: docs/proxy.md, "Memory
    // per pair"). Before, 1000 idle pairs took 20 MB and kept it.
    rounds(&p, "proxy", 8192, 8192, |n| {
        (0..n)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"ping").unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut got = [0u8; 4];
                s.read_exact(&mut got).expect("echo");
                assert_eq!(&got, b"ping");
                s
            })
            .collect()
    });
}
