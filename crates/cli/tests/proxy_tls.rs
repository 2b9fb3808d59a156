//! `ferry proxy --tls-cert --tls-key`: TLS from clients, plain TCP to backends. Bytes
//! both ways byte for byte (a rustls client; curl), half-close and `close_notify` each
//! way, resets passed on, and what a bad client gets: a plain request, garbage, a
//! stalled handshake. Where the kernel has TLS (the VM pass, scripts/test-ktls.sh) the
//! same tests run over kernel TLS, and one checks the kernel carried the records; here
//! that one says it skipped. Runs on whatever backend FERRY_BACKEND says.

#[path = "proxy/harness.rs"]
mod harness;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{pattern, read_all, reset_on_close, upload_download, Backend, ProxyProc};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

#[path = "support/tls.rs"]
mod tls;

use tls::{tls_stat, Cert, Strace};

/// A proxy terminating TLS with `cert`, in front of `backend`.
fn proxy(cert: &Cert, backend: SocketAddr, extra: &[&str]) -> ProxyProc {
    proxy_env(cert, backend, extra, &[])
}

fn proxy_env(cert: &Cert, backend: SocketAddr, extra: &[&str], env: &[(&str, &str)]) -> ProxyProc {
    let flags = cert.flags(extra);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let p = ProxyProc::start_env(&[backend], &flags, env);
    assert!(p.banner.contains("TLS 1.3/1.2"), "{}", p.banner);
    p
}

/// A client config for TLS 1.2 only, or 1.3 only.
fn client(cert: &Cert, tls12: bool) -> Arc<ClientConfig> {
    if tls12 {
        cert.client_for(&[&rustls::version::TLS12])
    } else {
        cert.client_for(&[&rustls::version::TLS13])
    }
}

/// How the client's stream from the proxy ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// `close_notify`, then the end.
    CloseNotify,
    /// A FIN without `close_notify`.
    Truncated,
    /// A reset, or a TLS error.
    Failed(String),
}

/// A TLS client on a non-blocking socket: sends `up` (then `close_notify` and a FIN
/// when `close`), receives until the proxy's stream ends, both at once. The proxy may
/// end its side before the client has sent anything (TLS 1.2: its `Finished` and a
/// `close_notify` in one read): what the client has to send still goes out.
fn exchange(
    proxy: &ProxyProc,
    config: &Arc<ClientConfig>,
    up: &[u8],
    close: bool,
) -> (Vec<u8>, Ending) {
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = ClientConnection::new(config.clone(), name).unwrap();
    let mut sock = proxy.connect();
    sock.set_nonblocking(true).unwrap();
    let (mut off, mut closed, mut got) = (0usize, false, Vec::new());
    let mut ending: Option<Ending> = None;
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "no end after 60 s ({} bytes back)",
            got.len()
        );
        let mut moved = false;
        if !tls.is_handshaking() && off < up.len() {
            let end = (off + (1 << 16)).min(up.len());
            off += tls.writer().write(&up[off..end]).unwrap();
        }
        if !tls.is_handshaking() && off == up.len() && close && !closed {
            tls.send_close_notify();
            closed = true;
        }
        while tls.wants_write() {
            match tls.write_tls(&mut sock) {
                Ok(_) => moved = true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return (got, Ending::Failed(format!("send: {e}"))),
            }
        }
        if closed && !tls.wants_write() {
            let _ = sock.shutdown(Shutdown::Write);
        }
        if let Some(end) = ending.take() {
            let sent_all = off == up.len() && !tls.wants_write() && (closed || !close);
            if sent_all || matches!(end, Ending::Failed(_)) {
                return (got, end);
            }
            ending = Some(end);
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        match tls.read_tls(&mut sock) {
            Ok(0) => {
                // The stream's end: what rustls says of it.
                ending = Some(match tls.process_new_packets() {
                    Err(e) => Ending::Failed(format!("tls: {e}")),
                    Ok(_) => match tls.reader().read_to_end(&mut got) {
                        Ok(_) => Ending::CloseNotify,
                        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ending::Truncated,
                        Err(e) => Ending::Failed(format!("read: {e}")),
                    },
                });
            }
            Ok(_) => {
                moved = true;
                if let Err(e) = tls.process_new_packets() {
                    return (got, Ending::Failed(format!("tls: {e}")));
                }
                loop {
                    match tls.reader().read(&mut buf) {
                        Ok(0) => {
                            ending = Some(Ending::CloseNotify);
                            break;
                        }
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(_) => break,
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return (got, Ending::Failed(format!("recv: {e}"))),
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn both_directions_arrive_byte_exact_over_tls_1_3_and_1_2() {
    let cert = Cert::new();
    for tls12 in [false, true] {
        let config = client(&cert, tls12);
        for (up, down) in [
            (0, 0),
            (1, 0),
            (0, 1),
            (100_000, 3_000_000),
            (5 << 20, 2 << 20),
        ] {
            let got = Arc::new(Mutex::new(Vec::new()));
            let backend = upload_download(down, got.clone());
            let proxy = proxy(&cert, backend.addr, &[]);
            let (back, end) = exchange(&proxy, &config, &pattern(up, 3), true);
            let case = format!("tls12={tls12} up={up} down={down}");
            assert_eq!(end, Ending::CloseNotify, "{case}");
            assert!(
                back == pattern(down, 7),
                "{case}: {} bytes back differ",
                back.len()
            );
            let sent = wait_for("the backend's read", || got.lock().unwrap().pop());
            assert!(
                sent == pattern(up, 3),
                "{case}: {} bytes up differ",
                sent.len()
            );
        }
    }
}

#[test]
fn the_clients_close_notify_half_closes_and_the_answer_still_arrives() {
    // The backend answers only after the client's end: the reversed request.
    let backend = Backend::start(|mut c| {
        let (req, _) = read_all(&mut c);
        let back: Vec<u8> = req.iter().rev().copied().collect();
        c.write_all(&back).unwrap();
    });
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &[]);
    let req = pattern(300_000, 9);
    let (back, end) = exchange(&proxy, &client(&cert, false), &req, true);
    assert_eq!(end, Ending::CloseNotify);
    assert!(
        back.iter().rev().eq(req.iter()),
        "{} bytes back",
        back.len()
    );
}

#[test]
fn curl_fetches_through_the_tls_proxy_byte_exact() {
    let body = pattern(1 << 20, 5);
    let served = body.clone();
    // A one-request HTTP/1.1 backend.
    let backend = Backend::start(move |mut c| {
        let mut req = Vec::new();
        let mut b = [0u8; 4096];
        while !req.ends_with(b"\r\n\r\n") {
            match c.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&b[..n]),
            }
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            served.len()
        );
        let _ = c.write_all(head.as_bytes());
        let _ = c.write_all(&served);
    });
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &[]);
    let url = format!("https://localhost:{}/x", proxy.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", proxy.addr.port());
    let ca = cert.path("cert.pem");
    for version in ["--tlsv1.3", "--tlsv1.2"] {
        let mut args = vec![
            "-sS",
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            &resolve,
        ];
        args.push(version);
        if version == "--tlsv1.2" {
            args.extend(["--tls-max", "1.2"]);
        }
        args.push(&url);
        let Ok(out) = Command::new("curl").args(&args).output() else {
            panic!("curl is not installed: run scripts/install-test-deps.sh");
        };
        assert!(
            out.status.success(),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == body,
            "{version}: {} bytes differ",
            out.stdout.len()
        );
    }
}

/// A backend that counts its connections and holds them until the client goes.
fn counting() -> (Backend, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    let backend = Backend::start(move |mut c| {
        seen.fetch_add(1, Ordering::SeqCst);
        let _ = read_all(&mut c);
    });
    (backend, n)
}

#[test]
fn a_plain_request_on_the_tls_port_gets_an_alert_and_no_backend() {
    let (backend, connects) = counting();
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &[]);
    let mut c = proxy.connect();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (back, err) = read_all(&mut c);
    assert!(
        err.is_none() || err == Some(ErrorKind::ConnectionReset),
        "{err:?}"
    );
    // An alert record (type 21), if anything, then the close.
    assert!(back.is_empty() || back[0] == 21, "{back:?}");
    assert_eq!(
        connects.load(Ordering::SeqCst),
        0,
        "a backend was connected"
    );
}

#[test]
fn garbage_and_a_stalled_handshake_are_cut() {
    let (backend, connects) = counting();
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &["--handshake-timeout", "0.5"]);
    let base = proxy.sockets();
    // Garbage: closed at once.
    let mut c = proxy.connect();
    c.write_all(&[0xff; 64]).unwrap();
    let start = Instant::now();
    let _ = read_all(&mut c);
    assert!(start.elapsed() < Duration::from_secs(5));
    // Half a record header, then nothing: cut after the handshake timeout.
    let mut c = proxy.connect();
    c.write_all(&[22, 3, 1]).unwrap();
    let start = Instant::now();
    let (_, _) = read_all(&mut c);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "cut after {took:?}"
    );
    assert_eq!(
        connects.load(Ordering::SeqCst),
        0,
        "a backend was connected"
    );
    // Nothing kept of either client.
    proxy.wait_sockets(base, Duration::from_secs(5));
}

#[test]
fn a_backend_reset_reaches_the_client_as_a_failure_not_an_end() {
    let backend = Backend::start(|mut c| {
        let mut b = [0u8; 4];
        let _ = c.read_exact(&mut b);
        let _ = c.write_all(&pattern(50_000, 1));
        reset_on_close(&c);
    });
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &[]);
    let (_, end) = exchange(&proxy, &client(&cert, false), b"ping", false);
    assert!(matches!(end, Ending::Failed(_)), "{end:?}");
}

#[test]
fn a_backend_that_ends_gives_the_client_close_notify_and_waits_for_its_end() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let backend = upload_download(10_000, got.clone());
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &[]);
    // The client sends nothing and does not end: it still gets all, then close_notify.
    let (back, end) = exchange(&proxy, &client(&cert, false), b"", false);
    assert_eq!(end, Ending::CloseNotify);
    assert!(back == pattern(10_000, 7));
}

#[test]
fn an_idle_tls_pair_is_closed_after_the_idle_timeout() {
    let backend = Backend::echo();
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &["--idle-timeout", "1"]);
    let base = proxy.sockets();
    let start = Instant::now();
    let (back, end) = exchange(&proxy, &client(&cert, false), b"hello", false);
    let took = start.elapsed();
    assert_eq!(back, b"hello");
    assert!(end != Ending::CloseNotify, "{end:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    proxy.wait_sockets(base, Duration::from_secs(5));
}

/// Whether `proxy` hands its records to the kernel; says so loudly when not.
fn kernel_tls_or_skip(proxy: &ProxyProc, test: &str) -> bool {
    if proxy.banner.contains("records by the kernel") {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: no kernel TLS here ({}); scripts/test-ktls.sh runs it in a kernel \
         with the tls module",
        proxy.banner.trim()
    );
    false
}

/// 3 MiB each way through `proxy` (in front of an `upload_download(3 MiB)` backend
/// that records into `got`), both ends checked byte for byte.
fn three_mib_each_way(proxy: &ProxyProc, cert: &Cert, got: &Mutex<Vec<Vec<u8>>>) {
    let (back, end) = exchange(proxy, &client(cert, false), &pattern(3 << 20, 3), true);
    assert_eq!(end, Ending::CloseNotify);
    assert!(
        back == pattern(3 << 20, 7),
        "{} bytes back differ",
        back.len()
    );
    let sent = wait_for("the backend's read", || got.lock().unwrap().pop());
    assert!(
        sent == pattern(3 << 20, 3),
        "{} bytes up differ",
        sent.len()
    );
}

#[test]
fn kernel_tls_carries_the_records_both_ways() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let backend = upload_download(3 << 20, got.clone());
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &[]);
    if !kernel_tls_or_skip(&proxy, "kernel_tls_carries_the_records_both_ways") {
        return;
    }
    let (tx, rx) = (tls_stat("TlsTxSw"), tls_stat("TlsRxSw"));
    three_mib_each_way(&proxy, &cert, &got);
    assert!(
        tls_stat("TlsTxSw") > tx && tls_stat("TlsRxSw") > rx,
        "the kernel's counters did not move"
    );
}

#[test]
fn a_key_update_is_followed_in_user_space_and_ends_a_kernel_tls_pair() {
    let backend = Backend::echo();
    let cert = Cert::new();
    let proxy = proxy(&cert, backend.addr, &[]);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(client(&cert, false), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, proxy.connect());
    let mut got = [0u8; 3];
    s.write_all(b"one").unwrap();
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"one");
    // A key update that asks the proxy to update its own keys too.
    s.conn.refresh_traffic_keys().unwrap();
    s.write_all(b"two").unwrap();
    if proxy.banner.contains("records by the kernel") {
        // This kernel's TLS receive side does not follow a key update (6.14 does): the
        // pair ends, never passing on bytes read with the wrong keys, never hanging.
        let t0 = Instant::now();
        let r = s.read(&mut got);
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "echoed after a key update: {r:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
    } else {
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"two");
        // Many records after it, both ways, under the new keys.
        let big = pattern(256 << 10, 4);
        s.write_all(&big).unwrap();
        let mut back = vec![0u8; big.len()];
        s.read_exact(&mut back).unwrap();
        assert!(back == big);
    }
}

#[test]
fn kernel_tls_payload_is_spliced_never_read_into_user_space() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let backend = upload_download(3 << 20, got.clone());
    let cert = Cert::new();
    // The syscall executor (epoll readiness loop): what moves the bytes is visible to
    // strace. The io_uring executor runs the same plans.
    let env = [("FERRY_BACKEND", "blocking")];
    let proxy = proxy_env(&cert, backend.addr, &["--threads", "1"], &env);
    let test = "kernel_tls_payload_is_spliced_never_read_into_user_space";
    if !kernel_tls_or_skip(&proxy, test) {
        return;
    }
    let calls = ["read", "readv", "recvfrom", "recvmsg", "splice"];
    let strace = Strace::attach(proxy.proc.child.id(), &calls.join(","));
    three_mib_each_way(&proxy, &cert, &got);
    let trace = strace.finish();
    let summary = trace.summary(&calls);
    // What user space read: the handshake, and the record the client sent right behind
    // its Finished (opened by rustls: the kernel takes over at the next record) — at
    // most 16 KiB of payload — and the close_notify record.
    let read: u64 = calls[..4].iter().map(|c| trace.bytes(c)).sum();
    assert!(
        read < 24 << 10,
        "{read} bytes read into user space: {summary}"
    );
    // The rest of each byte twice (socket → pipe → socket), each way.
    assert!(
        trace.bytes("splice") + 2 * read >= 2 * 2 * (3 << 20),
        "payload by splice: {summary}"
    );
}
