//! The optional access log, in Common Log Format:
//! `host - - [23/Nov/2026:15:30:00 +0000] "GET /a HTTP/1.1" 200 4096`.
//! Each thread buffers its lines and writes them once per batch of events, whole lines
//! per `write` (the file is opened `O_APPEND`, so threads' batches do not interleave
//! within a line). SIGUSR1 (or SIGHUP) reopens the file by its path: after `logrotate`
//! renamed it, each thread flushes what it buffered into the old file and goes on in a
//! new one (`crate::signals`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::signals;

/// Where log lines go.
#[derive(Debug)]
pub enum Sink {
    Stdout,
    File(PathBuf),
}

const BUFFER: usize = 64 * 1024;

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("--access-log {}: {e}", path.display())))
}

impl Sink {
    /// `-` is standard output; anything else a file opened for appending (checked here,
    /// at start, so a bad path fails the start).
    pub fn open(path: &Path) -> io::Result<Sink> {
        if path.as_os_str() == "-" {
            return Ok(Sink::Stdout);
        }
        open_append(path)?;
        Ok(Sink::File(path.to_owned()))
    }

    /// One writer per thread.
    pub fn writer(&self) -> io::Result<AccessLog> {
        let (out, path): (Box<dyn Write + Send>, _) = match self {
            Sink::Stdout => (Box::new(io::stdout()), None),
            Sink::File(p) => (Box::new(open_append(p)?), Some(p.clone())),
        };
        Ok(AccessLog {
            out: BufWriter::with_capacity(BUFFER, out),
            path,
            generation: signals::log_generation(),
        })
    }
}

pub struct AccessLog {
    out: BufWriter<Box<dyn Write + Send>>,
    /// The file's path, to reopen it; `None` for stdout.
    path: Option<PathBuf>,
    /// The reopen requests this writer has followed (`signals::log_generation`).
    generation: u64,
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

    /// Writes what was buffered (end of a batch); then, if a reopen was asked for since
    /// the last one, opens the file by its path again. When that fails the old file
    /// stays in use and the reason goes to stderr.
    pub fn flush(&mut self) {
        let _ = self.out.flush();
        let Some(path) = &self.path else { return };
        let now = signals::log_generation();
        if now == self.generation {
            return;
        }
        self.generation = now;
        match open_append(path) {
            Ok(f) => self.out = BufWriter::with_capacity(BUFFER, Box::new(f)),
            Err(e) => eprintln!("ferry serve: reopening the log: {e} (still writing the old file)"),
        }
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
