//! Socket activation (`LISTEN_FDS`/`LISTEN_PID`, as systemd and `systemfd` pass them):
//! listening sockets opened by a service manager and handed to the process at fds
//! 3, 4, … The manager keeps them open across restarts, so a new process can start
//! while the old one drains and no connection is refused meanwhile: the kernel queues
//! them in the socket's backlog until one of the two accepts. docs/operations.md.

use std::io;
use std::net::TcpListener;

use socket2::{SockRef, Type};

/// First fd of the protocol (after stdin, stdout, stderr).
const FIRST: i32 = 3;

/// The listening TCP sockets the service manager passed, if it passed any to this
/// process. The variables are removed so nothing started later takes them for its own.
pub fn inherited() -> io::Result<Option<Vec<TcpListener>>> {
    let (Ok(pid), Ok(count)) = (std::env::var("LISTEN_PID"), std::env::var("LISTEN_FDS")) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None); // meant for another process (a parent's, passed on by mistake)
    }
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
    let count: i32 = count
        .trim()
        .parse()
        .ok()
        .filter(|&n| (1..=64).contains(&n))
        .ok_or_else(|| bad(format!("LISTEN_FDS={count:?}: expected 1 to 64 sockets")))?;
    // Called at start, before the server threads exist (nothing reads the environment
    // concurrently).
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut out = Vec::new();
    for fd in FIRST..FIRST + count {
        let owned = crate::sys::take_inherited(fd)
            .ok_or_else(|| bad(format!("LISTEN_FDS={count}: fd {fd} is not open")))?;
        let sock = SockRef::from(&owned);
        let listening = sock.r#type().ok() == Some(Type::STREAM)
            && sock.is_listener().unwrap_or(false)
            && sock.local_addr().ok().and_then(|a| a.as_socket()).is_some();
        if !listening {
            return Err(bad(format!(
                "LISTEN_FDS: fd {fd} is not a listening TCP socket"
            )));
        }
        sock.set_cloexec(true)?;
        // O_NONBLOCK belongs to the open file description, which every process given
        // the socket shares: one that switched it back to blocking (the engine restores
        // what it found) would leave another's readiness loop blocked in accept() on a
        // connection someone else took. Non-blocking once, here, for all of them.
        sock.set_nonblocking(true)?;
        out.push(TcpListener::from(owned));
    }
    Ok(Some(out))
}
