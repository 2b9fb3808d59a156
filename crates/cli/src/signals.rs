//! The signals `ferry serve` and `ferry proxy` answer, as an nginx operator expects:
//!
//! | signal | does |
//! |---|---|
//! | SIGINT, SIGTERM, SIGQUIT | graceful stop: no new connections, those open get `--grace` |
//! | the same again during the grace | stop now: exit 0 at once, connections cut |
//! | SIGUSR1 | reopen the log files (after `logrotate` moved them) |
//! | SIGHUP | the same as SIGUSR1 (there is no configuration file to reload) |
//! | SIGUSR2 | nothing (nginx's binary upgrade has no counterpart here); said on stderr |
//!
//! A stop is a flag the server threads look at every turn (≤ 250 ms); a reopen is a
//! generation counter each log writer compares with its own before it writes.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

static LOG_GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many times the log files were asked to be reopened so far.
pub fn log_generation() -> u64 {
    LOG_GENERATION.load(Ordering::Acquire)
}

/// Installs the handlers: `stop` is raised by the first stop signal; `name` (the
/// threads' prefix, `ferry-serve`) names the program in what is said on stderr.
pub fn install(name: &str, stop: &Arc<AtomicBool>) -> io::Result<()> {
    let who = name.replace('-', " ");
    for sig in [SIGINT, SIGTERM, SIGQUIT] {
        // Handlers run in the order registered: the exit only fires when the flag was
        // already raised by an earlier signal.
        signal_hook::flag::register_conditional_shutdown(sig, 0, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut others = signal_hook::iterator::Signals::new([SIGUSR1, SIGHUP, SIGUSR2])?;
    std::thread::Builder::new()
        .name("ferry-signals".into())
        .spawn(move || {
            for sig in others.forever() {
                match sig {
                    SIGUSR2 => eprintln!("{who}: SIGUSR2: nothing to do (ignored)"),
                    _ => {
                        LOG_GENERATION.fetch_add(1, Ordering::AcqRel);
                        let which = if sig == SIGHUP { "SIGHUP" } else { "SIGUSR1" };
                        eprintln!("{who}: {which}: reopening log files");
                    }
                }
            }
        })?;
    Ok(())
}
