//! `ferry serve --tls-cert --tls-key`: HTTPS byte for byte (curl, and a rustls client
//! for keep-alive, pipelining, HEAD and ranges), session resumption, and what a bad
//! client gets: a plain HTTP request, garbage, a handshake that stalls, a name the
//! certificate does not cover. Certificates are made at test time. Runs on whatever
//! backend FERRY_BACKEND says (the suite runs both).

#[path = "serve/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use server::{pattern, read_response, read_to_close, Server};

const FILES: [(&str, usize); 7] = [
    ("empty.bin", 0),
    ("one.bin", 1),
    ("4k.bin", 4096),
    ("16k.bin", 16384),
    ("64k.bin", 65536),
    ("100k.bin", 100_000),
    ("3m.bin", 3 << 20),
];

fn site(root: &Path) {
    for (name, len) in FILES {
        std::fs::write(root.join(name), pattern(len, len as u32)).unwrap();
    }
}

#[path = "support/tls.rs"]
mod tls;

use tls::{tls_stat, Cert, Strace};

/// A server with HTTPS on `cert`.
fn start(cert: &Cert, extra: &[&str]) -> Server {
    start_env(cert, extra, &[])
}

fn start_env(cert: &Cert, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let flags = cert.flags(extra);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let srv = Server::start_env(site, &flags, env);
    assert!(srv.banner.contains("https://"), "{}", srv.banner);
    srv
}

fn tls_connect(
    srv: &Server,
    config: &Arc<ClientConfig>,
    name: &str,
) -> StreamOwned<ClientConnection, TcpStream> {
    let conn = ClientConnection::new(
        config.clone(),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    StreamOwned::new(conn, srv.connect())
}

fn curl(args: &[&str]) -> std::process::Output {
    let Ok(out) = Command::new("curl").args(args).output() else {
        panic!("curl is not installed: run scripts/install-test-deps.sh");
    };
    out
}

#[test]
fn curl_gets_every_size_byte_exact_over_tls_1_3_and_1_2() {
    let cert = Cert::new();
    let srv = start(&cert, &[]);
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr.port());
    let ca = cert.path("cert.pem");
    for versions in [&["--tlsv1.3"][..], &["--tlsv1.2", "--tls-max", "1.2"]] {
        for (name, len) in FILES {
            let url = format!("https://localhost:{}/{name}", srv.addr.port());
            let mut args = vec!["-sS", "--fail", "--cacert", ca.to_str().unwrap()];
            args.extend_from_slice(&["--resolve", &resolve, &url]);
            args.extend_from_slice(versions);
            let out = curl(&args);
            assert!(
                out.status.success(),
                "{versions:?} {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stdout == pattern(len, len as u32),
                "{versions:?} {name}: bytes differ"
            );
        }
    }
    // A range and a second request on the same connection.
    let url = format!("https://localhost:{}/3m.bin", srv.addr.port());
    let out = curl(&[
        "-sS",
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-r",
        "100-199",
        &url,
    ]);
    assert_eq!(out.stdout, pattern(3 << 20, 3 << 20)[100..200]);
}

#[test]
fn keep_alive_pipelining_head_and_ranges_over_one_tls_connection() {
    let cert = Cert::new();
    let srv = start(&cert, &[]);
    let mut s = tls_connect(&srv, &cert.client_for(&[]), "localhost");
    // Three requests in one write: answered in order, on one connection.
    s.write_all(
        b"GET /100k.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /3m.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /4k.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, false);
    assert_eq!((r.status, r.body == pattern(100_000, 100_000)), (200, true));
    let r = read_response(&mut s, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("3145728"));
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, pattern(4096, 4096)[10..20]);
    // And again after the pipeline: the connection stays usable.
    s.write_all(b"GET /3m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    assert!(r.body == pattern(3 << 20, 3 << 20));
    assert_eq!(s.conn.alpn_protocol(), None, "no ALPN asked, none given");
}

#[test]
fn a_connection_close_answer_ends_with_close_notify() {
    // In user space and over kernel TLS alike: the client can tell the end of the
    // answer from a truncation.
    let cert = Cert::new();
    let srv = start(&cert, &[]);
    let mut s = tls_connect(&srv, &cert.client_for(&[]), "localhost");
    s.write_all(b"GET /64k.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    assert!(r.body == pattern(65536, 65536));
    let mut rest = Vec::new();
    // rustls: Ok at close_notify, UnexpectedEof at a FIN without it.
    let end = s.read_to_end(&mut rest);
    assert!(end.is_ok(), "{end:?} ({})", srv.banner.trim());
    assert!(rest.is_empty());
}

#[test]
fn a_session_ticket_resumes_the_next_connection() {
    let cert = Cert::new();
    let srv = start(&cert, &[]);
    let config = cert.client_for(&[]);
    for round in 0..2 {
        let mut s = tls_connect(&srv, &config, "localhost");
        s.write_all(b"GET /one.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, false);
        assert_eq!(r.body, pattern(1, 1));
        let kind = s.conn.handshake_kind();
        let want = if round == 0 {
            rustls::HandshakeKind::Full
        } else {
            rustls::HandshakeKind::Resumed
        };
        assert_eq!(kind, Some(want), "round {round}");
    }
}

#[test]
fn a_plain_http_request_on_the_tls_port_gets_an_alert_and_a_close() {
    let cert = Cert::new();
    let srv = start(&cert, &[]);
    let mut s = srv.connect();
    let t0 = Instant::now();
    s.write_all(b"GET /one.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let got = read_to_close(&mut s);
    assert!(t0.elapsed() < Duration::from_secs(5), "no hang");
    // A TLS alert record (content type 21), never an HTTP answer in the clear.
    assert!(
        got.is_empty() || got[0] == 21,
        "{:?}",
        &got[..got.len().min(16)]
    );
    assert!(!got.windows(4).any(|w| w == b"HTTP"));
}

#[test]
fn garbage_and_a_stalled_handshake_are_cut() {
    let cert = Cert::new();
    // 2 s: the last check's whole handshake must fit in it under the emulated CPU of
    // the kernel-TLS VM too (with 1 s it sometimes did not: the server cut it, EPIPE).
    let srv = start(&cert, &["--header-timeout", "2"]);
    // Garbage where a ClientHello should be.
    let mut s = srv.connect();
    let t0 = Instant::now();
    s.write_all(&pattern(3000, 9)).unwrap();
    let _ = read_to_close(&mut s);
    assert!(t0.elapsed() < Duration::from_secs(5), "garbage: no hang");
    // Half a ClientHello, then nothing: cut by --header-timeout.
    let mut hello = Vec::new();
    let mut c = ClientConnection::new(
        cert.client_for(&[]),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    c.write_tls(&mut hello).unwrap();
    let mut s = srv.connect();
    let t0 = Instant::now();
    s.write_all(&hello[..hello.len() / 2]).unwrap();
    let got = read_to_close(&mut s);
    let took = t0.elapsed();
    assert!(got.is_empty(), "nothing answered to half a hello: {got:?}");
    assert!(
        took >= Duration::from_millis(1700) && took < Duration::from_secs(8),
        "cut after the header timeout, took {took:?}"
    );
    // The server still serves.
    let mut s = tls_connect(&srv, &cert.client_for(&[]), "localhost");
    s.write_all(b"GET /4k.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).body, pattern(4096, 4096));
}

#[test]
fn a_name_the_certificate_does_not_cover_fails_the_clients_check() {
    // One certificate, no SNI-based choice: a client asking for another name is given
    // it and refuses it (as with nginx's default server), the server just closes.
    let cert = Cert::new();
    let srv = start(&cert, &[]);
    let mut s = tls_connect(&srv, &cert.client_for(&[]), "other.example");
    let e = s
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .and_then(|_| {
            let mut b = [0u8; 1];
            s.read(&mut b).map(|_| ())
        });
    let e = e.expect_err("the client must refuse the certificate");
    assert!(e.to_string().contains("not valid for name"), "{e}");
}

#[test]
fn a_missing_or_mismatched_key_is_refused_at_start_naming_the_option() {
    let cert = Cert::new();
    let other = Cert::new();
    for (c, k, want) in [
        (cert.path("cert.pem"), cert.path("nope.pem"), "--tls-key"),
        (cert.path("nope.pem"), cert.path("key.pem"), "--tls-cert"),
        (cert.path("key.pem"), cert.path("key.pem"), "--tls-cert"),
        (cert.path("cert.pem"), other.path("key.pem"), "--tls-key"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(&c)
            .arg("--tls-key")
            .arg(&k)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{c:?} {k:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{c:?} {k:?}: {err}");
    }
    // One without the other is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(cert.path("cert.pem"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

/// Whether this server hands its records to the kernel; says so loudly when not.
fn kernel_tls_or_skip(srv: &Server, test: &str) -> bool {
    if srv.banner.contains("records by the kernel") {
        return true;
    }
    eprintln!(
        "SKIPPED {test}: no kernel TLS here ({}); run it in a kernel with the tls module \
         (scripts/test-ktls.sh)",
        srv.banner.trim()
    );
    false
}

#[test]
fn kernel_tls_carries_the_records_and_the_body_leaves_by_sendfile() {
    let cert = Cert::new();
    // The syscall executor (epoll readiness loop): what moves the body is visible to
    // strace. The io_uring executor runs the same plan (splice instead of sendfile).
    let srv = start_env(
        &cert,
        &["--memory-cache-max", "0", "--threads", "1"],
        &[("FERRY_BACKEND", "blocking")],
    );
    if !kernel_tls_or_skip(
        &srv,
        "kernel_tls_carries_the_records_and_the_body_leaves_by_sendfile",
    ) {
        return;
    }
    let strace = Strace::attach(
        srv.proc.child.id(),
        "sendfile,read,pread64,preadv,preadv2,splice",
    );
    let before = tls_stat("TlsTxSw");
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr.port());
    let url = format!("https://localhost:{}/3m.bin", srv.addr.port());
    let ca = cert.path("cert.pem");
    for version in ["--tlsv1.3", "--tlsv1.2"] {
        let max = if version == "--tlsv1.2" { "1.2" } else { "1.3" };
        let out = curl(&[
            "-sS",
            "--fail",
            "--cacert",
            ca.to_str().unwrap(),
            "--resolve",
            &resolve,
            version,
            "--tls-max",
            max,
            &url,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == pattern(3 << 20, 3 << 20),
            "{version}: bytes differ"
        );
    }
    assert!(
        tls_stat("TlsTxSw") >= before + 2,
        "the kernel sealed both connections"
    );
    let trace = strace.finish();
    let calls = ["sendfile", "read", "pread64", "preadv", "preadv2", "splice"];
    let summary = trace.summary(&calls);
    assert!(
        trace.bytes("sendfile") >= 2 * (3 << 20),
        "bodies by sendfile: {summary}"
    );
    let read: u64 = calls[1..5].iter().map(|c| trace.bytes(c)).sum();
    assert!(read < 4096, "{read} bytes read into user space: {summary}");
}

#[test]
fn a_key_update_is_followed_in_user_space_and_closes_a_kernel_tls_connection() {
    let cert = Cert::new();
    let srv = start(&cert, &[]);
    let mut s = tls_connect(&srv, &cert.client_for(&[]), "localhost");
    s.write_all(b"GET /4k.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).body, pattern(4096, 4096));
    s.conn.refresh_traffic_keys().unwrap();
    s.write_all(b"GET /16k.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    if srv.banner.contains("records by the kernel") {
        // This kernel's TLS receive side does not follow a key update (6.14 does): the
        // connection is closed, never answered with the old keys or left hanging.
        let t0 = Instant::now();
        let mut b = [0u8; 1];
        let r = s.read(&mut b);
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "answered after a key update: {r:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
    } else {
        assert_eq!(read_response(&mut s, false).body, pattern(16384, 16384));
    }
}
