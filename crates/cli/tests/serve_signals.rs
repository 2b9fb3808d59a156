//! `ferry serve` and the signals an nginx operator sends: SIGUSR1 (logrotate's habit)
//! and SIGHUP reopen the access and error logs, SIGUSR2 does nothing — none of them cuts a response
//! in flight; SIGQUIT stops gracefully like SIGTERM; a second SIGTERM during the grace
//! stops at once. Each runs the backend `FERRY_BACKEND` says.
#![cfg(target_os = "linux")]

#[path = "serve/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use server::{pattern, read_response, read_to_close, Server};

const BIG: usize = 32 << 20;

fn site(root: &Path) {
    std::fs::write(root.join("small.txt"), "small\n").unwrap();
    std::fs::write(root.join("big.bin"), pattern(BIG, 7)).unwrap();
}

fn signal(srv: &Server, sig: &str) {
    srv.signal(sig);
}

fn alive(srv: &mut Server) -> bool {
    srv.proc.child.try_wait().unwrap().is_none()
}

/// A download of big.bin with its first MiB read; the rest is in flight.
fn start_download(srv: &Server) -> (TcpStream, Vec<u8>) {
    let mut s = srv.connect();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut first = vec![0u8; 1 << 20];
    s.read_exact(&mut first).unwrap();
    (s, first)
}

/// Reads the download to its end: the whole body arrived, byte for byte.
fn finish_download(mut s: TcpStream, mut got: Vec<u8>) {
    got.extend(read_to_close(&mut s));
    let start = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(got.len() - start, BIG, "the body was cut");
    assert!(got[start..] == pattern(BIG, 7)[..], "the body differs");
}

fn get(srv: &Server, path: &str) {
    let r = srv.get(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(r.status, 404, "{path}"); // any answer is logged; 404s need no files
}

/// Waits (≤ 3 s) until `file` holds a line with `needle`.
fn logged(file: &Path, needle: &str) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        if std::fs::read_to_string(file).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn usr1_and_hup_reopen_the_logs_and_no_signal_cuts_a_response() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("access.log");
    let errors = logs.path().join("error.log");
    let mut srv = Server::start(
        site,
        &[
            "--access-log",
            log.to_str().unwrap(),
            "--error-log",
            errors.to_str().unwrap(),
        ],
    );
    assert!(logged(
        &errors,
        "notice: started: ferry serve: listening on http://"
    ));
    let (download, first) = start_download(&srv);

    get(&srv, "/before-rotation");
    assert!(logged(&log, "/before-rotation"));
    for (sig, rotated, after) in [
        ("USR1", "access.log.1", "/after-usr1"),
        ("HUP", "access.log.2", "/after-hup"),
    ] {
        std::fs::rename(&log, logs.path().join(rotated)).unwrap();
        let errors_rotated = logs.path().join(format!("error.{rotated}"));
        std::fs::rename(&errors, &errors_rotated).unwrap();
        signal(&srv, sig);
        // Said in the file in use when the signal came, which is then reopened.
        assert!(
            logged(&errors_rotated, &format!("SIG{sig}: reopening log files")),
            "SIG{sig}: not said in the error log"
        );
        std::thread::sleep(Duration::from_millis(600));
        assert!(alive(&mut srv), "SIG{sig} killed the server");
        get(&srv, after);
        assert!(
            logged(&log, after),
            "SIG{sig}: no new access.log with {after}"
        );
        let old = std::fs::read_to_string(logs.path().join(rotated)).unwrap();
        assert!(
            !old.contains(after),
            "SIG{sig}: {after} went to the rotated file"
        );
    }
    signal(&srv, "USR2");
    // Signals are one kind of line, one a second: this one may wait out the second.
    assert!(
        logged(&errors, "SIGUSR2: nothing to do (ignored)"),
        "SIGUSR2 not said in the reopened error log"
    );
    assert!(alive(&mut srv), "SIGUSR2 killed the server");
    assert_eq!(
        srv.get("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n").body,
        b"small\n"
    );
    finish_download(download, first);
}

#[test]
fn sigquit_stops_gracefully() {
    let srv = Server::start(site, &["--grace", "20"]);
    let (download, first) = start_download(&srv);
    let mut idle = srv.connect();
    idle.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_response(&mut idle, false);
    signal(&srv, "QUIT");
    finish_download(download, first);
    let mut srv = srv;
    let status = srv.proc.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(read_to_close(&mut idle).is_empty());
}

#[test]
fn a_second_sigterm_during_the_grace_stops_at_once() {
    let mut srv = Server::start(site, &["--grace", "60"]);
    // A download nobody reads keeps the first stop waiting for the whole grace.
    let (_stalled, _) = start_download(&srv);
    signal(&srv, "TERM");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        alive(&mut srv),
        "the first SIGTERM did not wait for the response in flight"
    );
    signal(&srv, "TERM");
    // wait_exit fails the test when the server is still running 3 s later.
    let status = srv.proc.wait_exit(Duration::from_secs(3));
    assert!(status.success(), "{status:?}");
}
