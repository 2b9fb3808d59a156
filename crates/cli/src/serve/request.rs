//! One HTTP/1.x request head, parsed by `httparse`, reduced to what a static file server
//! acts on. Limits: the head (request line + headers) ≤ [`MAX_HEAD`] bytes and
//! ≤ [`MAX_HEADERS`] header fields; beyond either the answer is 431.

/// Largest request head accepted, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header fields accepted.
pub const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Any other method: answered 405.
    Other,
}

/// A parsed request head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: Option<Method>,
    /// The request line's method token as sent (for the access log).
    pub method_text: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub keep_alive: bool,
    pub host: bool,
    /// A body follows (Content-Length > 0 or Transfer-Encoding): the connection is
    /// closed after the answer rather than parsing the body.
    pub has_body: bool,
    /// A framing header that cannot be trusted (two different Content-Lengths, a bad
    /// number): 400, as RFC 9112 §6.3 asks.
    pub bad_framing: bool,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_unmodified_since: Option<String>,
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole head of `len` bytes.
    Complete(Box<Request>, usize),
    /// More bytes are needed.
    Partial,
    /// Not a request we can parse: answer with this status and close.
    Invalid(u16),
}

/// Parses the head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    match parse_as_sent(buf) {
        // httparse knows HTTP/1.0 and 1.1 only: a later 1.x is served as 1.1 (RFC 9112
        // §2.3: a server answers with the highest minor version it supports).
        Parsed::Invalid(505) => match later_minor(buf) {
            Ok(as_11) => parse_as_sent(&as_11),
            Err(p) => p,
        },
        p => p,
    }
}

/// What is wrong with a request line httparse refused for its version: a later HTTP/1.x
/// (the head with `HTTP/1.1` in its place, same length), another major version (505), a
/// raw space in the target or no HTTP version at all (400), or not all of it yet.
fn later_minor(buf: &[u8]) -> Result<Vec<u8>, Parsed> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return Err(if buf.len() >= MAX_HEAD {
            Parsed::Invalid(414)
        } else {
            Parsed::Partial
        });
    };
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [_, _, version] = parts[..] else {
        return Err(Parsed::Invalid(400));
    };
    let Some(number) = version.strip_prefix(b"HTTP/") else {
        return Err(Parsed::Invalid(400));
    };
    match number {
        [b'1', b'.', d] if d.is_ascii_digit() => {
            let mut as_11 = buf.to_vec();
            let at = line.len() - 1;
            as_11[at] = b'1';
            Ok(as_11)
        }
        [m, b'.', d] if m.is_ascii_digit() && d.is_ascii_digit() => Err(Parsed::Invalid(505)),
        [m] if m.is_ascii_digit() => Err(Parsed::Invalid(505)),
        _ => Err(Parsed::Invalid(400)),
    }
}

/// Whether `host` (a Host header's value) is a plausible authority: non-empty, and only
/// the characters of a host name, an IP literal and a port — no space, no `/`, no `..`.
/// nginx refuses the same (400); a front proxy might read such a value differently.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('.')
        && !host.contains("..")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]%!$&'()*+,;=".contains(&b))
}

fn parse_as_sent(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            // No end of the request line within the limit: the target is too long.
            let line_done = buf[..MAX_HEAD].contains(&b'\n');
            return Parsed::Invalid(if line_done { 431 } else { 414 });
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(431),
        Err(httparse::Error::Version) => return Parsed::Invalid(505),
        Err(_) => return Parsed::Invalid(400),
    };
    if len > MAX_HEAD {
        let line_done = buf[..MAX_HEAD].contains(&b'\n');
        return Parsed::Invalid(if line_done { 431 } else { 414 });
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid(400);
    };
    let mut r = Request {
        method: Some(match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => Method::Other,
        }),
        method_text: method.to_owned(),
        target: target.to_owned(),
        minor,
        ..Request::default()
    };
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut content_length: Option<u64> = None;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            // Non-ASCII values of the headers we read are not meaningful; others are ignored.
            if is_one_of(h.name, &["range", "if-range", "if-match", "if-none-match"]) {
                return Parsed::Invalid(400);
            }
            continue;
        };
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if r.host || !valid_host(value) {
                // RFC 9112 §3.2: one Host; and one that names a host (see valid_host).
                return Parsed::Invalid(400);
            }
            r.host = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                connection_close |= token.eq_ignore_ascii_case("close");
                connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            // Digits only (no sign), and one Content-Length: nginx refuses a repeated
            // one even when equal, and so does this server (RFC 9110 §8.6 allows it).
            let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
            match value.parse::<u64>() {
                Ok(n) if digits && content_length.is_none() => content_length = Some(n),
                _ => r.bad_framing = true,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            r.has_body = true;
        } else if name.eq_ignore_ascii_case("range") {
            // The first one counts, as in nginx.
            if r.range.is_none() {
                r.range = Some(value.to_owned());
            }
        } else if name.eq_ignore_ascii_case("if-range") {
            r.if_range = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("if-match") {
            r.if_match = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("if-none-match") {
            r.if_none_match = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            r.if_modified_since = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("if-unmodified-since") {
            r.if_unmodified_since = Some(value.to_owned());
        }
    }
    r.has_body |= content_length.is_some_and(|n| n > 0);
    r.keep_alive = if minor == 1 {
        !connection_close
    } else {
        connection_keep_alive && !connection_close
    };
    Parsed::Complete(Box::new(r), len)
}

fn is_one_of(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(s: &str) -> Request {
        match parse(s.as_bytes()) {
            Parsed::Complete(r, n) => {
                assert_eq!(n, s.len());
                *r
            }
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(complete("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
        assert!(!complete("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn heads_are_bounded_and_bad_ones_refused() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Parsed::Partial);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(big.as_bytes()), Parsed::Invalid(431));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X{i}: y\r\n"))
            .collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(many.as_bytes()), Parsed::Invalid(431));
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Parsed::Invalid(505));
        assert_eq!(parse(b"GET / HTTP/3\r\n\r\n"), Parsed::Invalid(505));
        // A raw space in the target, a misspelt protocol: 400, as nginx.
        assert_eq!(
            parse(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
            Parsed::Invalid(400)
        );
        assert_eq!(
            parse(b"GET / HTTX/1.1\r\nHost: a\r\n\r\n"),
            Parsed::Invalid(400)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.x\r\nHost: a\r\n\r\n"),
            Parsed::Invalid(400)
        );
        // A target longer than the head limit: 414 URI Too Long.
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100_000));
        assert_eq!(parse(long.as_bytes()), Parsed::Invalid(414));
        assert_eq!(parse(&long.as_bytes()[..MAX_HEAD]), Parsed::Invalid(414));
        assert_eq!(parse(b"GET\x00 / HTTP/1.1\r\n\r\n"), Parsed::Invalid(400));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Parsed::Invalid(400)
        );
        let r =
            complete("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert!(r.bad_framing);
        assert!(complete("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").has_body);
    }

    #[test]
    fn a_later_http_1_minor_is_served_as_1_1() {
        let r = complete("GET /x HTTP/1.2\r\nHost: a\r\n\r\n");
        assert_eq!((r.minor, r.target.as_str(), r.keep_alive), (1, "/x", true));
        assert_eq!(parse(b"GET / HTTP/1.9\r\nHost: a"), Parsed::Partial);
        assert_eq!(parse(b"GET / HTTP/1.2"), Parsed::Partial);
    }

    #[test]
    fn framing_and_host_are_strict() {
        for cl in ["+0", "-1", "0x5", "5 5", "1,1"] {
            let r = complete(&format!(
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\n"
            ));
            assert!(r.bad_framing, "Content-Length: {cl}");
        }
        let twice = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n";
        assert!(complete(twice).bad_framing, "a repeated Content-Length");
        assert!(!complete("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").bad_framing);
        for host in ["a b", "../x", "", ".", "a/b", "a\\b", "a..b"] {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(
                parse(req.as_bytes()),
                Parsed::Invalid(400),
                "Host: {host:?}"
            );
        }
        for host in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]:8080",
            "xn--bcher-kva.ch",
        ] {
            assert!(
                complete(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")).host,
                "{host}"
            );
        }
    }

    #[test]
    fn the_first_range_header_counts() {
        let r =
            complete("GET / HTTP/1.1\r\nHost: a\r\nRange: bytes=0-0\r\nRange: bytes=1-1\r\n\r\n");
        assert_eq!(r.range.as_deref(), Some("bytes=0-0"));
    }
}
