//! Errors, timeouts, cancels, drops and bad input: the engine must report, not leak.
mod common;
use common::*;

use ferry_engine::{Backend, Engine, Transfer, TransferError};
use std::io::{ErrorKind, Write};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn peer_reset_mid_transfer_fails_with_the_kernel_error_and_the_engine_keeps_serving() {
    let _g = serial();
    let engine = engine();
    let data = pattern(64 << 20, 1);
    let file = Arc::new(file_with(&data));
    let (c, s) = tcp_pair();
    reset_on_close(&s);
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        let mut n = 0;
        while n < 1 << 20 {
            n += std::io::Read::read(&mut &s, &mut buf).unwrap();
        }
        drop(s); // RST with data unread
        n
    });
    let h = engine
        .submit(Transfer::new(file.clone(), Arc::new(c)).src_offset(Some(0)))
        .unwrap();
    let progress = h.progress();
    let e = h.wait().unwrap_err();
    let read = reader.join().unwrap();
    // The kernel's error, as an OS error: raw_os_error() is the errno, the same on
    // every backend (ECONNRESET or EPIPE depending on which write saw the RST first,
    // before; now always EPIPE for a destination socket).
    assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    assert!(TransferError::of(&e).is_none(), "a plain OS error: {e:?}");
    assert!(progress.is_finished());
    let moved = progress.bytes() as usize;
    assert!(
        moved >= read && moved < data.len(),
        "{moved} moved, {read} read"
    );
    assert_eq!(engine.stats().totals().1, 1);

    // Still serving.
    let (c, s) = tcp_pair();
    let rx = drain(s);
    let c = Arc::new(c);
    let done = engine
        .submit(
            Transfer::new(file, c.clone())
                .src_offset(Some(0))
                .len(Some(100_000)),
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(done.bytes, 100_000);
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(rx.join().unwrap() == data[..100_000]);
}

#[test]
fn a_stalled_receiver_times_out_with_bytes_reported() {
    let _g = serial();
    let engine = engine();
    let file = Arc::new(file_with(&pattern(64 << 20, 2)));
    for nonblocking in [true, false] {
        let (c, _s) = tcp_pair(); // nobody reads _s
        c.set_nonblocking(nonblocking).unwrap();
        let t0 = std::time::Instant::now();
        let e = engine
            .submit(
                Transfer::new(file.clone(), Arc::new(c))
                    .src_offset(Some(0))
                    .timeout(Duration::from_millis(300)),
            )
            .unwrap()
            .wait()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:?}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "timeout took {:?}",
            t0.elapsed()
        );
        let te = TransferError::of(&e).unwrap();
        assert!(te.bytes > 0, "some bytes filled the socket buffers first");
    }
    assert_eq!(engine.stats().in_flight, 0);
}

#[test]
fn an_idle_proxy_source_times_out() {
    let _g = serial();
    let engine = engine();
    for nonblocking in [true, false] {
        let (_client, proxy_in) = tcp_pair();
        let (proxy_out, _sink) = tcp_pair();
        proxy_in.set_nonblocking(nonblocking).unwrap();
        let e = engine
            .submit(
                Transfer::new(Arc::new(proxy_in), Arc::new(proxy_out))
                    .timeout(Duration::from_millis(200)),
            )
            .unwrap()
            .wait()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TimedOut);
    }
}

#[test]
fn cancel_interrupts_a_running_transfer() {
    let _g = serial();
    let engine = engine();
    let file = Arc::new(file_with(&pattern(64 << 20, 3)));
    let (c, _s) = tcp_pair();
    let h = engine
        .submit(Transfer::new(file, Arc::new(c)).src_offset(Some(0)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!h.is_finished());
    h.cancel();
    h.cancel(); // idempotent
    let e = h.wait().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Interrupted, "{e:?}");
    assert_eq!(engine.stats().in_flight, 0);
    let p = engine.stats().pipes;
    assert_eq!(
        p.outstanding, 0,
        "the pipe went back or was discarded: {p:?}"
    );
}

#[test]
fn cancelled_pipes_are_never_reused_dirty() {
    let _g = serial();
    let engine = Engine::builder().pipe_pool_capacity(4).build().unwrap();
    assert_eq!(engine.backend(), expected_backend());
    let file = Arc::new(file_with(&pattern(32 << 20, 4)));
    for _ in 0..3 {
        let (c, _s) = tcp_pair();
        let h = engine
            .submit(Transfer::new(file.clone(), Arc::new(c)).src_offset(Some(0)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        h.cancel();
        assert_eq!(h.wait().unwrap_err().kind(), ErrorKind::Interrupted);
    }
    // Fresh transfers through the pool deliver exactly their own bytes.
    for i in 0..4 {
        let data = pattern(3 << 20, 100 + i);
        let (c, s) = tcp_pair();
        let rx = drain(s);
        let c = Arc::new(c);
        engine
            .submit(Transfer::new(Arc::new(file_with(&data)), c.clone()).src_offset(Some(0)))
            .unwrap()
            .wait()
            .unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(
            rx.join().unwrap() == data,
            "stale bytes from a cancelled transfer"
        );
    }
}

#[test]
fn dropping_the_engine_cancels_waits_for_the_kernel_and_frees_everything() {
    let _g = serial();
    let fds0 = fd_count();
    assert_eq!(engine_threads(), 0, "no engine alive before");
    let engine = engine();
    // std names a thread from inside it: wait until the engine's threads have started.
    eventually("engine threads running", || engine_threads() > 0);
    let file = Arc::new(file_with(&pattern(64 << 20, 5)));
    let mut handles = Vec::new();
    let mut peers = Vec::new();
    let mut dsts = Vec::new();
    for i in 0..6 {
        let (c, s) = tcp_pair(); // nobody reads: transfers stay in flight
        if i % 2 == 0 {
            c.set_nonblocking(true).unwrap();
        }
        let c = Arc::new(c);
        dsts.push(Arc::downgrade(&c));
        handles.push(
            engine
                .submit(Transfer::new(file.clone(), c).src_offset(Some(0)))
                .unwrap(),
        );
        peers.push(s);
    }
    // An idle proxy too.
    let (client, pin) = tcp_pair();
    let (pout, sink) = tcp_pair();
    handles.push(
        engine
            .submit(Transfer::new(Arc::new(pin), Arc::new(pout)))
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(100));
    // Our copies are gone; the engine alone keeps the sockets open.
    assert!(
        dsts.iter().all(|w| w.upgrade().is_some()),
        "engine holds the fds"
    );
    assert!(handles.iter().all(|h| !h.is_finished()));
    drop(engine);
    for h in handles {
        let e = h.wait().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted, "{e:?}");
        assert!(e.to_string().contains("shut down"), "{e}");
    }
    assert!(
        dsts.iter().all(|w| w.upgrade().is_none()),
        "engine released the fds"
    );
    drop((peers, client, sink, file));
    eventually("fds back to baseline", || fd_count() == fds0);
    eventually("engine and io-wq threads gone", || engine_threads() == 0);
}

#[test]
fn bad_input_is_invalid_input_at_submit_naming_the_argument() {
    let _g = serial();
    let fds0 = fd_count();
    let engine = engine();
    let (c, s) = tcp_pair();
    let (c, s) = (Arc::new(c), Arc::new(s));
    let file = Arc::new(file_with(b"abc"));
    let check = |t: Transfer, arg: &str| {
        let e = engine.submit(t).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains(arg), "{e} should name {arg}");
    };
    check(
        Transfer::new(s.clone(), c.clone()).src_offset(Some(0)),
        "src_offset",
    );
    check(
        Transfer::new(file.clone(), c.clone()).src_offset(Some(u64::MAX)),
        "src_offset",
    );
    check(
        Transfer::new(file.clone(), c.clone())
            .src_offset(Some(1))
            .len(Some(i64::MAX as u64)),
        "len",
    );
    let dir = tempfile::tempdir().unwrap();
    check(
        Transfer::new(
            Arc::new(std::fs::File::open(dir.path()).unwrap()),
            c.clone(),
        ),
        "src",
    );
    let wo = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("wo"))
        .unwrap();
    check(Transfer::new(Arc::new(wo), c.clone()), "src");
    let mut app = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.path().join("app"))
        .unwrap();
    app.write_all(b"x").unwrap();
    check(Transfer::new(file.clone(), Arc::new(app)), "dst");
    check(
        Transfer::new(
            file.clone(),
            Arc::new(std::fs::File::open(dir.path().join("wo")).unwrap()),
        ),
        "dst",
    );
    let devnull = Arc::new(std::fs::File::open("/dev/null").unwrap());
    check(Transfer::new(devnull, c.clone()), "src");
    let f2 = file.clone();
    check(Transfer::new(file, f2), "dst");
    assert_eq!(engine.stats().in_flight, 0);
    drop((engine, c, s, dir));
    eventually("fds back", || fd_count() == fds0);
}

#[test]
fn explicit_backends_and_the_env_override() {
    let _g = serial();
    let b = Engine::builder()
        .backend(Backend::Blocking)
        .build()
        .unwrap();
    assert_eq!(b.backend(), Backend::Blocking);
    if io_uring_compiled() {
        let u = Engine::builder().backend(Backend::IoUring).build().unwrap();
        assert_eq!(u.backend(), Backend::IoUring);
    } else {
        // The portable build: asking for io_uring is an error, Auto is blocking.
        let e = Engine::builder()
            .backend(Backend::IoUring)
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
        let a = Engine::builder().backend(Backend::Auto).build().unwrap();
        assert_eq!(a.backend(), Backend::Blocking);
        if std::env::var_os("FERRY_BACKEND").is_none() {
            assert!(a.fallback_reason().is_some());
        }
    }
}

const CHILD: &str = "FERRY_ENGINE_SECCOMP_CHILD";

/// Installs a seccomp filter making io_uring_setup fail with EPERM (as Docker's default
/// profile does) for this thread and the threads it starts afterwards.
fn deny_io_uring_setup() {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7;
    let stmt = |code: u16, k: u32| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: 0x15,
        jt,
        jf,
        k,
    };
    let filter = [
        stmt(0x20, 4), // ld arch
        jeq(ARCH, 1, 0),
        stmt(0x06, 0x7fff_0000), // allow
        stmt(0x20, 0),           // ld nr
        jeq(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(0x06, 0x0005_0000 | libc::EPERM as u32), // errno EPERM
        stmt(0x06, 0x7fff_0000),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: prctl with a valid sock_fprog that lives for the call.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, 2, &prog as *const libc::sock_fprog),
            0
        );
    }
}

#[test]
fn auto_falls_back_when_seccomp_denies_io_uring_and_explicit_io_uring_errors() {
    let _g = serial();
    if !io_uring_compiled() {
        eprintln!("SKIPPED: io_uring is not compiled in this build (ferry_force_fallback)");
        return;
    }
    if std::env::var_os(CHILD).is_none() {
        // Run this test again in a child process under the filter.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "auto_falls_back_when_seccomp_denies_io_uring_and_explicit_io_uring_errors",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env_remove("FERRY_BACKEND")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "child failed:\n{text}"
        );
        assert!(text.contains("fallback: io_uring unavailable"), "{text}");
        return;
    }
    deny_io_uring_setup();
    let e = Engine::builder()
        .backend(Backend::IoUring)
        .build()
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e:?}");
    let engine = Engine::new().unwrap();
    assert_eq!(engine.backend(), Backend::Blocking);
    let reason = engine.fallback_reason().unwrap();
    eprintln!("fallback: {reason}");
    // and it works
    let data = pattern(1 << 20, 6);
    let (r, w) = std::io::pipe().unwrap();
    let rx = drain(r);
    let done = engine
        .submit(Transfer::new(Arc::new(file_with(&data)), Arc::new(w)).src_offset(Some(0)))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(done.bytes, data.len() as u64);
    assert!(rx.join().unwrap() == data);
}
