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
    let path = example(name);
    assert!(
        path.exists(),
        "{} was not built (cargo test builds examples)",
        path.display()
    );
    let t0 = Instant::now();
    let out = Command::new(&path).arg("--self-test").output().unwrap();
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
