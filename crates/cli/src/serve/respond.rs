//! From a parsed request to the response: status, head bytes and what body follows.
//! Pure apart from opening/stat-ing files through the cache; no socket I/O here.

use std::fmt::Write as _;
use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use super::conditional::{if_range_holds, precondition};
use super::files::{FileCache, Hit, Kind, Refused, Root};
use super::range::{evaluate, Ranges};
use super::request::{Method, Request};
use super::target::{self, Target};

/// One piece of a file body: `prefix` bytes (head or part header), then `len` bytes of
/// the file from `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub prefix: Vec<u8>,
    pub offset: u64,
    pub len: u64,
}

/// The bytes of a response after the head was decided.
#[derive(Debug)]
pub enum Body {
    /// Everything is in `Response::head` (HEAD, errors, cached small bodies).
    None,
    /// File pieces, sent in order, the last followed by `trailer`.
    File {
        file: Arc<File>,
        pieces: Vec<Piece>,
        trailer: Vec<u8>,
    },
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Bytes to send first (the whole response when `body` is `None`).
    pub head: Vec<u8>,
    pub body: Body,
    pub keep_alive: bool,
    /// Bytes of the response after its head (for the access log).
    pub body_len: u64,
}

/// What a thread needs to answer requests.
pub struct Site {
    pub root: Root,
    pub cache: FileCache,
    next_boundary: u64,
}

impl Site {
    pub fn new(root: Root, cache: FileCache) -> Site {
        Site {
            root,
            cache,
            next_boundary: 0,
        }
    }

    /// The response to a complete request head. `date` is the current HTTP date, `now`
    /// the current instant.
    pub fn respond(&mut self, req: &Request, date: &str, now: Instant) -> Response {
        let mut r = self.respond_any(req, date, now);
        if req.method == Some(Method::Head) && matches!(r.body, Body::None) {
            // The same head as GET, never its body (errors included).
            if let Some(end) = r.head.windows(4).position(|w| w == b"\r\n\r\n") {
                r.head.truncate(end + 4);
            }
            r.body_len = 0;
        }
        r
    }

    fn respond_any(&mut self, req: &Request, date: &str, now: Instant) -> Response {
        let keep_alive = req.keep_alive && !req.has_body;
        if req.bad_framing || (req.minor == 1 && !req.host) {
            return error(400, date, false);
        }
        let head_only = req.method == Some(Method::Head);
        if req.method == Some(Method::Other) {
            let mut r = error(405, date, keep_alive);
            r.head = with_header(&r.head, "Allow: GET, HEAD");
            return r;
        }
        let target = match target::parse(&req.target) {
            Ok(t) => t,
            Err(_) => return error(400, date, false),
        };
        let mut rel = target.relative();
        if target.trailing_slash {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(b"index.html");
        }
        let hit = match self.cache.get(&self.root, &rel, now) {
            Ok(Ok(hit)) => hit,
            Ok(Err(Kind::Dir)) if !target.trailing_slash => {
                return redirect(&target, date, keep_alive)
            }
            Ok(Err(_)) => return error(404, date, keep_alive),
            Err(Refused::NotFound) if target.trailing_slash => {
                // No index.html: a directory without an index is forbidden (autoindex off).
                let dir = target.relative();
                let is_dir = dir.is_empty()
                    || matches!(self.root.open_beneath(&dir), Ok((_, m)) if m.kind == Kind::Dir);
                return error(if is_dir { 403 } else { 404 }, date, keep_alive);
            }
            Err(Refused::NotFound) => return error(404, date, keep_alive),
            Err(Refused::Forbidden) => return error(403, date, keep_alive),
            Err(Refused::Internal) => return error(500, date, false),
        };
        let body = match hit.body.clone() {
            Some(b) => Some(b),
            None => self.cache.load_small(&rel, &hit),
        };
        self.file_response(req, &hit, body, date, keep_alive, head_only)
    }

    fn file_response(
        &mut self,
        req: &Request,
        hit: &Hit,
        cached: Option<Arc<[u8]>>,
        date: &str,
        keep_alive: bool,
        head_only: bool,
    ) -> Response {
        let info = &hit.info;
        let meta = info.meta;
        let (tag, modified, content_type) = (&info.etag, &info.modified, info.content_type);
        if let Some(status) = precondition(req, &meta, tag) {
            let mut head = status_line(status, date);
            let _ = write!(head, "Last-Modified: {modified}\r\n");
            let _ = write!(head, "{}ETag: {tag}\r\n", connection(keep_alive));
            if status == 412 {
                head.push_str("Content-Length: 0\r\n");
            }
            head.push_str("\r\n");
            return Response {
                status,
                head: head.into_bytes(),
                body: Body::None,
                keep_alive,
                body_len: 0,
            };
        }
        let ranges = match &req.range {
            // An empty file has no byte a range could name: the whole (empty) file, 200,
            // as nginx answers, rather than 416 for every Range.
            Some(r) if meta.size > 0 && if_range_holds(req, &meta, tag) => evaluate(r, meta.size),
            _ => Ranges::Full,
        };
        let mut head;
        let mut pieces = Vec::new();
        let mut trailer = Vec::new();
        let status;
        match ranges {
            Ranges::Unsatisfiable => {
                let body = "416 Range Not Satisfiable\n";
                head = status_line(416, date);
                let _ = write!(
                    head,
                    "Content-Type: text/plain\r\nContent-Length: {}\r\n{}Content-Range: bytes */{}\r\n\r\n",
                    body.len(),
                    connection(keep_alive),
                    meta.size
                );
                if !head_only {
                    head.push_str(body);
                }
                return Response {
                    status: 416,
                    head: head.into_bytes(),
                    body: Body::None,
                    keep_alive,
                    body_len: body.len() as u64,
                };
            }
            Ranges::Full => {
                status = 200;
                head = status_line(200, date);
                let _ = write!(
                    head,
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                    meta.size
                );
                pieces.push(Piece {
                    prefix: Vec::new(),
                    offset: 0,
                    len: meta.size,
                });
            }
            Ranges::Parts(parts) if parts.len() == 1 => {
                status = 206;
                let (start, len) = parts[0];
                head = status_line(206, date);
                let _ = write!(
                    head,
                    "Content-Type: {content_type}\r\nContent-Length: {len}\r\nContent-Range: bytes {start}-{}/{}\r\n",
                    start + len - 1,
                    meta.size
                );
                pieces.push(Piece {
                    prefix: Vec::new(),
                    offset: start,
                    len,
                });
            }
            Ranges::Parts(parts) => {
                status = 206;
                self.next_boundary += 1;
                let boundary = format!("{:020}", self.next_boundary);
                for (start, len) in parts {
                    let prefix = format!(
                        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {start}-{}/{}\r\n\r\n",
                        start + len - 1,
                        meta.size
                    );
                    pieces.push(Piece {
                        prefix: prefix.into_bytes(),
                        offset: start,
                        len,
                    });
                }
                trailer = format!("\r\n--{boundary}--\r\n").into_bytes();
                let total: u64 = pieces
                    .iter()
                    .map(|p| p.prefix.len() as u64 + p.len)
                    .sum::<u64>()
                    + trailer.len() as u64;
                head = status_line(206, date);
                let _ = write!(
                    head,
                    "Content-Type: multipart/byteranges; boundary={boundary}\r\nContent-Length: {total}\r\n"
                );
            }
        }
        let _ = write!(
            head,
            "Last-Modified: {modified}\r\n{}ETag: {tag}\r\nAccept-Ranges: bytes\r\n\r\n",
            connection(keep_alive)
        );
        let body_len = pieces
            .iter()
            .map(|p| p.prefix.len() as u64 + p.len)
            .sum::<u64>()
            + trailer.len() as u64;
        let mut head = head.into_bytes();
        if head_only || body_len == 0 {
            return Response {
                status,
                head,
                body: Body::None,
                keep_alive,
                body_len: 0,
            };
        }
        if let Some(bytes) = cached.filter(|b| b.len() as u64 == meta.size) {
            for p in &pieces {
                head.extend_from_slice(&p.prefix);
                head.extend_from_slice(&bytes[p.offset as usize..(p.offset + p.len) as usize]);
            }
            head.extend_from_slice(&trailer);
            return Response {
                status,
                head,
                body: Body::None,
                keep_alive,
                body_len,
            };
        }
        // The head travels as the first piece's prefix: one transfer sends both.
        let mut first = head;
        first.extend_from_slice(&pieces[0].prefix);
        pieces[0].prefix = first;
        Response {
            status,
            head: Vec::new(),
            body: Body::File {
                file: hit.file.clone(),
                pieces,
                trailer,
            },
            keep_alive,
            body_len,
        }
    }
}

fn connection(keep_alive: bool) -> &'static str {
    if keep_alive {
        "Connection: keep-alive\r\n"
    } else {
        "Connection: close\r\n"
    }
}

fn status_line(status: u16, date: &str) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "HTTP/1.1 {status} {}\r\nServer: ferry\r\nDate: {date}\r\n",
        reason(status)
    );
    s
}

/// The reason phrase of every status this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A short plain-text answer with `status`.
pub fn error(status: u16, date: &str, keep_alive: bool) -> Response {
    let body = format!("{status} {}\n", reason(status));
    let mut head = status_line(status, date);
    let _ = write!(
        head,
        "Content-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        connection(keep_alive)
    );
    Response {
        status,
        head: head.into_bytes(),
        body: Body::None,
        keep_alive,
        body_len: body.len() as u64,
    }
}

fn redirect(target: &Target, date: &str, keep_alive: bool) -> Response {
    let mut r = error(301, date, keep_alive);
    let mut location = format!("Location: {}/", target.path());
    if let Some(q) = &target.query {
        location.push('?');
        location.push_str(q);
    }
    r.head = with_header(&r.head, &location);
    r
}

/// Inserts one header line right after the status line's headers (before the blank line).
fn with_header(head: &[u8], line: &str) -> Vec<u8> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(head.len(), |i| i + 2);
    let mut out = Vec::with_capacity(head.len() + line.len() + 2);
    out.extend_from_slice(&head[..end]);
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&head[end..]);
    out
}
