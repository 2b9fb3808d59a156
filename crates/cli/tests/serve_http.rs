//! `ferry serve`: HTTP semantics (nginx's static module), checked byte for byte with a
//! raw client and with curl.

#[path = "serve/server.rs"]
mod server;

use std::io::Write;
use std::process::Command;

use server::{etag_of, pattern, read_response, Server};

/// The files of every size the tests fetch (name, length).
const FILES: [(&str, usize); 5] = [
    ("empty.bin", 0),
    ("one.bin", 1),
    ("4k.bin", 4096),
    ("100k.bin", 100_000),
    ("3m.bin", 3 << 20),
];

fn site(root: &std::path::Path) {
    for (name, len) in FILES {
        std::fs::write(root.join(name), pattern(len, len as u32)).unwrap();
    }
    std::fs::write(root.join("page.html"), "<p>hi</p>\n").unwrap();
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/index.html"), "index\n").unwrap();
    std::fs::create_dir(root.join("bare")).unwrap();
}

#[test]
fn files_of_every_size_arrive_byte_exact_with_nginx_headers() {
    let srv = Server::start(site, &[]);
    // The suite's second pass forces LocalEngine's readiness fallback: check it ran.
    if std::env::var("FERRY_BACKEND").as_deref() == Ok("blocking") {
        assert!(
            srv.banner.contains("epoll readiness loops"),
            "{}",
            srv.banner
        );
    }
    for (name, len) in FILES {
        let r = srv.get(&format!("GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.body, pattern(len, len as u32), "{name} body");
        assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
        assert_eq!(
            r.header("etag"),
            Some(etag_of(&srv.path(name)).as_str()),
            "{name}"
        );
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert!(r
            .header("last-modified")
            .is_some_and(|d| d.ends_with(" GMT")));
        assert!(r.header("date").is_some());
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    let r = srv.get("GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.header("content-type"), Some("text/html"));
}

#[test]
fn head_has_the_get_head_and_no_body() {
    let srv = Server::start(site, &[]);
    let get = srv.get("GET /100k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut s = srv.connect();
    // HEAD then GET on one connection: no body bytes may sit between the two answers.
    s.write_all(
        b"HEAD /100k.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /one.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let head = read_response(&mut s, true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("100000"));
    assert_eq!(head.header("etag"), get.header("etag"));
    let next = read_response(&mut s, false);
    assert_eq!(next.body, pattern(1, 1));
    let missing = {
        let mut s = srv.connect();
        s.write_all(
            b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /one.bin HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .unwrap();
        let r = read_response(&mut s, true);
        assert_eq!(
            read_response(&mut s, false).body,
            pattern(1, 1),
            "no 404 body after HEAD"
        );
        r
    };
    assert_eq!(missing.status, 404);
}

#[test]
fn other_methods_get_405_with_allow() {
    let srv = Server::start(site, &[]);
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "BREW"] {
        let r = srv.get(&format!("{m} /4k.bin HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{m}");
    }
}

#[test]
fn conditional_requests_follow_nginx() {
    let srv = Server::start(site, &[]);
    let full = srv.get("GET /4k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let tag = full.header("etag").unwrap().to_owned();
    let lm = full.header("last-modified").unwrap().to_owned();
    let ask = |h: &str| srv.get(&format!("GET /4k.bin HTTP/1.1\r\nHost: x\r\n{h}\r\n\r\n"));
    let r = ask(&format!("If-None-Match: {tag}"));
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some(tag.as_str()));
    assert_eq!(ask("If-None-Match: \"other\"").status, 200);
    assert_eq!(ask(&format!("If-Modified-Since: {lm}")).status, 304);
    // `exact`: a later date is not "not modified".
    assert_eq!(
        ask("If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT").status,
        200
    );
    assert_eq!(ask("If-Match: \"other\"").status, 412);
    assert_eq!(ask(&format!("If-Match: {tag}")).status, 200);
    assert_eq!(
        ask("If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT").status,
        412
    );
    assert_eq!(ask(&format!("If-Unmodified-Since: {lm}")).status, 200);
}

#[test]
fn ranges_single_suffix_open_multipart_and_unsatisfiable() {
    let srv = Server::start(site, &[]);
    let body = pattern(100_000, 100_000);
    let ask = |h: &str| srv.get(&format!("GET /100k.bin HTTP/1.1\r\nHost: x\r\n{h}\r\n\r\n"));
    let r = ask("Range: bytes=10-19");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/100000"));
    assert_eq!(r.body, body[10..20]);
    let r = ask("Range: bytes=-100");
    assert_eq!((r.status, &r.body[..]), (206, &body[99_900..]));
    let r = ask("Range: bytes=99000-");
    assert_eq!((r.status, &r.body[..]), (206, &body[99_000..]));
    let r = ask("Range: bytes=100000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */100000"));
    // Ranges adding up to more than the file: the whole file, never more.
    let r = ask("Range: bytes=0-99999,0-99999");
    assert_eq!((r.status, r.body.len()), (200, 100_000));
    // Several ranges: multipart/byteranges, each part checked.
    let r = ask("Range: bytes=0-9,50000-50009,-5");
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(ct);
    let text = r.body.clone();
    let mut parts = Vec::new();
    let sep = format!("\r\n--{boundary}");
    let mut rest = &text[..];
    while let Some(i) = find(rest, sep.as_bytes()) {
        rest = &rest[i + sep.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end = find(rest, b"\r\n\r\n").unwrap();
        let headers = String::from_utf8(rest[..end].to_vec()).unwrap();
        let range = headers
            .split("Content-Range: bytes ")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let data = &rest[end + 4..end + 4 + (b - a + 1)];
        assert_eq!(data, &body[a..=b], "part {range}");
        parts.push(range);
    }
    assert_eq!(parts, ["0-9", "50000-50009", "99995-99999"]);
    assert!(text.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()));
    // If-Range: a matching validator keeps the range, another gives the whole file.
    let tag = r.header("etag").unwrap().to_owned();
    assert_eq!(
        ask(&format!("Range: bytes=0-0\r\nIf-Range: {tag}")).status,
        206
    );
    assert_eq!(ask("Range: bytes=0-0\r\nIf-Range: \"old\"").status, 200);
    assert_eq!(
        ask(&format!("Range: bytes=0-0\r\nIf-Range: W/{tag}")).status,
        200
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn directories_redirect_or_serve_their_index() {
    let srv = Server::start(site, &[]);
    let r = srv.get("GET /dir?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/dir/?x=1"));
    let r = srv.get("GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, &r.body[..]), (200, &b"index\n"[..]));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(
        srv.get("GET /bare/ HTTP/1.1\r\nHost: x\r\n\r\n").status,
        403
    );
    assert_eq!(
        srv.get("GET /4k.bin/ HTTP/1.1\r\nHost: x\r\n\r\n").status,
        404
    );
    assert_eq!(srv.get("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 403);
}

#[test]
fn a_file_changed_in_place_is_never_served_stale() {
    let srv = Server::start(site, &[]);
    let path = srv.path("page.html");
    for round in 0..5u8 {
        let content = vec![b'a' + round; 10];
        std::fs::write(&path, &content).unwrap();
        let r = srv.get("GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.body, content, "round {round}");
        assert_eq!(r.header("etag"), Some(etag_of(&path).as_str()));
    }
}

#[test]
fn curl_gets_the_same_bytes() {
    let srv = Server::start(site, &[]);
    let Ok(out) = Command::new("curl").arg("--version").output() else {
        panic!("curl is not installed: run scripts/install-test-deps.sh");
    };
    assert!(out.status.success());
    let url = format!("http://{}/3m.bin", srv.addr);
    let out = Command::new("curl")
        .args(["-sS", "--fail", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, pattern(3 << 20, 3 << 20));
    let out = Command::new("curl")
        .args(["-sS", "-r", "100-199", &url])
        .output()
        .unwrap();
    assert_eq!(out.stdout, pattern(3 << 20, 3 << 20)[100..200]);
    // Two URLs on one curl: the second reuses the connection.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-v",
            &url,
            &url,
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "{err}"
    );
}

#[test]
fn the_access_log_has_one_common_log_format_line_per_request() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let log_path = log.path().to_str().unwrap().to_owned();
    let srv = Server::start(site, &["--access-log", &log_path]);
    srv.get("GET /4k.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    srv.get("GET /nope\"x HTTP/1.1\r\nHost: x\r\n\r\n");
    srv.get("HEAD /one.bin HTTP/1.0\r\n\r\n");
    let status = srv.stop(std::time::Duration::from_secs(15));
    assert!(status.success());
    let text = std::fs::read_to_string(log.path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let shape = |l: &str, request: &str, tail: &str| {
        assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
        assert!(l.contains(" +0000] "), "{l}");
        assert!(l.ends_with(&format!("\"{request}\" {tail}")), "{l}");
    };
    shape(lines[0], "GET /4k.bin HTTP/1.1", "200 4096");
    // A quote in the request line cannot end the field early.
    shape(lines[1], "GET /nope\\\"x HTTP/1.1", "404 14");
    shape(lines[2], "HEAD /one.bin HTTP/1.0", "200 0");
}
