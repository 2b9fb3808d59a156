//! What the load generator asks and how it knows an answer is whole: HTTP/1.1 `GET`
//! with a `200` and `Content-Length` of the expected size (http-static, tcp-proxy), or
//! the request-response wire format (one byte out; 16-byte header and the body back,
//! `super::super::rr_wire`). Nothing after an answer may arrive before the next
//! request: one request is in flight per connection.

use std::io;

use super::super::rr_wire::{header, HDR};

/// The dialogue of one scenario.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// `GET path` on keep-alive; every answer `200` with `size` body bytes.
    Http { path: String, size: u64 },
    /// The request-response wire format with `size` body bytes.
    Wire { size: u64 },
}

impl Protocol {
    pub fn http(size: u64) -> Protocol {
        Protocol::Http {
            path: format!("/data-{size}"),
            size,
        }
    }

    /// The bytes of one request.
    pub fn request(&self) -> Vec<u8> {
        match self {
            Protocol::Http { path, .. } => {
                format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes()
            }
            Protocol::Wire { .. } => b"G".to_vec(),
        }
    }

    /// The bytes of one whole answer, head included (the trivial responder sends it).
    pub fn answer(&self) -> Vec<u8> {
        let (mut head, size) = match self {
            Protocol::Http { size, .. } => (
                format!(
                    "HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {size}\r\n\r\n"
                )
                .into_bytes(),
                *size,
            ),
            Protocol::Wire { size } => (header(*size).to_vec(), *size),
        };
        head.resize(head.len() + size as usize, b'x');
        head
    }

    /// How many whole requests `bytes` hold (the trivial responder's count), with the
    /// tail of an unfinished one kept in `partial`.
    pub fn requests_in(&self, bytes: &[u8], partial: &mut Vec<u8>) -> usize {
        match self {
            Protocol::Wire { .. } => bytes.len(),
            Protocol::Http { .. } => {
                partial.extend_from_slice(bytes);
                let mut n = 0;
                while let Some(i) = partial.windows(4).position(|w| w == b"\r\n\r\n") {
                    partial.drain(..i + 4);
                    n += 1;
                }
                n
            }
        }
    }
}

/// Reads one answer at a time off a connection's bytes.
#[derive(Debug)]
pub struct AnswerReader {
    head: Vec<u8>,
    /// Body bytes still to come, once the head is read.
    body_left: Option<u64>,
}

/// What [`AnswerReader::feed`] made of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// The answer is not whole yet; all bytes taken.
    More,
    /// The answer ended with the last byte given.
    Whole,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl AnswerReader {
    pub fn new() -> AnswerReader {
        AnswerReader {
            head: Vec::with_capacity(512),
            body_left: None,
        }
    }

    /// Takes the bytes that arrived. An answer that ends before the bytes do (no
    /// request asked for more), or is not the one expected, is `InvalidData`.
    pub fn feed(&mut self, proto: &Protocol, mut data: &[u8]) -> io::Result<Fed> {
        if self.body_left.is_none() {
            let before = self.head.len();
            self.head.extend_from_slice(data);
            let Some(end) = head_end(proto, &self.head)? else {
                if self.head.len() > 64 * 1024 {
                    return Err(bad("an answer head longer than 64 KiB".into()));
                }
                return Ok(Fed::More);
            };
            let size = check_head(proto, &self.head[..end])?;
            data = &data[end - before..];
            self.head.clear();
            self.body_left = Some(size);
        }
        let left = self.body_left.as_mut().expect("head read");
        if data.len() as u64 > *left {
            return Err(bad(format!(
                "{} bytes beyond the end of the answer",
                data.len() as u64 - *left
            )));
        }
        *left -= data.len() as u64;
        if *left == 0 {
            self.body_left = None;
            return Ok(Fed::Whole);
        }
        Ok(Fed::More)
    }
}

/// Where the head ends in `buf`, once it has.
fn head_end(proto: &Protocol, buf: &[u8]) -> io::Result<Option<usize>> {
    Ok(match proto {
        Protocol::Wire { .. } => (buf.len() >= HDR).then_some(HDR),
        Protocol::Http { .. } => buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4),
    })
}

/// Checks a whole head; returns the body length.
fn check_head(proto: &Protocol, head: &[u8]) -> io::Result<u64> {
    match proto {
        Protocol::Wire { size } => {
            if head != header(*size) {
                return Err(bad("a bad request-response header".into()));
            }
            Ok(*size)
        }
        Protocol::Http { size, .. } => {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(head) {
                Ok(httparse::Status::Complete(_)) => {}
                _ => return Err(bad("an answer that is not HTTP/1.1".into())),
            }
            if r.code != Some(200) {
                return Err(bad(format!("status {:?}, not 200", r.code.unwrap_or(0))));
            }
            let length = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .ok_or_else(|| bad("an answer without Content-Length".into()))?;
            if length != *size {
                return Err(bad(format!("Content-Length {length}, not {size}")));
            }
            Ok(length)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_whole_at_their_last_byte_whatever_the_pieces() {
        for proto in [Protocol::http(1000), Protocol::Wire { size: 1000 }] {
            let answer = proto.answer();
            for piece in [1, 3, 7, 100, answer.len()] {
                let mut r = AnswerReader::new();
                let chunks: Vec<&[u8]> = answer.chunks(piece).collect();
                for (i, c) in chunks.iter().enumerate() {
                    let want = if i + 1 == chunks.len() {
                        Fed::Whole
                    } else {
                        Fed::More
                    };
                    assert_eq!(r.feed(&proto, c).unwrap(), want, "{proto:?} piece {piece}");
                }
                assert!(r.head.is_empty() && r.body_left.is_none());
            }
        }
    }

    #[test]
    fn wrong_answers_are_invalid_data_naming_what_was_wrong() {
        let proto = Protocol::http(10);
        let mut r = AnswerReader::new();
        let e = r
            .feed(
                &proto,
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\n",
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("404"), "{e}");
        let mut r = AnswerReader::new();
        let e = r
            .feed(&proto, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
            .unwrap_err();
        assert!(e.to_string().contains("Content-Length 9"), "{e}");
        let mut r = AnswerReader::new();
        let mut extra = proto.answer();
        extra.push(b'!');
        let e = r.feed(&proto, &extra).unwrap_err();
        assert!(e.to_string().contains("beyond the end"), "{e}");
        let wire = Protocol::Wire { size: 4 };
        let e = AnswerReader::new()
            .feed(&wire, b"RESQ............xxxx")
            .unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
    }

    #[test]
    fn the_responder_counts_requests_split_anywhere() {
        let proto = Protocol::http(1);
        let req = proto.request();
        let three = [req.clone(), req.clone(), req].concat();
        let mut partial = Vec::new();
        let mut n = 0;
        for c in three.chunks(5) {
            n += proto.requests_in(c, &mut partial);
        }
        assert_eq!(n, 3);
        assert!(partial.is_empty());
    }
}
