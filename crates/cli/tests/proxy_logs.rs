//! `ferry proxy`'s logs: the access log's line per connection (bytes each way, how each
//! side ended), the error log (start, stop, backends down and up, connect failures, one
//! line a second per kind with an exact count of what was held back), a backend retried
//! after its down mark, and SIGUSR1 reopening both logs — real sockets, real files.

#[path = "proxy/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{dead_addr, pattern, read_all, reset_on_close, Backend, ProxyProc};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits (≤ 10 s) until `path` has a line containing every one of `needles`; the line.
fn wait_line(path: &Path, needles: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let text = read(path);
        if let Some(l) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return l.to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no line with {needles:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(proxy: &ProxyProc, sig: &str) {
    let pid = proxy.proc.child.id().to_string();
    assert!(Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success());
}

/// `data` through the proxy and back (the backend echoes), byte for byte.
fn echo_through(proxy: &ProxyProc, data: &[u8]) -> SocketAddr {
    let mut c = proxy.connect();
    let local = c.local_addr().unwrap();
    c.write_all(data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let (back, err) = read_all(&mut c);
    assert!(
        err.is_none() && back == data,
        "echo of {} bytes: {err:?}, {} back",
        data.len(),
        back.len()
    );
    local
}

#[test]
fn the_access_log_says_bytes_and_how_each_side_ended() {
    let dir = tempfile::tempdir().unwrap();
    let (access, errors) = (dir.path().join("access.log"), dir.path().join("error.log"));
    let backend = Backend::echo();
    let proxy = ProxyProc::start(
        &[backend.addr],
        &[
            "--access-log",
            access.to_str().unwrap(),
            "--error-log",
            errors.to_str().unwrap(),
            "--idle-timeout",
            "1",
            "--grace",
            "1",
        ],
    );
    wait_line(&errors, &["notice: started: ferry proxy: listening on"]);
    let be = backend.addr.to_string();

    // Both sides end cleanly: the bytes each way.
    let clean = echo_through(&proxy, &pattern(70_000, 1)).to_string();
    let line = wait_line(&access, &[&format!(" {clean} -> {be} ")]);
    assert!(
        line.contains(" c2s=70000 s2c=70000 ") && line.ends_with(" client=FIN server=FIN"),
        "{line}"
    );

    // The client resets.
    let mut c = proxy.connect();
    let rst = c.local_addr().unwrap().to_string();
    c.write_all(b"ping").unwrap();
    let mut four = [0u8; 4];
    c.read_exact(&mut four).unwrap();
    reset_on_close(&c);
    drop(c);
    let line = wait_line(&access, &[&format!(" {rst} -> ")]);
    assert!(
        line.contains(" c2s=4 s2c=4 ") && line.ends_with(" client=RST server=CUT"),
        "{line}"
    );

    // Nothing moves for the idle timeout.
    let c = proxy.connect();
    let idle = c.local_addr().unwrap().to_string();
    let line = wait_line(&access, &[&format!(" {idle} -> ")]);
    assert!(line.ends_with(" client=IDLE server=IDLE"), "{line}");
    let lived: f64 = line
        .split_whitespace()
        .find(|f| f.ends_with('s') && f.contains('.'))
        .and_then(|f| f.trim_end_matches('s').parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line}"));
    assert!(
        (0.9..5.0).contains(&lived),
        "an idle pair lived {lived} s: {line}"
    );
    drop(c);

    // SIGUSR1 after the logs were moved away: the next lines go to new files.
    let moved = dir.path().join("access.log.1");
    std::fs::rename(&access, &moved).unwrap();
    std::fs::rename(&errors, dir.path().join("error.log.1")).unwrap();
    signal(&proxy, "-USR1");
    wait_line(
        &dir.path().join("error.log.1"),
        &["SIGUSR1: reopening log files"],
    );
    let after = echo_through(&proxy, b"after the move").to_string();
    wait_line(&access, &[&format!(" {after} -> {be} c2s=14 s2c=14 ")]);
    assert!(
        !read(&moved).contains(&after),
        "a line after the reopen went to the old file"
    );

    // Still open at a stop: cut at the end of the grace.
    let mut held = proxy.connect();
    held.write_all(b"x").unwrap();
    held.read_exact(&mut [0u8; 1]).unwrap();
    let cut = held.local_addr().unwrap().to_string();
    let mut proxy = proxy;
    // The idle timeout (1 s) would close it too: keep it moving through the grace.
    let keep = std::thread::spawn(move || {
        for _ in 0..40 {
            if held.write_all(b"y").is_err() || held.read(&mut [0u8; 1]).map_or(true, |n| n == 0) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    assert!(proxy.proc.stop(Duration::from_secs(10)).success());
    keep.join().unwrap();
    let line = wait_line(&access, &[&format!(" {cut} -> ")]);
    assert!(line.ends_with(" client=GRACE server=GRACE"), "{line}");
    let log = read(&errors);
    for said in ["SIGTERM: stopping", "notice: stopped"] {
        assert!(
            log.contains(said),
            "the error log does not say {said:?}:\n{log}"
        );
    }
}

#[test]
fn a_backend_down_is_said_once_and_retried_after_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("error.log");
    let live = Backend::echo();
    let down = dead_addr();
    let proxy = ProxyProc::start(
        &[down, live.addr],
        &["--threads", "2", "--error-log", errors.to_str().unwrap()],
    );
    for i in 0..6 {
        echo_through(&proxy, &pattern(1000, i));
    }
    let line = wait_line(&errors, &[&format!("warn: backend {down} down: ")]);
    assert!(line.contains("refused"), "{line}");
    // Both threads met it down; the state is shared, so it went down once.
    let downs = read(&errors)
        .matches(&format!("backend {down} down"))
        .count();
    assert_eq!(downs, 1, "{}", read(&errors));

    // The backend comes back; after its mark (2 s) clients reach it again.
    let back = TcpListener::bind(down).expect("rebind the dead backend's port");
    let served = std::thread::spawn(move || {
        let (mut c, _) = back.accept().unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        c.write_all(&got).unwrap();
        got.len()
    });
    std::thread::sleep(Duration::from_millis(2100));
    let start = Instant::now();
    while !served.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the backend that came back got no client"
        );
        echo_through(&proxy, b"which one?");
    }
    assert_eq!(served.join().unwrap(), 10);
    wait_line(&errors, &[&format!("notice: backend {down} up (was down ")]);
}

#[test]
fn a_storm_of_connect_failures_is_one_line_a_second_with_an_exact_count() {
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("error.log");
    let down = dead_addr();
    let mut proxy = ProxyProc::start(&[down], &["--error-log", errors.to_str().unwrap()]);
    const CLIENTS: usize = 60;
    let start = Instant::now();
    for _ in 0..CLIENTS {
        let mut c = proxy.connect();
        let (got, _) = read_all(&mut c);
        assert!(got.is_empty());
    }
    let storm = start.elapsed();
    assert!(proxy.proc.stop(Duration::from_secs(10)).success());
    let log = read(&errors);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connect to backend"))
        .collect();
    // Every failure is counted: written, or held back and counted in a later line.
    let counted: usize = lines
        .iter()
        .map(|l| {
            1 + l.rsplit_once("[+").map_or(0, |(_, n)| {
                n.trim_end_matches(" suppressed]").parse::<usize>().unwrap()
            })
        })
        .sum();
    assert_eq!(counted, CLIENTS, "{log}");
    // At most one a second, plus the one written when the storm began and the last one
    // held back, written at the stop.
    let most = storm.as_secs() as usize + 2;
    assert!(
        lines.len() <= most,
        "{} lines in {storm:?}:\n{log}",
        lines.len()
    );
    assert!(lines.len() < CLIENTS / 2, "not rate-limited:\n{log}");
}
