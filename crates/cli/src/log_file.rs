//! A log destination opened by path (or a standard stream), written in whole lines and
//! reopened by path after SIGUSR1/SIGHUP ([`request_reopen`], from `crate::signals`), so
//! `logrotate` can move the file away: what was buffered goes to the old file, what
//! follows to the new one. The access logs (one writer per thread) and the error log
//! (one shared writer) are built on it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Asks every log writer to open its file again by its path at its next flush.
pub fn request_reopen() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// How many reopens were asked for so far.
fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Where a log's lines go.
#[derive(Debug, Clone)]
pub enum Target {
    Stdout,
    Stderr,
    /// Opened for appending; `flag` names the option the path came from, for errors.
    File {
        path: PathBuf,
        flag: &'static str,
    },
}

const BUFFER: usize = 64 * 1024;

fn open_append(path: &Path, flag: &str) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{flag} {}: {e}", path.display())))
}

impl Target {
    /// `-` is standard output; anything else a file opened for appending (tried here, at
    /// start, so a bad path fails the start naming `flag`).
    pub fn open(flag: &'static str, path: &Path) -> io::Result<Target> {
        if path.as_os_str() == "-" {
            return Ok(Target::Stdout);
        }
        open_append(path, flag)?;
        Ok(Target::File {
            path: path.to_owned(),
            flag,
        })
    }

    /// A writer of its own (one per thread for access logs).
    pub fn writer(&self) -> io::Result<LogWriter> {
        let out: Box<dyn Write + Send> = match self {
            Target::Stdout => Box::new(io::stdout()),
            Target::Stderr => Box::new(io::stderr()),
            Target::File { path, flag } => Box::new(open_append(path, flag)?),
        };
        Ok(LogWriter {
            out: BufWriter::with_capacity(BUFFER, out),
            target: self.clone(),
            generation: generation(),
        })
    }

    /// Whether lines go to a file (not a standard stream).
    pub fn is_file(&self) -> bool {
        matches!(self, Target::File { .. })
    }
}

/// Buffered whole lines to a [`Target`]; the file is opened `O_APPEND`, so several
/// writers' flushes do not interleave within a line.
pub struct LogWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    target: Target,
    /// The reopen requests this writer has followed.
    generation: u64,
}

impl LogWriter {
    /// Buffers `line` and a newline.
    pub fn line(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = self.out.write_fmt(line);
        let _ = self.out.write_all(b"\n");
    }

    /// Writes what was buffered; then, if a reopen was asked for since the last one,
    /// opens the file by its path again. When that fails the old file stays in use and
    /// the error is returned (for the error log to say).
    pub fn flush(&mut self) -> io::Result<()> {
        let _ = self.out.flush();
        let Target::File { path, flag } = &self.target else {
            return Ok(());
        };
        let now = generation();
        if now == self.generation {
            return Ok(());
        }
        self.generation = now;
        let f = open_append(path, flag)?;
        self.out = BufWriter::with_capacity(BUFFER, Box::new(f));
        Ok(())
    }
}
