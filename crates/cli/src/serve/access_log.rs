//! The optional access log, in Common Log Format:
//! `host - - [23/Nov/2026:15:30:00 +0000] "GET /a HTTP/1.1" 200 4096`.
//! Each thread buffers its lines and writes them once per batch of events, whole lines
//! per `write` (the file is opened `O_APPEND`, so threads' batches do not interleave
//! within a line).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

/// Where log lines go.
#[derive(Debug)]
pub enum Sink {
    Stdout,
    File(File),
}

impl Sink {
    /// `-` is standard output; anything else a file opened for appending.
    pub fn open(path: &Path) -> io::Result<Sink> {
        if path.as_os_str() == "-" {
            return Ok(Sink::Stdout);
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Sink::File)
            .map_err(|e| io::Error::new(e.kind(), format!("--access-log {}: {e}", path.display())))
    }

    /// One writer per thread.
    pub fn writer(&self) -> io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match self {
            Sink::Stdout => Box::new(io::stdout()),
            Sink::File(f) => Box::new(f.try_clone()?),
        };
        Ok(AccessLog {
            out: BufWriter::with_capacity(64 * 1024, out),
        })
    }
}

pub struct AccessLog {
    out: BufWriter<Box<dyn Write + Send>>,
}

impl AccessLog {
    /// Buffers one line; `request` is the request line, or `None` when none was parsed.
    pub fn line(
        &mut self,
        host: Option<IpAddr>,
        date: &str,
        request: Option<&str>,
        status: u16,
        bytes: u64,
    ) {
        let host = host.map_or_else(|| "-".to_owned(), |h| h.to_string());
        let request = request.map_or_else(|| "-".to_owned(), |r| format!("\"{}\"", escape(r)));
        let _ = writeln!(self.out, "{host} - - [{date}] {request} {status} {bytes}");
    }

    /// Writes what was buffered (end of a batch).
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }
}

/// Quotes and control bytes of a client's request line cannot forge log fields.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
