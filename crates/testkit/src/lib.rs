//! Helpers shared by ferry's integration tests: real files, pipes and loopback sockets,
//! fd counts, a serialising lock and a tiny executor. Not published.
#![allow(missing_docs)]

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Every test of a binary takes this lock: tests that count fds in /proc/self/fd (or
/// threads) must not see the objects of tests running beside them in the process.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Waits up to 2 s for `f` to hold (the kernel releases some objects asynchronously).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Deterministic bytes that differ at every offset (a wrong offset or a stale byte shows).
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

/// A temp file holding `data`, positioned at 0.
pub fn file_with(data: &[u8]) -> File {
    let mut f = tempfile::tempfile().expect("tempfile");
    f.write_all(data).expect("write");
    f.rewind().expect("rewind");
    f
}

/// A connected loopback TCP pair: (client, server).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (s, _) = l.accept().expect("accept");
    (c, s)
}

/// Reads `r` to EOF on a thread.
pub fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        r.read_to_end(&mut v).expect("read_to_end");
        v
    })
}

/// Reads exactly `n` bytes.
pub fn read_n(mut r: impl Read, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    r.read_exact(&mut v).expect("read_exact");
    v
}

/// The errno of an OS error (panics on any other error).
pub fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error()
        .unwrap_or_else(|| panic!("expected an OS error, got {e:?}"))
}

/// SO_LINGER {on, 0}: closing the socket sends RST instead of FIN.
pub fn reset_on_close(s: &impl std::os::fd::AsRawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a live linger struct of the size we pass.
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

/// A tiny executor for Futures: parks the thread until woken.
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

/// Whether the kernel has `cachestat(2)` (Linux 6.5): without it the engine cannot
/// tell a cached file body from one that must wait for the disk.
pub fn has_cachestat() -> bool {
    let f = tempfile::tempfile().expect("tempfile");
    use std::os::fd::AsRawFd;
    let range = [0u64, 0u64];
    let mut st = [0u64; 5];
    // SAFETY: both arrays are live and laid out as the kernel's structs; flags are 0.
    let r = unsafe { libc::syscall(451, f.as_raw_fd(), range.as_ptr(), st.as_mut_ptr(), 0) };
    r == 0
}

/// Drops `f`'s pages from the page cache (written back first), so the next read of it
/// has to wait for the disk. False when the kernel kept them (tmpfs, no `cachestat` to
/// check): the caller must then say that it could not test the uncached path.
pub fn evict(f: &File) -> bool {
    use std::os::fd::AsRawFd;
    f.sync_all().unwrap();
    // SAFETY: posix_fadvise takes no memory arguments; the fd is borrowed from `f`.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(r, 0, "posix_fadvise failed");
    // struct cachestat_range { off, len } and struct cachestat (5 × u64); len 0 = to EOF.
    let range = [0u64, 0u64];
    let mut st = [0u64; 5];
    // SAFETY: both arrays are live and laid out as the kernel's structs; flags are 0.
    let r = unsafe {
        libc::syscall(
            451, // cachestat, the same number on every architecture
            f.as_raw_fd(),
            range.as_ptr(),
            st.as_mut_ptr(),
            0,
        )
    };
    r == 0 && st[0] == 0
}
