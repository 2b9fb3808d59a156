//! The error log of `ferry serve` and `ferry proxy` (stderr unless `--error-log FILE`):
//! start and stop, signals, accept limits, backends going down and up, connect
//! failures, listener and log-file errors. One line each:
//!
//! `2026-12-06T03:01:20.123Z ferry proxy[4242] warn: backend 127.0.0.1:9 down: …`
//!
//! Each [`Kind`] (each backend apart) is written at most once a second: lines of a kind
//! within a second of its last one are held back, the latest of them is written when
//! the second is over (at the next [`tick`], which every server thread calls once per
//! turn) with `[+N suppressed]` counting the others, so a storm costs one line a second
//! and the last state (a backend that came back) is never lost. Start and stop lines
//! are never held back. The hot path pays nothing: a server thread's [`tick`] is one
//! atomic load while nothing is held back.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::log_file::{LogWriter, Target};

/// At most one line of a kind per this long.
pub const EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Notice,
    Warn,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Notice => "notice",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// What a line is about; the unit of rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Start, stop, a thread that died: never held back.
    Lifecycle,
    /// A signal received (reopen, ignored).
    Signal,
    /// Accepting paused: out of fds or memory.
    AcceptPaused,
    /// Connections closed at once over `--max-connections`.
    Refused,
    /// Backend `i` went down or came back.
    Backend(usize),
    /// A connect to a backend failed.
    Connect,
    /// A listener failed.
    Listener,
    /// A log file could not be reopened or written.
    LogFile,
    /// A limit asked for that the machine does not hold.
    Limits,
    /// A client's TLS handshake or records failed (not TLS, a bad handshake).
    Tls,
}

struct Held {
    /// When the last line of this kind was written.
    last: Instant,
    /// Lines not written since then; the latest is `latest`.
    suppressed: u64,
    latest: Option<String>,
}

struct ErrorLog {
    program: &'static str,
    out: LogWriter,
    held: HashMap<Kind, Held>,
}

static LOG: OnceLock<Mutex<ErrorLog>> = OnceLock::new();
/// Whether the log is a file (not a standard stream).
static TO_FILE: AtomicBool = AtomicBool::new(false);
/// Set while some kind holds back a line: `tick` has something to do.
static HOLDING: AtomicBool = AtomicBool::new(false);

/// Sends the log to `path` (stderr when `None`; `-` is stdout) under the name
/// `program` (`ferry serve`). Lines said before go to stderr as `ferry`.
pub fn init(program: &'static str, path: Option<&Path>) -> io::Result<()> {
    let target = match path {
        Some(p) => Target::open("--error-log", p)?,
        None => Target::Stderr,
    };
    TO_FILE.store(target.is_file(), Ordering::Relaxed);
    let log = ErrorLog {
        program,
        out: target.writer()?,
        held: HashMap::new(),
    };
    LOG.set(Mutex::new(log))
        .map_err(|_| io::Error::other("the error log was set up twice"))
}

/// Whether `init` sent the log to a file: what is said on stderr at exit belongs in
/// it too.
pub fn is_file() -> bool {
    TO_FILE.load(Ordering::Relaxed)
}

/// A start or stop line: to the error log when it is a file; on stderr (the
/// default) the ready line on stdout already says it, as nginx's default level keeps
/// its notices out of its log.
pub fn lifecycle(message: impl fmt::Display) {
    if is_file() {
        say(Level::Notice, Kind::Lifecycle, message);
    }
}

/// Writes one line of `kind`, or holds it back when a line of that kind was written
/// within the last second.
pub fn say(level: Level, kind: Kind, message: impl fmt::Display) {
    let Some(log) = LOG.get() else {
        eprintln!("{} ferry {level}: {message}", timestamp());
        return;
    };
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    if log.say(Instant::now(), kind, format!("{level}: {message}")) {
        HOLDING.store(true, Ordering::Release);
    }
}

/// Writes the lines held back whose second is over. Cheap when nothing is held.
pub fn tick() {
    if HOLDING.load(Ordering::Acquire) {
        release(false);
    }
}

/// Writes every line still held back (at exit, before the last line).
pub fn finish() {
    release(true);
}

fn release(all: bool) {
    let Some(log) = LOG.get() else { return };
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    let still = log.release(Instant::now(), all);
    HOLDING.store(still, Ordering::Release);
}

impl ErrorLog {
    /// Writes `line` or holds it back; true when it was held back.
    fn say(&mut self, now: Instant, kind: Kind, line: String) -> bool {
        if kind == Kind::Lifecycle {
            self.write(&line, 0);
            return false;
        }
        let suppressed = match self.held.get_mut(&kind) {
            Some(h) if now.duration_since(h.last) < EVERY => {
                h.suppressed += 1;
                h.latest = Some(line);
                return true;
            }
            Some(h) => {
                // A held line no tick wrote yet is replaced by this later one.
                h.last = now;
                h.latest = None;
                std::mem::take(&mut h.suppressed)
            }
            None => {
                let first = Held {
                    last: now,
                    suppressed: 0,
                    latest: None,
                };
                self.held.insert(kind, first);
                0
            }
        };
        self.write(&line, suppressed);
        false
    }

    /// Writes the held lines whose second is over (all of them with `all`); true while
    /// some are still held.
    fn release(&mut self, now: Instant, all: bool) -> bool {
        let mut due = Vec::new();
        let mut still = false;
        for h in self.held.values_mut() {
            let Some(line) = h.latest.take() else {
                continue;
            };
            if all || now.duration_since(h.last) >= EVERY {
                // The line written is one of those held back: the others are counted.
                due.push((line, h.suppressed - 1));
                h.last = now;
                h.suppressed = 0;
            } else {
                h.latest = Some(line);
                still = true;
            }
        }
        for (line, suppressed) in due {
            self.write(&line, suppressed);
        }
        still
    }

    fn write(&mut self, line: &str, suppressed: u64) {
        let (ts, program, pid) = (timestamp(), self.program, std::process::id());
        if suppressed > 0 {
            self.out.line(format_args!(
                "{ts} {program}[{pid}] {line} [+{suppressed} suppressed]"
            ));
        } else {
            self.out.line(format_args!("{ts} {program}[{pid}] {line}"));
        }
        if let Err(e) = self.out.flush() {
            // Said in the old file, which is still written.
            self.out.line(format_args!(
                "{ts} {program}[{pid}] error: reopening the error log: {e} (still writing this file)"
            ));
            let _ = self.out.flush();
        }
    }
}

/// UTC with milliseconds, RFC 3339.
fn timestamp() -> impl fmt::Display {
    humantime::format_rfc3339_millis(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let t = timestamp().to_string();
        assert_eq!(t.len(), "2026-12-06T03:01:20.123Z".len(), "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }

    #[test]
    fn a_storm_of_one_kind_is_one_line_a_second_and_its_last_line_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error.log");
        let target = Target::open("--error-log", &path).unwrap();
        let mut log = ErrorLog {
            program: "ferry test",
            out: target.writer().unwrap(),
            held: HashMap::new(),
        };
        let t = Instant::now();
        let ms = |n: u64| t + Duration::from_millis(n);
        assert!(!log.say(t, Kind::Backend(0), "warn: backend a down".into()));
        for i in 1..=5 {
            assert!(log.say(ms(100 * i), Kind::Backend(0), format!("warn: flap {i}")));
        }
        // Another kind, and a start line, are not held back by that storm.
        assert!(!log.say(ms(600), Kind::Backend(1), "warn: backend b down".into()));
        assert!(!log.say(ms(600), Kind::Lifecycle, "notice: stopping".into()));
        assert!(log.release(ms(900), false), "not a second yet: still held");
        assert!(!log.release(ms(1000), false));
        // A quiet second later a line is written at once, with nothing to count.
        assert!(!log.say(ms(2500), Kind::Backend(0), "notice: backend a up".into()));
        // Held and never released by a tick: the next line past the second counts it.
        assert!(!log.say(ms(2600), Kind::Connect, "warn: c1".into()));
        assert!(log.say(ms(2700), Kind::Connect, "warn: c2".into()));
        assert!(!log.say(ms(3700), Kind::Connect, "warn: c3".into()));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let tails: Vec<&str> = lines
            .iter()
            .map(|l| l.split_once("] ").expect("program[pid]").1)
            .collect();
        assert_eq!(
            tails,
            [
                "warn: backend a down",
                "warn: backend b down",
                "notice: stopping",
                "warn: flap 5 [+4 suppressed]",
                "notice: backend a up",
                "warn: c1",
                "warn: c3 [+1 suppressed]",
            ]
        );
        assert!(lines[0].contains(&format!("ferry test[{}] ", std::process::id())));
    }
}
