//! `ferry serve`: hostile paths, non-regular files, request limits and slow clients.

#[path = "support/ready.rs"]
mod ready;
#[path = "serve/server.rs"]
mod server;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use server::{read_response, read_to_close, Server};

fn site(root: &std::path::Path) {
    std::fs::write(root.join("ok.txt"), "ok\n").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/in.txt"), "in\n").unwrap();
    // A secret next to (outside) the root, reachable only by escaping it.
    let outside = root.parent().unwrap().join(format!(
        "ferry-secret-{}",
        root.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&outside, "secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", root.join("sub/rel-link")).unwrap();
    std::os::unix::fs::symlink("in.txt", root.join("sub/inner-link")).unwrap();
    // Test setup only: a FIFO the server must refuse without blocking on it.
    assert!(std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap()
        .success());
    std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
}

#[test]
fn traversal_and_encoding_tricks_get_400() {
    let srv = Server::start(site, &[]);
    for target in [
        "/../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/sub/%2E%2E/%2e%2e/etc/passwd",
        "/ok.txt%00.png",
        "/sub%5c..%5c..%5cetc%5cpasswd",
        "/sub\\in.txt",
        "/%zz",
        "http://host/../../etc/passwd",
        "http://user@host/ok.txt",
        "ok.txt",
        "*",
    ] {
        let r = srv.get(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 400, "{target}");
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
    }
    // Normalised paths that stay inside are fine, absolute-form too.
    for target in [
        "/sub/../ok.txt",
        "//sub///in.txt",
        "/sub/./in.txt",
        "http://h/ok.txt",
        "/%6fk.txt",
    ] {
        assert_eq!(
            srv.get(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"))
                .status,
            200,
            "{target}"
        );
    }
}

#[test]
fn a_directory_redirect_never_leaves_this_host() {
    let srv = Server::start(site, &[]);
    for (target, want) in [
        // The target as it arrived would make `Location: //evil.com/..%2fsub/`, which a
        // browser follows to http://evil.com/.
        ("//evil.com/..%2fsub", "/sub/"),
        ("//evil.com/../sub", "/sub/"),
        ("/%2f%2fevil.com/..%2fsub", "/sub/"),
        ("http://h//evil.com/..//sub?q=1", "/sub/?q=1"),
        ("/./sub", "/sub/"),
    ] {
        let r = srv.get(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 301, "{target}");
        let location = r.header("location").unwrap_or_default();
        assert_eq!(location, want, "{target}");
        assert!(!location.starts_with("//") && !location.contains("://"));
    }
}

#[test]
fn symlinks_out_of_the_root_are_refused_inner_ones_follow_the_kernel_check() {
    let srv = Server::start(site, &[]);
    for target in ["/abs-link", "/sub/rel-link"] {
        let r = srv.get(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 403, "{target}");
    }
    let inner = srv.get("GET /sub/inner-link HTTP/1.1\r\nHost: x\r\n\r\n");
    if srv.banner.contains("openat2(RESOLVE_BENEATH)") {
        assert_eq!((inner.status, &inner.body[..]), (200, &b"in\n"[..]));
    } else {
        eprintln!("NOTE: openat2 unavailable here; the component walk refuses every symlink");
        assert_eq!(inner.status, 403);
    }
}

#[test]
fn fifos_and_sockets_are_404_without_blocking() {
    let srv = Server::start(site, &[]);
    let start = Instant::now();
    for target in ["/fifo", "/sock"] {
        assert_eq!(
            srv.get(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"))
                .status,
            404,
            "{target}"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "refusing took {:?}",
        start.elapsed()
    );
    // The thread that answered is still serving.
    assert_eq!(
        srv.get("GET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
}

#[test]
fn oversized_heads_get_431_and_bad_ones_400() {
    let srv = Server::start(site, &[]);
    let big = format!(
        "GET /ok.txt HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let mut s = srv.connect();
    s.write_all(big.as_bytes()).unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.status, 431);
    assert_eq!(r.header("connection"), Some("close"));
    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(
        srv.get(&format!("GET /ok.txt HTTP/1.1\r\nHost: x\r\n{many}\r\n"))
            .status,
        431
    );
    assert_eq!(
        srv.get("GET /ok.txt HTTP/1.1\r\n\r\n").status,
        400,
        "HTTP/1.1 needs Host"
    );
    assert_eq!(
        srv.get("GET /ok.txt HTTP/1.0\r\n\r\n").status,
        200,
        "HTTP/1.0 does not"
    );
    assert_eq!(
        srv.get("GET /ok.txt HTTP/3.0\r\nHost: x\r\n\r\n").status,
        505
    );
    // A TLS ClientHello is not HTTP.
    let mut s = srv.connect();
    s.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).status, 400);
    let r = srv
        .get("GET /ok.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(r.status, 400);
    // A request with a body is answered, then the connection closes (no smuggling).
    let mut s = srv.connect();
    s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\nGET /sub/in.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(
        read_to_close(&mut s).is_empty(),
        "nothing after a Connection: close answer"
    );
}

#[test]
fn a_slow_head_is_cut_at_the_header_timeout_and_idle_connections_at_the_idle_timeout() {
    let srv = Server::start(site, &["--header-timeout", "1", "--idle-timeout", "2"]);
    // Slowloris: one byte every 200 ms never completes a head within 1 s.
    let mut s = srv.connect();
    let start = Instant::now();
    let mut closed = false;
    for b in b"GET /ok.txt HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let rest = if closed {
        Vec::new()
    } else {
        read_to_close(&mut s)
    };
    assert!(
        rest.is_empty(),
        "no answer to a head that never ended: {:?}",
        String::from_utf8_lossy(&rest)
    );
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "slow head held the connection for {took:?}"
    );
    // An idle keep-alive connection is closed after --idle-timeout.
    let mut s = srv.connect();
    s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).status, 200);
    let start = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(5),
        "idle close after {idle:?}"
    );
}

#[test]
fn connections_past_the_limit_are_closed_at_once() {
    let srv = Server::start(site, &["--max-connections", "4", "--threads", "1"]);
    let held: Vec<_> = (0..4)
        .map(|_| {
            let mut s = srv.connect();
            s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            assert_eq!(read_response(&mut s, false).status, 200);
            s
        })
        .collect();
    let start = Instant::now();
    let mut extra = srv.connect();
    let _ = extra.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = read_to_close(&mut extra);
    assert!(got.is_empty(), "the extra connection was served");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "refused after {:?}",
        start.elapsed()
    );
    drop(held);
    // Once they are gone, new connections are served again.
    server_eventually_serves(&srv);
}

fn server_eventually_serves(srv: &Server) {
    let start = Instant::now();
    loop {
        let mut s = srv.connect();
        let _ = s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        let got = read_to_close_or_response(&mut s);
        if got {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never served again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_to_close_or_response(s: &mut std::net::TcpStream) -> bool {
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n > 0)
}

/// A root that may be searched but not listed (mode 711, a common home-directory
/// setting) serves its readable files, as nginx does: the root is opened `O_PATH`.
/// Permission bits do not bind root, so when the test runs as root the server runs as
/// `nobody` (uid 65534, through `setpriv`) from a copy of the binary it can execute.
#[test]
fn a_root_that_can_be_searched_but_not_read_serves_its_files() {
    use std::os::unix::fs::PermissionsExt;
    let site = tempfile::tempdir().unwrap();
    let root = site.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("ok.txt"), "ok\n").unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(site.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let is_root = rustix::process::geteuid().is_root();
    let mut cmd = if is_root {
        let bin = site.path().join("ferry");
        std::fs::copy(env!("CARGO_BIN_EXE_ferry"), &bin).unwrap();
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(bin);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
    };
    // The server's stderr (why it did not start, if it did not) goes to the test's.
    cmd.args([
        "serve",
        "--threads",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--root",
    ])
    .arg(&root)
    .stderr(std::process::Stdio::inherit());
    let (mut child, _, addr) = ready::spawn_ready(cmd);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((r.status, &r.body[..]), (200, &b"ok\n"[..]));
}
