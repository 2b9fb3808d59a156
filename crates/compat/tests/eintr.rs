//! PEP 475: a call interrupted by a signal handler (installed without SA_RESTART, so the
//! kernel returns EINTR) is retried, not reported. Its own test binary: it installs a
//! process-wide SIGUSR1 handler.
mod common;
use common::*;

use ferry_compat::{splice, SpliceFlags};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_blocked_splice_interrupted_by_signals_is_retried_until_data_arrives() {
    let _g = serial();
    // SAFETY: installs a handler that only touches an atomic; sa_flags 0 = no SA_RESTART.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let (r, mut w) = std::io::pipe().unwrap();
    let out = tempfile::tempfile().unwrap();
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let kicker = std::thread::spawn(move || {
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(30));
            // SAFETY: `me` is the test thread, alive until it joins us.
            unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
        }
        std::thread::sleep(Duration::from_millis(30));
        w.write_all(b"after the signals").unwrap();
        w
    });
    // Blocks on the empty pipe; each signal makes the kernel return EINTR.
    let n = splice(&r, &out, 100, None, Some(0), SpliceFlags::empty()).unwrap();
    let w = kicker.join().unwrap();
    assert_eq!(n, 17);
    assert!(
        SIGNALS.load(Ordering::SeqCst) >= 5,
        "the signals were delivered"
    );
    drop(w);
}
