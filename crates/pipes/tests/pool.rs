//! The pipe pool on real kernel pipes.
use ferry_pipes::{PipePool, PoolConfig};
use ferry_testkit::{fd_count, serial};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;

fn fl(fd: impl AsRawFd, cmd: i32) -> i32 {
    // SAFETY: F_GETFL/F_GETFD take no argument.
    unsafe { libc::fcntl(fd.as_raw_fd(), cmd) }
}
fn write_end(p: &ferry_pipes::PooledPipe) -> File {
    File::from(p.writer().try_clone_to_owned().unwrap())
}

#[test]
fn ends_are_cloexec_nonblocking_by_default_and_sized() {
    let _g = serial();
    let pool = PipePool::new(PoolConfig::default()).unwrap();
    let p = pool.get().unwrap();
    for fd in [p.reader().as_raw_fd(), p.writer().as_raw_fd()] {
        assert!(fl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0);
        assert!(fl(fd, libc::F_GETFL) & libc::O_NONBLOCK != 0);
    }
    // SAFETY: F_GETPIPE_SZ takes no argument.
    let real = unsafe { libc::fcntl(p.writer().as_raw_fd(), libc::F_GETPIPE_SZ) };
    assert_eq!(p.size(), real as usize);
    assert_eq!(
        p.size(),
        1 << 20,
        "root or a fresh budget gets the full 1 MiB"
    );
    let blocking = PipePool::new(PoolConfig {
        nonblocking: false,
        ..Default::default()
    })
    .unwrap();
    let b = blocking.get().unwrap();
    assert_eq!(
        fl(b.reader().as_raw_fd(), libc::F_GETFL) & libc::O_NONBLOCK,
        0
    );
}

#[test]
fn asking_more_than_pipe_max_size_is_clamped_not_an_error() {
    let _g = serial();
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pool = PipePool::new(PoolConfig {
        pipe_size: max * 4,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(pool.target_size(), max);
    assert_eq!(pool.get().unwrap().size(), max);
}

#[test]
fn an_empty_pipe_is_reused_a_dirty_one_is_closed() {
    let _g = serial();
    let pool = PipePool::new(PoolConfig {
        capacity: 4,
        ..Default::default()
    })
    .unwrap();
    let p = pool.get().unwrap();
    let id = (p.reader().as_raw_fd(), p.writer().as_raw_fd());
    drop(p);
    let s = pool.stats();
    assert_eq!(
        (s.misses, s.hits, s.idle, s.outstanding, s.discarded),
        (1, 0, 1, 0, 0)
    );

    let p = pool.get().unwrap();
    assert_eq!(
        (p.reader().as_raw_fd(), p.writer().as_raw_fd()),
        id,
        "same pipe back"
    );
    write_end(&p).write_all(b"stale").unwrap();
    let before = fd_count();
    drop(p);
    assert_eq!(
        fd_count(),
        before - 2,
        "both ends of the dirty pipe were closed"
    );
    let s = pool.stats();
    assert_eq!((s.hits, s.discarded, s.idle, s.outstanding), (1, 1, 0, 0));

    // The next pipe is new and empty: no stale bytes can leak.
    let p = pool.get().unwrap();
    let mut r = File::from(p.reader().try_clone_to_owned().unwrap());
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn a_drained_pipe_goes_back() {
    let _g = serial();
    let pool = PipePool::new(PoolConfig {
        capacity: 2,
        ..Default::default()
    })
    .unwrap();
    let p = pool.get().unwrap();
    write_end(&p).write_all(&[1u8; 100_000]).unwrap();
    let mut r = File::from(p.reader().try_clone_to_owned().unwrap());
    let mut v = vec![0u8; 100_000];
    r.read_exact(&mut v).unwrap();
    drop(p);
    assert_eq!(pool.stats().idle, 1);
    assert_eq!(pool.stats().discarded, 0);
}

#[test]
fn explicit_discard_closes_without_reuse() {
    let _g = serial();
    let pool = PipePool::new(PoolConfig::default()).unwrap();
    let before = fd_count();
    let p = pool.get().unwrap();
    p.discard();
    assert_eq!(fd_count(), before);
    let s = pool.stats();
    assert_eq!((s.idle, s.discarded, s.outstanding), (0, 1, 0));
}

#[test]
fn bounded_extra_pipes_are_closed_and_dropping_the_pool_closes_the_idle_ones() {
    let _g = serial();
    let before = fd_count();
    let pool = PipePool::new(PoolConfig {
        capacity: 3,
        pipe_size: 0,
        ..Default::default()
    })
    .unwrap();
    let pipes: Vec<_> = (0..10).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.stats().outstanding, 10);
    assert_eq!(fd_count(), before + 20);
    drop(pipes);
    let s = pool.stats();
    assert_eq!((s.idle, s.overflowed, s.outstanding), (3, 7, 0));
    assert_eq!(fd_count(), before + 6);
    // A pipe outliving its pool handle still returns safely.
    let p = pool.get().unwrap();
    drop(pool);
    assert_eq!(fd_count(), before + 2);
    drop(p);
    assert_eq!(fd_count(), before);
}

#[test]
fn capacity_zero_keeps_nothing() {
    let _g = serial();
    let pool = PipePool::new(PoolConfig {
        capacity: 0,
        pipe_size: 0,
        ..Default::default()
    })
    .unwrap();
    drop(pool.get().unwrap());
    let s = pool.stats();
    assert_eq!((s.idle, s.overflowed, s.misses), (0, 1, 1));
}

#[test]
fn shared_across_threads() {
    let _g = serial();
    let pool = PipePool::new(PoolConfig {
        capacity: 8,
        pipe_size: 0,
        ..Default::default()
    })
    .unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let pool = pool.clone();
            s.spawn(move || {
                for _ in 0..200 {
                    let p = pool.get().unwrap();
                    let mut w = write_end(&p);
                    w.write_all(&[t; 10]).unwrap();
                    let mut r = File::from(p.reader().try_clone_to_owned().unwrap());
                    let mut buf = [0u8; 10];
                    r.read_exact(&mut buf).unwrap();
                    assert_eq!(buf, [t; 10], "another thread's bytes in my pipe");
                }
            });
        }
    });
    let s = pool.stats();
    assert_eq!(s.hits + s.misses, 800);
    assert!(s.misses <= 8 + 4, "steady state reuses pipes: {s:?}");
    assert_eq!(s.outstanding, 0);
}

const CHILD_ENV: &str = "FERRY_PIPES_BUDGET_CHILD";

/// The per-user pipe budget only binds unprivileged users (root has CAP_SYS_RESOURCE),
/// so as root this test re-runs itself as uid 65534 under `setpriv`.
#[test]
fn past_the_user_pipe_budget_pipes_shrink_and_the_pool_carries_on() {
    let _g = serial();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if uid == 0 && std::env::var_os(CHILD_ENV).is_none() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args([
                "--exact",
                "past_the_user_pipe_budget_pipes_shrink_and_the_pool_carries_on",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .expect("setpriv (util-linux) must be installed: scripts/install-test-deps.sh");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "unprivileged child failed:\n{text}");
        assert!(
            text.contains("1 passed"),
            "child did not run the test:\n{text}"
        );
        eprintln!("{text}");
        return;
    }
    let soft: usize = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        soft > 0,
        "pipe-user-pages-soft is 0 (unlimited): the budget cannot be exceeded here"
    );
    let page = 4096;
    let per_pipe = (1 << 20) / page;
    let n = soft / per_pipe + 8;
    let pool = PipePool::new(PoolConfig {
        capacity: n,
        ..Default::default()
    })
    .unwrap();
    let pipes: Vec<_> = (0..n).map(|_| pool.get().unwrap()).collect();
    let small = pipes.iter().filter(|p| p.size() < 1 << 20).count();
    let s = pool.stats();
    eprintln!(
        "uid {uid}: {n} pipes, {small} undersized, last size {}",
        s.last_pipe_size
    );
    assert!(small >= 8, "expected the budget to shrink pipes: {s:?}");
    assert_eq!(s.undersized as usize, small);
    // Undersized pipes still work, byte for byte.
    let p = pipes.last().unwrap();
    assert!(p.size() < 1 << 20);
    write_end(p).write_all(b"still works").unwrap();
    let mut r = File::from(p.reader().try_clone_to_owned().unwrap());
    let mut buf = [0u8; 11];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still works");
}
