//! Starting a `ferry serve`/`ferry proxy` child and reading its ready line, and giving
//! the test process the fds its clients need.
#![allow(dead_code)] // each test binary uses a part of these helpers

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Spawns `cmd` (stdout piped) and reads its ready line: the child, the line, and the
/// address after `listening on ` (an `http://` in front is dropped).
pub fn spawn_ready(mut cmd: Command) -> (Child, String, SocketAddr) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .map(|s| s.trim_start_matches("http://"))
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .parse()
        .unwrap();
    (child, banner, addr)
}

/// Raises this process's soft fd limit to the hard one; fails the test, saying why,
/// when that is fewer than `need`.
pub fn raise_fd_limit(need: u64) {
    let Rlimit { maximum, .. } = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: maximum,
            maximum,
        },
    );
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        have >= need,
        "this test needs {need} fds of its own; the hard limit is {have}"
    );
}
