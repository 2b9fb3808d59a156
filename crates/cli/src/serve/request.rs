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
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Parsed::Invalid(431),
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(431),
        Err(httparse::Error::Version) => return Parsed::Invalid(505),
        Err(_) => return Parsed::Invalid(400),
    };
    if len > MAX_HEAD {
        return Parsed::Invalid(431);
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
            if r.host {
                return Parsed::Invalid(400); // RFC 9112 §3.2: more than one Host
            }
            r.host = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                connection_close |= token.eq_ignore_ascii_case("close");
                connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<u64>() {
                Ok(n) if content_length.is_none_or(|m| m == n) => content_length = Some(n),
                _ => r.bad_framing = true,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            r.has_body = true;
        } else if name.eq_ignore_ascii_case("range") {
            r.range = Some(value.to_owned());
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
}
