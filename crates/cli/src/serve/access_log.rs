//! The optional access log, in Common Log Format:
//! `host - - [23/Nov/2026:15:30:00 +0000] "GET /a HTTP/1.1" 200 4096`.
//! Each thread buffers its lines and writes them once per batch of events
//! (`crate::log_file`: whole lines per `write`, reopened after SIGUSR1/SIGHUP).

use std::io;
use std::net::IpAddr;

use crate::error_log::{self, Kind, Level};
use crate::log_file::{LogWriter, Target};

pub struct AccessLog {
    out: LogWriter,
}

impl AccessLog {
    /// One writer per thread.
    pub fn new(target: &Target) -> io::Result<AccessLog> {
        Ok(AccessLog {
            out: target.writer()?,
        })
    }

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
        self.out.line(format_args!(
            "{host} - - [{date}] {request} {status} {bytes}"
        ));
    }

    /// Writes what was buffered (end of a batch), reopening the file when asked to.
    pub fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            error_log::say(
                Level::Error,
                Kind::LogFile,
                format_args!("reopening the access log: {e} (still writing the old file)"),
            );
        }
    }
}

/// Quotes and control bytes of a client's text cannot forge log fields.
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
