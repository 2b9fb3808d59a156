//! `ferry proxy`: bytes both ways, half-close, many pairs, round robin, PROXY protocol,
//! graceful stop — real sockets, byte for byte.

#[path = "support/congestion.rs"]
mod congestion;
#[path = "proxy/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{dead_addr, pattern, read_all, send_then_eof, upload_download, Backend, ProxyProc};

#[test]
fn both_directions_at_once_arrive_byte_exact() {
    for (up, down) in [
        (0, 0),
        (1, 0),
        (0, 1),
        (100_000, 3_000_000),
        (50 << 20, 20 << 20),
    ] {
        let got = Arc::new(Mutex::new(Vec::new()));
        let backend = upload_download(down, got.clone());
        let proxy = ProxyProc::start(&[backend.addr], &[]);
        let c = proxy.connect();
        let w = send_then_eof(c.try_clone().unwrap(), pattern(up, 3));
        let mut r = c;
        let (back, err) = read_all(&mut r);
        w.join().unwrap();
        assert!(err.is_none(), "{up}/{down}: client read ended with {err:?}");
        assert!(
            back == pattern(down, 7),
            "{up}/{down}: downloaded bytes differ ({} arrived)",
            back.len()
        );
        // The backend's reader finishes right after the client's EOF arrived there.
        let start = std::time::Instant::now();
        while got.lock().unwrap().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "backend never saw EOF"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            got.lock().unwrap()[0] == pattern(up, 3),
            "{up}/{down}: uploaded bytes differ"
        );
    }
}

#[test]
fn half_close_each_way_keeps_the_other_direction_going() {
    // Client finishes first: the backend sees EOF, then answers.
    let backend = Backend::start(|mut c| {
        let (req, _) = read_all(&mut c);
        c.write_all(&req.iter().rev().copied().collect::<Vec<u8>>())
            .unwrap();
    });
    let proxy = ProxyProc::start(&[backend.addr], &[]);
    let mut c = proxy.connect();
    c.write_all(b"abcdef").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_all(&mut c).0, b"fedcba");
    // Backend finishes first: the client sees EOF and can still send.
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let backend = Backend::start(move |mut c| {
        c.write_all(b"hello").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        g.lock().unwrap().push(read_all(&mut c).0);
    });
    let proxy = ProxyProc::start(&[backend.addr], &[]);
    let mut c = proxy.connect();
    let mut hello = [0u8; 5];
    c.read_exact(&mut hello).unwrap();
    assert_eq!(&hello, b"hello");
    assert_eq!(c.read(&mut [0u8; 8]).unwrap(), 0, "EOF passed on");
    c.write_all(b"after your EOF").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let start = std::time::Instant::now();
    while got.lock().unwrap().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(got.lock().unwrap()[0], b"after your EOF");
}

#[test]
fn two_hundred_pairs_at_once_and_no_socket_left_after() {
    let backend = Backend::echo();
    let proxy = ProxyProc::start(&[backend.addr], &[]);
    let baseline = proxy.sockets();
    let addr = proxy.addr;
    let clients: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let c = std::net::TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let data = pattern(64 * 1024 + i, i as u32);
                let w = send_then_eof(c.try_clone().unwrap(), data.clone());
                let mut r = c;
                let (back, err) = read_all(&mut r);
                w.join().unwrap();
                assert!(err.is_none() && back == data, "pair {i}: echo differs");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    proxy.wait_sockets(baseline, Duration::from_secs(5));
}

#[test]
fn round_robin_skips_a_dead_backend() {
    let backend = Backend::echo();
    let proxy = ProxyProc::start(&[dead_addr(), backend.addr], &["--threads", "1"]);
    for i in 0..6 {
        let mut c = proxy.connect();
        c.write_all(format!("ping {i}").as_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut c).0, format!("ping {i}").as_bytes());
    }
}

#[test]
fn the_proxy_protocol_header_comes_first() {
    for (flag, check) in [("v1", true), ("v2", false)] {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let backend = Backend::start(move |mut c| {
            let (all, _) = read_all(&mut c);
            g.lock().unwrap().push(all);
        });
        let proxy = ProxyProc::start(&[backend.addr], &["--send-proxy", flag]);
        let mut c = proxy.connect();
        let local = c.local_addr().unwrap();
        c.write_all(b"payload").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let _ = read_all(&mut c);
        let start = std::time::Instant::now();
        while got.lock().unwrap().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(10));
        }
        let all = got.lock().unwrap()[0].clone();
        assert!(all.ends_with(b"payload"));
        if check {
            let want = format!(
                "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\npayload",
                local.port(),
                proxy.addr.port()
            );
            assert_eq!(String::from_utf8_lossy(&all), want);
        } else {
            assert_eq!(&all[..12], b"\r\n\r\n\0\r\nQUIT\n");
            assert_eq!(all.len(), 28 + 7);
            assert_eq!(u16::from_be_bytes([all[24], all[25]]), local.port());
        }
    }
}

#[test]
fn sigterm_lets_a_live_pair_finish_then_exits_zero() {
    let backend = Backend::start(|mut c| {
        let mut one = [0u8; 1];
        let _ = c.read(&mut one); // the client's go
        std::thread::sleep(Duration::from_millis(500));
        c.write_all(&pattern(1 << 20, 9)).unwrap();
    });
    let proxy = ProxyProc::start(&[backend.addr], &["--grace", "10"]);
    let addr = proxy.addr;
    let mut c = proxy.connect();
    c.write_all(b"g").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let reader = std::thread::spawn(move || read_all(&mut c));
    let status = proxy.stop(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
    let (got, err) = reader.join().unwrap();
    assert!(err.is_none(), "{err:?}");
    assert!(
        got == pattern(1 << 20, 9),
        "the live pair was cut: {} bytes",
        got.len()
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting"
    );
}

#[test]
fn curl_through_the_proxy_to_ferry_serve_reuses_its_connection() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f.bin"), pattern(300_000, 4)).unwrap();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--root",
        ])
        .arg(root.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(serve.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let origin: std::net::SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let proxy = ProxyProc::start(&[origin], &[]);
    let url = format!("http://{}/f.bin", proxy.addr);
    let out = std::process::Command::new("curl")
        .args(["-sS", "-v", "--fail", &url, &url, "-o", "/dev/null", "-o"])
        .arg(root.path().join("copy"))
        .output()
        .expect("curl is installed by scripts/install-test-deps.sh");
    let _ = serve.kill();
    let _ = serve.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("Re-using existing connection") || err.contains("Reusing existing"),
        "{err}"
    );
    assert!(std::fs::read(root.path().join("copy")).unwrap() == pattern(300_000, 4));
}

#[test]
fn a_thousand_idle_pairs_hold_no_pipes_and_all_still_work() {
    // 1000 client sockets and 1000 backend sockets live in this test process.
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current.is_some_and(|c| c < 4096) {
        let raised = Rlimit {
            current: lim.maximum.map(|m| m.min(8192)),
            maximum: lim.maximum,
        };
        setrlimit(Resource::Nofile, raised).unwrap();
    }
    let backend = Backend::echo();
    let proxy = ProxyProc::start(&[backend.addr], &[]);
    let mut pairs: Vec<std::net::TcpStream> = (0..1000)
        .map(|i| {
            let mut c = proxy.connect();
            c.write_all(&[i as u8]).unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            c
        })
        .collect();
    let pipes = std::fs::read_dir(format!("/proc/{}/fd", proxy.proc.child.id()))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("pipe:"))
        })
        .count();
    // Idle directions hold no pipe; the pools keep at most 64 idle pipes per thread.
    assert!(pipes <= 2 * 2 * 64, "{pipes} pipe ends for 1000 idle pairs");
    assert!(
        proxy.sockets() >= 2000,
        "pairs were dropped: {} sockets",
        proxy.sockets()
    );
    for (i, c) in pairs.iter_mut().enumerate() {
        c.write_all(&[i as u8, 1]).unwrap();
        let mut b = [0u8; 2];
        c.read_exact(&mut b).unwrap();
        assert_eq!(b, [i as u8, 1]);
    }
}

#[test]
fn the_congestion_flag_reaches_the_client_and_the_backend_sockets() {
    let want = congestion::other_than_default();
    let backend = Backend::echo();
    let proxy = ProxyProc::start(&[backend.addr], &["--congestion", want]);
    assert!(
        proxy.banner.contains(&format!("congestion {want}")),
        "{}",
        proxy.banner
    );
    let mut c = proxy.connect();
    c.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    c.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping", "the pair is up both ways");
    // The proxy's two sockets: the one it accepted (source port = its port) and the one
    // it connected (destination port = the backend's); `ss -i` names each one's algorithm.
    let filter = format!(
        "( sport = :{} or dport = :{} )",
        proxy.addr.port(),
        backend.addr.port()
    );
    let (algs, text) = congestion::algorithms(&filter);
    assert_eq!(algs, [want, want], "ss said:\n{text}");
    drop(c);
}

#[test]
fn an_unknown_congestion_algorithm_stops_the_proxy_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["proxy", "--listen", "127.0.0.1:0", "--backend"])
        .arg(dead_addr().to_string())
        .args(["--congestion", "nosuchalgo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--congestion nosuchalgo: this kernel has no such algorithm"),
        "{err}"
    );
}
