//! The examples under `examples/` build with the test suite (cargo builds examples
//! for `cargo test`); here each one runs its `--self-test` and must pass.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`, next to this test's own directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join(name)
}

fn self_test(name: &str) {
    self_test_on(name, None);
}

/// Runs the example with `FERRY_BACKEND` set (or as inherited when `None`).
fn self_test_on(name: &str, backend: Option<&str>) {
    let path = example(name);
    assert!(
        path.exists(),
        "{} was not built (cargo test builds examples)",
        path.display()
    );
    let t0 = Instant::now();
    let mut cmd = Command::new(&path);
    cmd.arg("--self-test");
    if let Some(b) = backend {
        cmd.env("FERRY_BACKEND", b);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed:\n{text}");
    assert!(text.contains("self-test passed"), "{name}:\n{text}");
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "{name} took {:?}",
        t0.elapsed()
    );
}

#[test]
fn tokio_static_file_server() {
    self_test("tokio_static");
}

#[test]
fn tokio_two_way_proxy() {
    self_test("tokio_proxy");
}

#[test]
fn mio_event_loop_with_engine() {
    self_test("mio_loop");
}

/// The echo server and HTTP responder on one `LocalEngine` ring, 200 concurrent
/// connections, on both of its backends (io_uring unless the run asks for blocking).
#[cfg(target_os = "linux")]
#[test]
fn local_engine_echo_and_http_on_both_backends() {
    let mut backends = vec!["blocking"];
    if std::env::var("FERRY_BACKEND").as_deref() != Ok("blocking") && cfg!(ferry_uring) {
        backends.push("io_uring");
    } else {
        eprintln!("LocalEngine examples run on the readiness loop only in this run");
    }
    for b in backends {
        self_test_on("local_echo", Some(b));
        self_test_on("local_http", Some(b));
    }
}
