//! Small transfers into a dead peer fail with EPIPE/ECONNRESET and raise no SIGPIPE in
//! the submitting thread (the inline path sends with MSG_NOSIGNAL before any sendfile).
//! Its own test binary: it installs a process-wide SIGPIPE handler that counts.
mod common;
use common::*;

use ferry_engine::Transfer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigpipe(_: libc::c_int) {
    SIGPIPES.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn small_transfers_to_a_reset_peer_fail_cleanly_without_sigpipe() {
    let _g = serial();
    // SAFETY: installs a handler that only touches an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigpipe as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut()), 0);
    }
    let engine = engine();
    let file = Arc::new(file_with(&pattern(4096, 1)));
    for header in [b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), Vec::new()] {
        for nonblocking in [true, false] {
            let (c, s) = tcp_pair();
            c.set_nonblocking(nonblocking).unwrap();
            reset_on_close(&s);
            drop(s);
            std::thread::sleep(Duration::from_millis(20));
            let c = Arc::new(c);
            // The first write after an RST reports it; repeat until the socket is dead.
            let mut last = None;
            for _ in 0..3 {
                let t = Transfer::new(file.clone(), c.clone())
                    .src_offset(Some(0))
                    .len(Some(4096))
                    .header(header.clone());
                last = Some(engine.submit(t).unwrap().wait());
            }
            let e = last.unwrap().unwrap_err();
            assert!(
                matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)),
                "{e:?}"
            );
        }
    }
    assert_eq!(SIGPIPES.load(Ordering::SeqCst), 0, "a SIGPIPE was raised");
}
