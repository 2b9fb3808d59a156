//! `ferry serve` against nginx on the same root and the same requests: the status
//! codes (and a few headers) clients notice. Each request is sent to both where nginx
//! is installed (`scripts/install-peers.sh`); ferry's answer is checked either way, and
//! the table says where the two differ on purpose (docs/serve.md, "Differences from
//! nginx"). Each runs the backend `FERRY_BACKEND` says.
#![cfg(target_os = "linux")]

#[path = "serve/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use server::Server;

fn site(root: &Path) {
    std::fs::write(root.join("empty.bin"), "").unwrap();
    std::fs::write(root.join("ten.txt"), "0123456789").unwrap();
    for name in ["a.ts", "a.m3u8", "a.mjs", "a.woff", "a.woff2", "a.css"] {
        std::fs::write(root.join(name), "x").unwrap();
    }
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/in.txt"), "in\n").unwrap();
}

/// nginx on `root`, one process, its own mime.types; `None` (said on stderr) when
/// nginx is not installed.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx(root: &Path) -> Option<Nginx> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(bin) = bin else {
        eprintln!("serve_nginx_parity: nginx is not installed (scripts/install-peers.sh): ferry's answers are checked against the table alone");
        return None;
    };
    // The port is picked by binding port 0 and letting go, so another process of the
    // (parallel) suite may take it before nginx does: then nginx exits, or the port
    // answers as something else. Try again on another port.
    for _ in 0..5 {
        if let Some(n) = start_nginx(bin, root) {
            return Some(n);
        }
    }
    panic!("nginx did not start on any of 5 free ports");
}

/// One try: nginx listening on a free port, answering as nginx; `None` when the port
/// was taken meanwhile.
fn start_nginx(bin: &str, root: &Path) -> Option<Nginx> {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = dir.path().display();
    let conf = format!(
        "daemon off; master_process off; error_log {p}/error.log; pid {p}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{ include /etc/nginx/mime.types; default_type application/octet-stream;\n\
           access_log off; client_body_temp_path {p}/b; proxy_temp_path {p}/p;\n\
           fastcgi_temp_path {p}/f; uwsgi_temp_path {p}/u; scgi_temp_path {p}/s;\n\
           server {{ listen 127.0.0.1:{port}; root {}; }} }}\n",
        root.display()
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .arg("-p")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut n = Nginx {
        child,
        addr,
        _dir: dir,
    };
    let t0 = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if n.child.try_wait().unwrap().is_some() {
            return None; // the port was taken: nginx could not bind it
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nginx did not listen: {}",
            std::fs::read_to_string(n._dir.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Whoever listens there must be this nginx.
    let head = probe(addr);
    let ours = head.to_ascii_lowercase().contains("server: nginx")
        && n.child.try_wait().unwrap().is_none();
    if !ours {
        let _ = n.child.kill();
        return None;
    }
    Some(n)
}

/// What answers `HEAD /` at `addr` (empty when nothing does, no panic).
fn probe(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"HEAD / HTTP/1.0\r\n\r\n");
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

/// The status line and head of the answer to `raw` (sent as is, then the write side
/// closed so a server waiting for more sees the end).
fn ask(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(raw);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no status in {text:?} for {:?}",
                String::from_utf8_lossy(raw)
            )
        });
    (status, text)
}

#[test]
fn status_codes_match_nginx() {
    let srv = Server::start(site, &[]);
    let ngx = nginx(srv.root.path());
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    // (request, ferry's status, whether nginx 1.22 answers the same)
    let cases: Vec<(String, u16, bool)> =
        vec![
        ("GET /ten.txt HTTP/1.2\r\nHost: x\r\n\r\n".into(), 200, true),
        ("GET /ten.txt HTTP/2.0\r\nHost: x\r\n\r\n".into(), 505, true),
        ("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400, true),
        ("GET /ten.txt HTTX/1.1\r\nHost: x\r\n\r\n".into(), 400, true),
        (long, 414, true),
        ("GET /empty.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0\r\n\r\n".into(), 200, true),
        ("GET /ten.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=20-\r\n\r\n".into(), 416, true),
        ("GET /ten.txt HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n".into(), 400, true),
        (
            "GET /ten.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"
                .into(),
            400,
            true,
        ),
        ("GET /ten.txt HTTP/1.1\r\nHost: a b\r\n\r\n".into(), 400, true),
        ("GET /ten.txt HTTP/1.1\r\nHost: ../x\r\n\r\n".into(), 400, true),
        ("GET /ten.txt HTTP/1.1\r\nHost: \r\n\r\n".into(), 400, true),
        ("GET /ten.txt HTTP/1.1\r\n\r\n".into(), 400, true),
        ("GET /sub HTTP/1.1\r\nHost: x\r\n\r\n".into(), 301, true),
        ("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".into(), 404, true),
        ("POST /ten.txt HTTP/1.1\r\nHost: x\r\n\r\n".into(), 405, true),
    ];
    for (req, want, same) in &cases {
        let (got, text) = ask(srv.addr, req.as_bytes());
        let shown: String = req.chars().take(80).collect();
        assert_eq!(got, *want, "ferry, {shown:?}: {text:.200}");
        if let (Some(n), true) = (&ngx, same) {
            let (theirs, _) = ask(n.addr, req.as_bytes());
            assert_eq!(theirs, got, "nginx and ferry differ on {shown:?}");
        }
    }
    // HTTP/1.2 is answered as HTTP/1.1, keep-alive.
    let (_, text) = ask(srv.addr, b"GET /ten.txt HTTP/1.2\r\nHost: x\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("0123456789"), "{text}");
    // Two Range headers: the first counts.
    let req = b"GET /ten.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: bytes=0-1\r\nRange: bytes=5-6\r\n\r\n";
    let (status, text) = ask(srv.addr, req);
    assert_eq!(
        (status, text.ends_with("\r\n\r\n01")),
        (206, true),
        "{text}"
    );
    if let Some(n) = &ngx {
        let (status, theirs) = ask(n.addr, req);
        assert_eq!(
            (status, theirs.ends_with("\r\n\r\n01")),
            (206, true),
            "nginx: {theirs}"
        );
    }
}

#[test]
fn content_types_match_nginx() {
    let srv = Server::start(site, &[]);
    let ngx = nginx(srv.root.path());
    let ctype = |addr, name: &str| {
        let (status, text) = ask(
            addr,
            format!("HEAD /{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status, 200, "{name}");
        text.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    for (name, want) in [
        ("a.ts", "video/mp2t"),
        ("a.m3u8", "application/vnd.apple.mpegurl"),
        ("a.woff", "font/woff"),
        ("a.woff2", "font/woff2"),
        ("a.css", "text/css"),
        // nginx 1.22 has no .mjs (octet-stream, which a browser refuses for a module).
        ("a.mjs", "text/javascript"),
    ] {
        assert_eq!(ctype(srv.addr, name), want, "{name}");
        if let Some(n) = ngx.as_ref().filter(|_| name != "a.mjs") {
            assert_eq!(ctype(n.addr, name), want, "nginx, {name}");
        }
    }
}
