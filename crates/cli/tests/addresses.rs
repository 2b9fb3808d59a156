//! `--listen` and `--backend` as operators write them: a bare port, `:PORT`, a host
//! name resolved at start; and a clear error (exit 2, the value named) for what does not
//! resolve or parse. Each runs the backend `FERRY_BACKEND` says.
#![cfg(target_os = "linux")]

#[path = "support/process.rs"]
#[allow(dead_code)] // stop and cpu_ticks serve other test binaries
mod process;
#[path = "support/ready.rs"]
mod ready;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

fn start(args: &[&str]) -> (process::Running, String, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args).stderr(Stdio::inherit());
    let (child, line, addr) = ready::spawn_ready(cmd);
    (process::Running::new(child), line, addr)
}

fn get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    all
}

#[test]
fn a_bare_port_listens_everywhere_and_a_backend_name_resolves() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f.txt"), "hello\n").unwrap();
    let root_arg = root.path().to_str().unwrap();
    let (_serve, plain, origin) = start(&[
        "serve",
        "--threads",
        "1",
        "--listen",
        "0",
        "--root",
        root_arg,
    ]);
    assert!(origin.ip().is_unspecified(), "--listen 0 bound {origin}");
    // Without -v the ready line says what an operator needs, in plain words.
    assert!(
        plain.contains("listening on http://") && plain.contains("up to "),
        "{plain}"
    );
    for jargon in ["IoUring", "Blocking", "openat2", "containment", "fd limit"] {
        assert!(!plain.contains(jargon), "{jargon} in {plain}");
    }
    assert!(get(origin.port()).ends_with("hello\n"));

    let backend = format!("localhost:{}", origin.port());
    let (_proxy, line, front) = start(&[
        "proxy",
        "--threads",
        "1",
        "--listen",
        ":0",
        "--backend",
        &backend,
    ]);
    assert!(front.ip().is_unspecified(), "--listen :0 bound {front}");
    assert!(line.contains(&format!(":{}", origin.port())), "{line}");
    assert!(get(front.port()).ends_with("hello\n"));
}

#[test]
fn what_does_not_resolve_or_parse_is_named_and_exits_2() {
    for (flag, value, says) in [
        ("--backend", "nope.invalid:80", "does not resolve"),
        ("--backend", "localhost", "expected PORT"),
        ("--listen", "::1:80", "brackets"),
        ("--listen", "70000", "0 to 65535"),
    ] {
        let (listen, backend) = if flag == "--listen" {
            (value, "127.0.0.1:9")
        } else {
            ("127.0.0.1:0", value)
        };
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["proxy", "--listen", listen, "--backend", backend])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.contains(value) && err.contains(says),
            "{flag} {value}: {err}"
        );
    }
}
