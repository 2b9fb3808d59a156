//! The process's file descriptor budget, for `ferry serve` and `ferry proxy`.
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard one (as Go's runtime and
//! HAProxy do: the soft 1024 of most shells is a relic of `select`, which ferry does not
//! use), the fds already open are counted, and the default `--max-connections` is what
//! the rest holds at so many fds a connection, so the connection limit comes before
//! `EMFILE`. Where it does not (a lower `--max-connections` given by hand is fine; a
//! higher one, other threads' fds, a limit lowered from outside), accepting pauses
//! (`crate::acceptor`). The open fds are counted through one directory fd of
//! `/proc/self/fd` kept from the start, so they can be counted while none is left.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::mem::MaybeUninit;
use std::sync::{Mutex, OnceLock};

use rustix::fs::RawDir;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Fds a server thread holds besides its connections: its ring (or epoll) fd, eventfd,
/// listener, a few pooled pipes kept idle between transfers.
const PER_THREAD: u64 = 16;
/// Fds kept free for everything else (log files reopened, the stdio) and the reserve.
const RESERVE: u64 = 32;
/// Fds held open on `/dev/null` while accepting, let go when the process runs out, so
/// that the connections already open can still open a file or a pipe.
const SPARE_FDS: usize = 16;

/// The fd limit as the program found and left it.
#[derive(Debug, Clone, Copy)]
pub struct FdBudget {
    /// The soft `RLIMIT_NOFILE` in force.
    pub limit: u64,
    /// The soft limit before it was raised, when it was.
    pub raised_from: Option<u64>,
    /// Fds open when the budget was taken.
    pub in_use: u64,
}

impl FdBudget {
    /// Raises the soft fd limit to the hard one (best effort) and counts the open fds.
    pub fn take() -> FdBudget {
        let before = limit().unwrap_or(u64::MAX);
        let limit = raise_soft_limit();
        let raised_from = (limit > before).then_some(before);
        hold_spares();
        let in_use = open_fds().unwrap_or(3) as u64;
        FdBudget {
            limit,
            raised_from,
            in_use,
        }
    }

    /// Fds left for connections (and their files) by `threads` server threads.
    pub fn free(&self, threads: usize) -> u64 {
        self.limit
            .saturating_sub(self.in_use)
            .saturating_sub(RESERVE)
            .saturating_sub(PER_THREAD * threads as u64)
    }

    /// The most connections `free` holds at `per_connection` fds each (at least 1).
    pub fn connections(&self, threads: usize, shared: u64, per_connection: u64) -> u64 {
        (self.free(threads).saturating_sub(shared) / per_connection.max(1)).max(1)
    }

    /// `"fds: limit L (raised from S), N in use"` for the ready line.
    pub fn describe(&self) -> String {
        let raised = self
            .raised_from
            .map_or_else(String::new, |s| format!(" (raised from {s})"));
        format!("fd limit {}{raised}, {} in use", self.limit, self.in_use)
    }
}

/// Says in the error log when `--max-connections` asks for more than the fd budget holds.
pub fn warn_over_budget(asked: u64, holds: u64) {
    if asked > holds {
        crate::error_log::say(
            crate::error_log::Level::Warn,
            crate::error_log::Kind::Limits,
            format_args!(
                "--max-connections {asked} is more than the fd limit holds (about {holds}); \
                 at the limit accepting pauses until connections close"
            ),
        );
    }
}

/// Raises the soft fd limit to the hard one (best effort); returns the soft limit then
/// in force.
pub fn raise_soft_limit() -> u64 {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // Linux has no unlimited fd count: an infinite hard limit means `fs.nr_open`.
    let hard = maximum.or_else(nr_open);
    let limit = current.or(hard).unwrap_or(1024);
    match hard.filter(|&h| h > limit) {
        Some(hard)
            if setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum,
                },
            )
            .is_ok() =>
        {
            hard
        }
        _ => limit,
    }
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The soft fd limit in force now.
pub fn limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// The directory `/proc/self/fd`, opened once (when the first count is asked, at start).
fn fd_dir() -> Option<&'static Mutex<File>> {
    static DIR: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    DIR.get_or_init(|| File::open("/proc/self/fd").ok().map(Mutex::new))
        .as_ref()
}

/// How many fds the process has open now (`None` without `/proc`). Works at the
/// limit: it reads the directory through the fd kept from the first call.
pub fn open_fds() -> Option<usize> {
    let mut dir = fd_dir()?.lock().ok()?;
    dir.seek(SeekFrom::Start(0)).ok()?;
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut entries = RawDir::new(&*dir, &mut buf);
    let mut n = 0usize;
    while let Some(e) = entries.next() {
        let e = e.ok()?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            n += 1;
        }
    }
    Some(n)
}

fn spares() -> &'static Mutex<Vec<File>> {
    static SPARES: OnceLock<Mutex<Vec<File>>> = OnceLock::new();
    SPARES.get_or_init(|| Mutex::new(Vec::with_capacity(SPARE_FDS)))
}

/// Tops the spare fds up; false when the process has not that many fds free (accepting
/// must wait then).
pub fn hold_spares() -> bool {
    let Ok(mut s) = spares().lock() else {
        return false;
    };
    while s.len() < SPARE_FDS {
        match File::open("/dev/null") {
            Ok(f) => s.push(f),
            Err(_) => return false,
        }
    }
    true
}

/// Closes the spare fds: the process ran out, and what is open must go on.
pub fn release_spares() {
    if let Ok(mut s) = spares().lock() {
        s.clear();
    }
}

/// Whether `e` says the process or the system ran out of fds or kernel memory.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// `"too many open files (N in use, limit L)"` and the like: what an accept error
/// means for an operator.
pub fn explain(e: &io::Error) -> String {
    let in_use = || {
        let n = open_fds().map_or_else(|| "?".into(), |n| n.to_string());
        let l = limit().map_or_else(|| "none".into(), |l| l.to_string());
        format!("{n} in use, limit {l}")
    };
    match e.raw_os_error() {
        Some(libc::EMFILE) => format!("too many open files ({})", in_use()),
        Some(libc::ENFILE) => format!(
            "too many open files in the system (fs.file-max; this process: {})",
            in_use()
        ),
        Some(libc::ENOBUFS) | Some(libc::ENOMEM) => format!("out of kernel memory ({e})"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counting tests see each other's fds: one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn counts_the_fds_it_opens() {
        let _g = SERIAL.lock();
        let before = open_fds().expect("/proc/self/fd");
        let files: Vec<File> = (0..200).map(|_| tempfile::tempfile().unwrap()).collect();
        // Other tests of this binary open and close fds at the same time (a few dozen
        // at most): 200 of our own stand out of that noise in both directions.
        let during = open_fds().unwrap();
        assert!(
            during >= before + 150,
            "{before} → {during} with 200 more open"
        );
        drop(files);
        let after = open_fds().unwrap();
        assert!(
            after + 150 <= during,
            "{during} → {after} after closing 200"
        );
    }

    #[test]
    fn spares_are_let_go_and_taken_again() {
        let _g = SERIAL.lock();
        assert!(hold_spares());
        let held = open_fds().unwrap();
        release_spares();
        let released = open_fds().unwrap();
        assert!(hold_spares());
        assert!(released < held, "{held} → {released}");
        assert_eq!(spares().lock().unwrap().len(), SPARE_FDS);
    }

    #[test]
    fn the_budget_leaves_the_reserve_and_divides() {
        let b = FdBudget {
            limit: 1024,
            raised_from: None,
            in_use: 24,
        };
        // 1024 - 24 - 32 - 2 × 16 = 936
        assert_eq!(b.free(2), 936);
        assert_eq!(b.connections(2, 136, 4), 200);
        // Nothing left still allows one connection (accepting pauses at the limit).
        assert_eq!(b.connections(64, 0, 2), 1);
        assert!(b.describe().contains("fd limit 1024, 24 in use"));
    }

    #[test]
    fn explains_the_errors_of_accept() {
        let m = explain(&io::Error::from_raw_os_error(libc::EMFILE));
        assert!(m.starts_with("too many open files ("), "{m}");
        assert!(m.contains(" in use, limit "), "{m}");
        let m = explain(&io::Error::from_raw_os_error(libc::ENFILE));
        assert!(m.contains("in the system"), "{m}");
        let m = explain(&io::Error::from_raw_os_error(libc::ENOBUFS));
        assert!(m.starts_with("out of kernel memory"), "{m}");
    }
}
