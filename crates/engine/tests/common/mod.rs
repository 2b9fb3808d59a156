//! Shared helpers: real files, pipes, loopback sockets; fd and thread counts.
#![allow(dead_code)]

use ferry_engine::{Backend, Engine};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

static SERIAL: Mutex<()> = Mutex::new(());

/// Every test takes this: fd and thread counts must not see other tests' objects.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Threads of this process that belong to an engine: its own (`ferry-*`) and the
/// kernel's io-wq workers of its rings (`iou-wrk-*`). The test harness's threads come
/// and go on their own, so they are not counted.
pub fn engine_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            comm.starts_with("ferry-") || comm.starts_with("iou-wrk")
        })
        .count()
}

/// Waits up to 2 s for `f` to hold (the kernel releases some objects asynchronously).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed().as_secs() < 2, "timed out waiting for: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The backend the suite runs against: FERRY_BACKEND=blocking selects the blocking
/// backend; otherwise io_uring, which must really work on the test machines.
pub fn expected_backend() -> Backend {
    match std::env::var("FERRY_BACKEND").as_deref() {
        Ok("blocking") => Backend::Blocking,
        _ if cfg!(target_os = "linux") => Backend::IoUring,
        _ => Backend::Blocking,
    }
}

pub fn engine() -> Engine {
    let e = Engine::new().unwrap();
    assert_eq!(
        e.backend(),
        expected_backend(),
        "fallback: {:?}",
        e.fallback_reason()
    );
    e
}

pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn file_with(data: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(data).unwrap();
    f.rewind().unwrap();
    f
}

pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

pub fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    })
}

pub fn reset_on_close(s: &impl std::os::fd::AsRawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a live linger of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(r, 0);
}

/// A tiny executor for the Future impl: parks the thread until woken.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
