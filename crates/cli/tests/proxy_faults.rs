//! `ferry proxy` under faults: aborts on either side, dead backends, churn, idle pairs,
//! slow readers, connection limits — with the proxy's sockets and CPU watched.

#[path = "proxy/harness.rs"]
mod harness;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::{dead_addr, pattern, read_all, reset_on_close, Backend, ProxyProc};

#[test]
fn a_client_abort_mid_download_closes_the_backend_side_and_frees_everything() {
    let (tx, rx) = mpsc::channel();
    let backend = Backend::start(move |mut c| {
        let chunk = pattern(1 << 20, 1);
        let mut sent = 0u64;
        let r = loop {
            if sent >= 200 << 20 {
                break Ok(());
            }
            match c.write_all(&chunk) {
                Ok(()) => sent += chunk.len() as u64,
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send((r.map_err(|e| e.kind()), Instant::now()));
    });
    let proxy = ProxyProc::start(&[backend.addr], &[]);
    let baseline = proxy.sockets();
    let mut c = proxy.connect();
    let mut some = vec![0u8; 4 << 20];
    c.read_exact(&mut some).unwrap();
    reset_on_close(&c);
    let aborted = Instant::now();
    drop(c);
    let (result, at) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("backend writer ended");
    assert!(result.is_err(), "the backend wrote all 200 MiB to nobody");
    assert!(
        at.duration_since(aborted) < Duration::from_secs(2),
        "backend side closed after {:?}",
        at - aborted
    );
    proxy.wait_sockets(baseline, Duration::from_secs(5));
    // No spin afterwards: the idle proxy uses (almost) no CPU.
    let before = proxy.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = proxy.cpu_ticks() - before;
    assert!(used <= 10, "idle proxy used {used} ticks in 1 s");
}

#[test]
fn a_backend_abort_reaches_the_client_as_a_reset_within_2_s() {
    let backend = Backend::start(|mut c| {
        c.write_all(&pattern(100_000, 2)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        reset_on_close(&c);
    });
    let proxy = ProxyProc::start(&[backend.addr], &[]);
    let mut c = proxy.connect();
    c.write_all(b"go").unwrap();
    let start = Instant::now();
    let (got, err) = read_all(&mut c);
    assert!(
        start.elapsed() < Duration::from_secs(2) + Duration::from_millis(200),
        "took {:?}, got {} bytes, {err:?}",
        start.elapsed(),
        got.len()
    );
    assert!(got.len() <= 100_000);
    assert_eq!(
        err,
        Some(ErrorKind::ConnectionReset),
        "a truncated stream must not look complete ({} bytes)",
        got.len()
    );
}

#[test]
fn all_backends_down_closes_the_client_within_2_s() {
    let proxy = ProxyProc::start(&[dead_addr(), dead_addr()], &[]);
    for _ in 0..3 {
        let mut c = proxy.connect();
        let start = Instant::now();
        let (got, _) = read_all(&mut c);
        assert!(got.is_empty());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "closed after {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn a_thousand_connect_close_cycles_leave_no_socket_behind() {
    let backend = Backend::echo();
    let proxy = ProxyProc::start(&[backend.addr], &[]);
    let baseline = proxy.sockets();
    for i in 0..1000 {
        let mut c = proxy.connect();
        if i % 2 == 0 {
            c.write_all(b"x").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            assert_eq!(read_all(&mut c).0, b"x");
        }
    }
    proxy.wait_sockets(baseline, Duration::from_secs(5));
}

#[test]
fn idle_pairs_are_closed_after_the_idle_timeout() {
    let backend = Backend::echo();
    let proxy = ProxyProc::start(&[backend.addr], &["--idle-timeout", "1"]);
    let mut c = proxy.connect();
    c.write_all(b"hi").unwrap();
    let mut two = [0u8; 2];
    c.read_exact(&mut two).unwrap();
    let start = Instant::now();
    let (_, _) = read_all(&mut c);
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(4),
        "closed after {idle:?}"
    );
}

#[test]
fn a_slow_reader_does_not_stall_other_pairs() {
    let backend = Backend::start(|mut c| {
        let mut cmd = [0u8; 1];
        if c.read_exact(&mut cmd).is_err() {
            return;
        }
        let size = if cmd[0] == b'B' { 64 << 20 } else { 1000 };
        let _ = c.write_all(&pattern(size, 5));
        let _ = c.shutdown(Shutdown::Write);
    });
    let proxy = ProxyProc::start(&[backend.addr], &["--threads", "1"]);
    let mut slow = proxy.connect();
    slow.write_all(b"B").unwrap(); // 64 MiB that nobody reads for now
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    for _ in 0..20 {
        let mut c = proxy.connect();
        c.write_all(b"s").unwrap();
        assert_eq!(read_all(&mut c).0, pattern(1000, 5));
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "small pairs took {:?}",
        start.elapsed()
    );
    drop(slow);
}

#[test]
fn connections_past_the_limit_are_closed_at_once() {
    let backend = Backend::echo();
    let proxy = ProxyProc::start(
        &[backend.addr],
        &["--threads", "1", "--max-connections", "3"],
    );
    let held: Vec<_> = (0..3)
        .map(|_| {
            let mut c = proxy.connect();
            c.write_all(b"1").unwrap();
            let mut one = [0u8; 1];
            c.read_exact(&mut one).unwrap();
            c
        })
        .collect();
    let mut extra = proxy.connect();
    let start = Instant::now();
    let (got, _) = read_all(&mut extra);
    assert!(got.is_empty() && start.elapsed() < Duration::from_secs(2));
    drop(held);
}

#[test]
fn a_proxy_pointed_at_itself_is_refused_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (listen, backend) in [
        (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
        (format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}")),
        (format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["proxy", "--listen", &listen, "--backend", "127.0.0.1:9"])
            .args(["--backend", &backend])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t0.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                panic!("{listen} → {backend}: the proxy started and runs");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{listen} → {backend} started");
        assert!(
            err.contains(&format!("--backend {backend}")) && err.contains("own --listen"),
            "{err}"
        );
        assert!(
            out.stdout.is_empty(),
            "it printed a ready line: {:?}",
            out.stdout
        );
    }
}
