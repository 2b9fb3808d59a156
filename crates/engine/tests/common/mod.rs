//! Helpers of the engine tests: the shared ones from ferry-testkit, plus the backend
//! under test and the engine's thread count.
#![allow(dead_code)]

use ferry_engine::{Backend, Engine};

#[allow(unused_imports)] // each test binary uses a different subset
pub use ferry_testkit::{
    block_on, drain, eventually, evict, fd_count, file_with, has_cachestat, pattern, read_n,
    reset_on_close, serial, tcp_pair,
};

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

/// The backend the suite runs against: FERRY_BACKEND=blocking selects the blocking
/// backend; otherwise io_uring, which must really work on the test machines.
pub fn expected_backend() -> Backend {
    match std::env::var("FERRY_BACKEND").as_deref() {
        Ok("blocking") => Backend::Blocking,
        _ if io_uring_compiled() => Backend::IoUring,
        _ => Backend::Blocking,
    }
}

/// Whether this build has the io_uring backend (Linux, and not the portable build
/// forced with `--cfg ferry_force_fallback`).
pub fn io_uring_compiled() -> bool {
    cfg!(ferry_uring)
}

pub fn engine() -> Engine {
    let e = Engine::new().unwrap();
    assert_eq!(
        e.backend(),
        expected_backend(),
        "fallback: {:?}",
        e.fallback_reason()
    );
    let runs_on = match e.backend() {
        Backend::IoUring => ferry_engine::RunsOn::RingThreads,
        _ => ferry_engine::RunsOn::ThreadPool,
    };
    assert_eq!(e.runs_on(), runs_on);
    e
}

/// The `LocalEngine` backends to test: the readiness loop always; io_uring unless the
/// build has none or FERRY_BACKEND=blocking asks for the blocking side only.
pub fn local_backends() -> Vec<Backend> {
    if expected_backend() == Backend::IoUring {
        vec![Backend::IoUring, Backend::Blocking]
    } else {
        eprintln!("LocalEngine io_uring backend not tested in this run (FERRY_BACKEND=blocking or no io_uring in this build)");
        vec![Backend::Blocking]
    }
}

/// A `LocalEngine` on backend `b`, checked to really run it.
#[cfg(target_os = "linux")]
pub fn local_ring(b: Backend) -> ferry_engine::LocalEngine {
    let r = ferry_engine::LocalEngine::builder()
        .backend(b)
        .build()
        .unwrap();
    assert_eq!(r.backend(), b);
    // The same backend names a different executor than `Engine`'s.
    let runs_on = match b {
        Backend::IoUring => ferry_engine::RunsOn::OwnerRing,
        _ => ferry_engine::RunsOn::ReadinessLoop,
    };
    assert_eq!(r.runs_on(), runs_on);
    r
}
