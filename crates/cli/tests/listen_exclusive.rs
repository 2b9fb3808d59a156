//! A port is one server's: a second `ferry serve` or `ferry proxy` on an address a ferry
//! already listens on fails at start with "address already in use" and a non-zero exit
//! (as nginx does), instead of joining the first one's `SO_REUSEPORT` group and taking a
//! share of its connections. The first keeps every connection; once it is gone the port
//! can be used again. Each runs the backend `FERRY_BACKEND` says.
#![cfg(target_os = "linux")]

#[path = "support/process.rs"]
#[allow(dead_code)] // cpu_ticks serves other test binaries
mod process;
#[path = "support/ready.rs"]
mod ready;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn ferry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
}

fn serve(root: &std::path::Path, listen: &str) -> (process::Running, SocketAddr) {
    let mut cmd = ferry();
    cmd.args(["serve", "--threads", "2", "--listen", listen, "--root"])
        .arg(root)
        .stderr(Stdio::inherit());
    let (child, _, addr) = ready::spawn_ready(cmd);
    (process::Running::new(child), addr)
}

/// Runs `args` to its end (it must end by itself within 10 s).
fn run_to_exit(args: &[&str], root: &std::path::Path) -> Output {
    let mut child = ferry()
        .args(args)
        .arg("--root")
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!(
        "{args:?} is still running after 10 s (it shares the port); stdout {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn assert_refused(out: &Output, what: &str, addr: SocketAddr) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{what} started: {err}");
    assert!(
        err.contains("address already in use") && err.contains(&addr.to_string()),
        "{what}: {err}"
    );
}

fn get_body(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    all.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
}

#[test]
fn a_second_server_on_a_taken_port_fails_and_the_first_keeps_every_connection() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(one.path().join("who"), "first").unwrap();
    std::fs::write(two.path().join("who"), "second").unwrap();
    let (mut first, addr) = serve(one.path(), "127.0.0.1:0");
    let listen = addr.to_string();
    let any = format!("0.0.0.0:{}", addr.port());

    let out = run_to_exit(
        &["serve", "--threads", "2", "--listen", &listen],
        two.path(),
    );
    assert_refused(&out, "a second ferry serve", addr);
    let out = run_to_exit(&["serve", "--listen", &any], two.path());
    assert!(
        !out.status.success(),
        "ferry serve on 0.0.0.0 over a taken port started"
    );
    // ferry proxy takes no --root; the same claim guards it.
    let out = ferry()
        .args(["proxy", "--listen", &listen, "--backend", "127.0.0.1:9"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_refused(&out, "a ferry proxy", addr);

    for i in 0..24 {
        assert_eq!(get_body(addr), "first", "request {i} went elsewhere");
    }
    assert!(first.stop(Duration::from_secs(10)).success());
    // The port is free again: a new server takes it and serves.
    let (_again, addr2) = serve(two.path(), &listen);
    assert_eq!(addr2, addr);
    assert_eq!(get_body(addr), "second");
}
