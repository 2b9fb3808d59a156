//! Runs the song_server and song_client examples against each other and checks bytes.
mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/song_demo-xxxx -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    if !p.exists() {
        // `cargo test` builds examples, `cargo test --test song_demo` does not.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "ferry-compat", "--example", name])
            .status()
            .unwrap()
            .success();
        assert!(ok && p.exists(), "could not build example {name}");
    }
    p
}

#[test]
fn client_receives_the_song_byte_for_byte() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let song = pattern(3 << 20 | 12345);
    let song_path = dir.path().join("song.bin");
    std::fs::write(&song_path, &song).unwrap();
    let mut server = Command::new(example("song_server"))
        .arg(&song_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_string();
    let out = dir.path().join("out.bin");
    let status = Command::new(example("song_client"))
        .args([&addr, "3"])
        .arg(&out)
        .status()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read(&out).unwrap(), song);
}
