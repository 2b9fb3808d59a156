//! `ferry serve`: keep-alive, pipelining, concurrency, aborts, shrinking files and
//! graceful shutdown — with the server's fds counted.

#[path = "support/congestion.rs"]
mod congestion;
#[path = "serve/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use server::{pattern, read_response, read_to_close, Server};

const BIG: usize = 64 << 20;

fn site(root: &std::path::Path) {
    for (name, len) in [
        ("small.bin", 2000usize),
        ("mid.bin", 200_000),
        ("big.bin", BIG),
    ] {
        std::fs::write(root.join(name), pattern(len, len as u32)).unwrap();
    }
}

/// Pipe ends the two threads' pools may keep idle.
const POOLED_PIPE_ENDS: usize = 2 * 2 * 64;

#[test]
fn a_hundred_requests_on_one_keep_alive_connection() {
    let srv = Server::start(site, &[]);
    let mut s = srv.connect();
    for i in 0..100 {
        let name = if i % 2 == 0 { "small.bin" } else { "mid.bin" };
        s.write_all(format!("GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, false);
        let len = if i % 2 == 0 { 2000 } else { 200_000 };
        assert_eq!(r.body, pattern(len, len as u32), "request {i}");
    }
    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut s = srv.connect();
    s.write_all(b"GET /small.bin HTTP/1.0\r\n\r\n").unwrap();
    let r = read_response(&mut s, false);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(read_to_close(&mut s).is_empty());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let srv = Server::start(site, &[]);
    let mut s = srv.connect();
    let names = [
        "small.bin",
        "mid.bin",
        "nope",
        "small.bin",
        "mid.bin",
        "small.bin",
    ];
    let all: String = names
        .iter()
        .map(|n| format!("GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    s.write_all(all.as_bytes()).unwrap();
    for n in names {
        let r = read_response(&mut s, false);
        match n {
            "nope" => assert_eq!(r.status, 404),
            "small.bin" => assert_eq!(r.body, pattern(2000, 2000)),
            _ => assert_eq!(r.body, pattern(200_000, 200_000)),
        }
    }
}

#[test]
fn sixty_four_concurrent_clients_get_exact_bytes_and_fds_return_to_baseline() {
    let srv = Server::start(site, &[]);
    let (sockets, _, pipes) = srv.fds();
    let addr = srv.addr;
    let clients: Vec<_> = (0..64)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                for j in 0..5 {
                    let (name, len) = if (i + j) % 3 == 0 {
                        ("mid.bin", 200_000)
                    } else {
                        ("small.bin", 2000)
                    };
                    s.write_all(format!("GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                        .unwrap();
                    assert_eq!(read_response(&mut s, false).body, pattern(len, len as u32));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    srv.wait_fds(sockets, pipes + POOLED_PIPE_ENDS);
}

#[test]
fn a_client_aborting_mid_body_leaves_the_server_serving_and_no_fd_behind() {
    let srv = Server::start(site, &[]);
    let (sockets, _, pipes) = srv.fds();
    for _ in 0..3 {
        let mut s = srv.connect();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut some = vec![0u8; 100_000];
        s.read_exact(&mut some).unwrap();
        // Reset, not a polite close: unread bytes are in the socket.
        drop(s);
    }
    let r = srv.get("GET /mid.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.body, pattern(200_000, 200_000));
    srv.wait_fds(sockets, pipes + POOLED_PIPE_ENDS);
}

#[test]
fn a_file_that_shrinks_while_sent_closes_the_connection_short() {
    let srv = Server::start(site, &[]);
    let mut s = srv.connect();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = vec![0u8; 1 << 20];
    s.read_exact(&mut first).unwrap();
    // The socket buffers hold a few MiB at most: most of the 64 MiB is still unsent.
    std::fs::OpenOptions::new()
        .write(true)
        .open(srv.path("big.bin"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    let start = Instant::now();
    let rest = read_to_close(&mut s);
    let got = first.len() + rest.len();
    assert!(got < BIG, "received {got} bytes: the whole promised length");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "close took {:?}",
        start.elapsed()
    );
    // Every body byte that did arrive came from this file, not from elsewhere.
    let body_start = find(&first, b"\r\n\r\n").unwrap() + 4;
    let mut body = first[body_start..].to_vec();
    body.extend_from_slice(&rest);
    let want = pattern(BIG, BIG as u32);
    assert_eq!(body, want[..body.len()]);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn sigterm_finishes_the_response_in_flight_then_exits_zero() {
    let srv = Server::start(site, &["--grace", "20"]);
    let mut s = srv.connect();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = vec![0u8; 1 << 20];
    s.read_exact(&mut first).unwrap();
    let mut idle = srv.connect();
    idle.write_all(b"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_response(&mut idle, false);
    let addr = srv.addr;
    let reader = std::thread::spawn(move || {
        let rest = read_to_close(&mut s);
        let _ = s.shutdown(Shutdown::Both);
        first.len() + rest.len()
    });
    let status = srv.stop(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");
    let got = reader.join().unwrap();
    let head_len = 300; // the head is a few hundred bytes; the body must be whole
    assert!(
        got >= BIG && got < BIG + head_len + 200,
        "got {got} bytes of a {BIG}-byte body"
    );
    // The idle keep-alive connection was closed, and nothing listens any more.
    assert!(read_to_close(&mut idle).is_empty());
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after SIGTERM"
    );
}

#[test]
fn the_congestion_flag_reaches_the_client_connections() {
    let want = congestion::other_than_default();
    let srv = Server::start(site, &["--congestion", want]);
    assert!(
        srv.banner.contains(&format!("congestion {want}")),
        "{}",
        srv.banner
    );
    let mut c = srv.connect();
    c.write_all(b"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut c, false).body.len(), 2000);
    let filter = format!("( sport = :{} )", srv.addr.port());
    let (algs, text) = congestion::algorithms(&filter);
    assert_eq!(algs, [want], "ss said:\n{text}");
}
