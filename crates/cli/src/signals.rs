//! The signals `ferry serve` and `ferry proxy` answer, as an nginx operator expects:
//!
//! | signal | does |
//! |---|---|
//! | SIGINT, SIGTERM, SIGQUIT | graceful stop: no new connections, those open get `--grace` |
//! | the same again during the grace | stop now: exit 0 at once, connections cut |
//! | SIGUSR1 | reopen the log files (after `logrotate` moved them) |
//! | SIGHUP | the same as SIGUSR1 (there is no configuration file to reload) |
//! | SIGUSR2 | nothing (nginx's binary upgrade has no counterpart here); said in the error log |
//!
//! A stop is a flag the server threads look at every turn (≤ 250 ms); a reopen is
//! `crate::log_file::request_reopen`, which every log writer follows at its next flush.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

use crate::error_log::{say, Kind, Level};

/// Installs the handlers: `stop` is raised by the first stop signal. Every signal is
/// said in the error log.
pub fn install(stop: &Arc<AtomicBool>) -> io::Result<()> {
    for sig in [SIGINT, SIGTERM, SIGQUIT] {
        // Handlers run in the order registered: the exit only fires when the flag was
        // already raised by an earlier signal.
        signal_hook::flag::register_conditional_shutdown(sig, 0, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut all =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGHUP, SIGUSR2])?;
    std::thread::Builder::new()
        .name("ferry-signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in all.forever() {
                let name = signal_name(sig);
                match sig {
                    SIGUSR2 => say(Level::Notice, Kind::Signal, format_args!("{name}: nothing to do (ignored)")),
                    SIGUSR1 | SIGHUP => {
                        crate::log_file::request_reopen();
                        say(Level::Notice, Kind::Signal, format_args!("{name}: reopening log files"));
                    }
                    // A second one exits in its handler, before this thread hears of it.
                    _ if !stopping => {
                        stopping = true;
                        say(
                            Level::Notice,
                            Kind::Lifecycle,
                            format_args!("{name}: stopping; open connections get the grace period (the same signal again: stop now)"),
                        );
                    }
                    _ => {}
                }
            }
        })?;
    Ok(())
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGQUIT => "SIGQUIT",
        SIGUSR1 => "SIGUSR1",
        SIGHUP => "SIGHUP",
        SIGUSR2 => "SIGUSR2",
        _ => "a signal",
    }
}
