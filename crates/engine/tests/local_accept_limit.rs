//! `LocalEngine::accept` when the process runs out of fds: the `EMFILE` is an event the
//! owner sees, it is the op's last, and the engine does not accept again behind the
//! owner's back; a new `accept` after fds were freed takes the connections that waited
//! in the listen queue. Both backends. Alone in its test binary: it lowers the fd limit
//! of the whole process for a moment.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use ferry_engine::{Event, LocalEngine, OpId};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 24;
/// Fds the process may open beyond those it holds when the limit is lowered.
const HEADROOM: u64 = 8;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// Turns for `d`, collecting the events of `op`.
fn accept_events(ring: &mut LocalEngine, op: OpId, d: Duration) -> Vec<std::io::Result<OwnedFd>> {
    let mut out = Vec::new();
    let end = Instant::now() + d;
    while Instant::now() < end {
        ring.turn(Some(Duration::from_millis(20))).unwrap();
        for ev in ring.events() {
            if let Event::Accepted { op: o, conn } = ev {
                assert_eq!(o, op);
                out.push(conn);
            }
        }
    }
    out
}

#[test]
fn emfile_ends_the_accept_and_it_is_not_rearmed() {
    for b in local_backends() {
        let mut ring = local_ring(b);
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let clients: Vec<TcpStream> = (0..CLIENTS)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let saved = getrlimit(Resource::Nofile);
        let lowered = open_fds() + HEADROOM;
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(lowered),
                maximum: saved.maximum,
            },
        )
        .unwrap();
        let op = ring.accept(listener.clone());
        let events = accept_events(&mut ring, op, Duration::from_millis(300));
        // Raise it again before asserting (a failed assert must not starve the rest).
        let mut accepted: Vec<OwnedFd> = Vec::new();
        let mut errors = Vec::new();
        for e in events {
            match e {
                Ok(fd) => accepted.push(fd),
                Err(e) => errors.push(e),
            }
        }
        let n = accepted.len();
        // Free the fds, still under the lowered limit: a re-armed accept would take more.
        drop(accepted);
        let later = accept_events(&mut ring, op, Duration::from_millis(300));
        setrlimit(Resource::Nofile, saved).unwrap();

        assert!(
            n > 0 && n <= HEADROOM as usize + 2,
            "{b:?}: {n} accepted under a limit of {HEADROOM} more fds"
        );
        assert_eq!(
            errors.len(),
            1,
            "{b:?}: one error ends the op; first ones {:?}",
            &errors[..errors.len().min(3)]
        );
        assert_eq!(
            errors[0].raw_os_error(),
            Some(libc::EMFILE),
            "{b:?}: {:?}",
            errors[0]
        );
        assert!(
            later.is_empty(),
            "{b:?}: the engine accepted again by itself: {} events",
            later.len()
        );

        // The owner's new accept takes the rest from the listen queue.
        let op2 = ring.accept(listener.clone());
        let mut got = 0;
        let start = Instant::now();
        while got < CLIENTS - n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{b:?}: {got} of {} waiting clients accepted",
                CLIENTS - n
            );
            for c in accept_events(&mut ring, op2, Duration::from_millis(50)) {
                c.expect("accepted");
                got += 1;
            }
        }
        ring.cancel(op2);
        let last = accept_events(&mut ring, op2, Duration::from_millis(100));
        assert!(
            matches!(last.as_slice(), [Err(e)] if e.kind() == std::io::ErrorKind::Interrupted),
            "{b:?}: {last:?}"
        );
        drop(clients);
    }
}
