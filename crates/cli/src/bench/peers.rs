//! The processes `ferry bench` compares against (nginx, HAProxy, `ferry serve`,
//! `ferry proxy`) and the load generator they share (wrk): starting them (pinned with
//! `taskset` under `--pin`), waiting until they listen, their CPU time from /proc, one
//! verified GET, one wrk run. Absent programs are reasons, never failures.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{
    fail, machine_busy, machine_busy_since, new_hist, Checksum, PeerLatency, RunResult,
};

/// A server under test: its process and address.
pub struct Peer {
    pub child: Child,
    pub addr: SocketAddr,
    /// What it is, for messages.
    pub name: &'static str,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn find(prog: &str) -> Option<PathBuf> {
    super::header::which(prog).map(PathBuf::from)
}

/// `taskset -c CPU prog` when pinning, else `prog`.
pub fn command(prog: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(prog);
            c
        }
        None => Command::new(prog),
    }
}

pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_listening(child: &mut Child, addr: SocketAddr, log: Option<&Path>) -> io::Result<()> {
    let start = Instant::now();
    loop {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            let why = log
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            return Err(fail(format!("exited with {st}: {}", why.trim())));
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(fail("not listening after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One nginx process (`master_process off`: the process that serves is the one we
/// measure) with the fair configuration; `tcp_nopush` on or off; `worker_connections`
/// and `keepalive_timeout` as given (what an operator sets for that many connections
/// held that long).
pub fn start_nginx(
    bin: &Path,
    root: &Path,
    cpu: Option<usize>,
    nopush: bool,
    worker_connections: usize,
    keepalive_secs: u64,
    tls: Option<&super::https::TlsFiles>,
) -> io::Result<Peer> {
    let port = free_port()?;
    let prefix = root.join(format!(".nginx-{port}"));
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    let (r, p) = (root.display(), prefix.display());
    std::fs::write(
        &conf,
        format!(
            "# written by ferry bench: the fair configuration of docs/benchmarks.md\n\
             worker_processes 1;\nmaster_process off;\ndaemon off;\n\
             error_log {p}/logs/error.log warn;\npid {p}/nginx.pid;\n\
             events {{ worker_connections {worker_connections}; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush {};\n  tcp_nodelay on;\n\
               keepalive_timeout {keepalive_secs};\n  keepalive_requests 100000000;\n\
               open_file_cache max=1000 inactive=60s;\n  open_file_cache_valid 60s;\n\
               open_file_cache_errors on;\n  default_type application/octet-stream;\n\
               client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
               fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
               server {{ listen 127.0.0.1:{port}{}; root {r};{} }}\n}}\n",
            if nopush { "on" } else { "off" },
            if tls.is_some() { " ssl" } else { "" },
            tls.map_or(String::new(), |t| format!(
                " ssl_certificate {}; ssl_certificate_key {}; ssl_protocols TLSv1.2 TLSv1.3; \
                 ssl_session_tickets on; ssl_session_cache shared:SSL:10m;",
                t.cert.display(),
                t.key.display()
            )),
        ),
    )?;
    let mut child = command(bin, cpu)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(&mut child, addr, Some(&prefix.join("logs/error.log")))?;
    Ok(Peer {
        child,
        addr,
        name: match (tls.is_some(), nopush) {
            (true, _) => "nginx (TLS)",
            (false, true) => "nginx",
            (false, false) => "nginx (tcp_nopush off)",
        },
    })
}

/// `exe args…` (a `ferry serve`/`ferry proxy`), ready when it prints its address
/// (`listening on [http://]IP:PORT`) and accepts connections.
pub fn start_ferry(
    exe: &Path,
    args: &[&OsStr],
    cpu: Option<usize>,
    name: &'static str,
) -> io::Result<Peer> {
    let mut child = command(exe, cpu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line)?;
    let addr = line
        .split("listening on ")
        .nth(1)
        .map(|s| {
            s.trim_start_matches("http://")
                .trim_start_matches("https://")
        })
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail(format!("no address in its ready line {line:?}")))?;
    wait_listening(&mut child, addr, None)?;
    Ok(Peer { child, addr, name })
}

/// `ferry serve --threads 1` of `root` (this very binary), with `extra` arguments.
pub fn start_ferry_serve(
    root: &Path,
    cpu: Option<usize>,
    name: &'static str,
    extra: &[&str],
) -> io::Result<Peer> {
    let exe = std::env::current_exe()?;
    let mut args: Vec<&OsStr> = vec![
        "serve".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    start_ferry(&exe, &args, cpu, name)
}

/// `ferry proxy --threads 1` in front of `origin` (this very binary), with `extra`
/// arguments.
pub fn start_ferry_proxy(
    origin: SocketAddr,
    cpu: Option<usize>,
    extra: &[&str],
) -> io::Result<Peer> {
    let exe = std::env::current_exe()?;
    let backend = origin.to_string();
    let mut args: Vec<&OsStr> = vec![
        "proxy".as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--threads".as_ref(),
        "1".as_ref(),
        "--backend".as_ref(),
        backend.as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    start_ferry(&exe, &args, cpu, "ferry proxy")
}

/// One GET on a fresh connection to `addr`: 200, Content-Length = size, every byte as
/// written.
pub fn verify_get(
    addr: SocketAddr,
    name: &str,
    path: &str,
    size: u64,
    want: Checksum,
) -> io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    check_response(&all, name, size, want)
}

/// Checks a whole `Connection: close` answer: `200`, `Content-Length: size`, and a body
/// whose checksum is `want`.
pub fn check_response(all: &[u8], name: &str, size: u64, want: Checksum) -> io::Result<()> {
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| fail(format!("{}: no response head", name)))?;
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    let length_ok = head
        .lines()
        .any(|l| l.trim() == format!("content-length: {size}"));
    if !head.starts_with("http/1.1 200") || !length_ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: unexpected response head {head:?}", name),
        ));
    }
    let mut sum = Checksum::default();
    sum.update(&all[end + 4..]);
    if sum.value() != want.value() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: body bytes differ from the file ({} bytes arrived)",
                name,
                all.len() - end - 4
            ),
        ));
    }
    Ok(())
}

/// utime + stime of a process (all its threads), from /proc.
pub fn process_cpu(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}

/// The result of an untimed verification run (one request, every byte checked).
pub fn verified(size: u64) -> RunResult {
    RunResult {
        bytes: size,
        secs: 1.0,
        requests: Some(1),
        hist: new_hist(),
        cpu_secs: 0.0,
        latency: None,
        machine_cpu_secs: None,
    }
}

/// One wrk run against `url`: req/s, latency percentiles, and the CPU time `server`
/// used meanwhile. Failed requests fail the run.
#[allow(clippy::too_many_arguments)] // wrk's own options, passed through
pub fn wrk(
    wrk: &Path,
    pin: bool,
    url: &str,
    connections: usize,
    secs: u64,
    size: u64,
    server: &Peer,
    extra: &[&str],
) -> io::Result<RunResult> {
    let cpu0 = process_cpu(server.child.id())?;
    let machine0 = machine_busy();
    let out = command(wrk, pin.then_some(1))
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()?;
    let cpu1 = process_cpu(server.child.id())?;
    let machine = machine_busy_since(machine0);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(fail(format!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let w = parse_wrk(&text).ok_or_else(|| fail(format!("cannot read wrk's output: {text}")))?;
    if w.errors > 0 {
        return Err(fail(format!(
            "{}: {} failed requests under wrk",
            server.name, w.errors
        )));
    }
    Ok(RunResult {
        bytes: w.requests * size,
        secs: w.secs,
        requests: Some(w.requests),
        hist: new_hist(),
        cpu_secs: (cpu1 - cpu0).as_secs_f64(),
        latency: Some(w.latency),
        machine_cpu_secs: machine,
    })
}

/// What one wrk run said.
#[derive(Debug, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub secs: f64,
    pub errors: u64,
    pub latency: PeerLatency,
}

/// Parses wrk 4's `--latency` report.
pub fn parse_wrk(text: &str) -> Option<WrkRun> {
    let mut requests = None;
    let mut secs = None;
    let mut errors = 0;
    let mut pct = [None; 4];
    let mut max = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["Latency", _avg, _stdev, m, ..] => max = duration_us(m),
            ["50%", v] => pct[0] = duration_us(v),
            ["90%", v] => pct[1] = duration_us(v),
            ["99%", v] => pct[2] = duration_us(v),
            [n, "requests", "in", d, ..] => {
                requests = n.parse().ok();
                secs = duration_us(d.trim_end_matches(',')).map(|us| us as f64 / 1e6);
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect N, read N, write N, timeout N: every one is a failed request.
                for kv in rest.join(" ").split(',') {
                    if let [_, v] = kv.split_whitespace().collect::<Vec<_>>().as_slice() {
                        errors += v.parse::<u64>().ok()?;
                    }
                }
            }
            _ => {}
        }
    }
    pct[3] = max;
    Some(WrkRun {
        requests: requests?,
        secs: secs?,
        errors,
        latency: PeerLatency {
            p50_us: pct[0]?,
            p90_us: pct[1]?,
            p99_us: pct[2]?,
            max_us: pct[3]?,
        },
    })
}

/// `376.00us`, `1.20ms`, `2.00s`, `1.50m` → µs.
fn duration_us(s: &str) -> Option<u64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some((v * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 2s test @ http://127.0.0.1:18080/4k.bin
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   376.12us  100.00us   5.20ms   90.00%
    Req/Sec    82.00k     3.00k   90.00k    70.00%
  Latency Distribution
     50%  376.00us
     75%  400.00us
     90%  450.00us
     99%    1.46ms
  327912 requests in 2.00s, 1.40GB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 1
Requests/sec: 163956.45
Transfer/sec:    700.00MB
";

    #[test]
    fn reads_wrk_reports() {
        let w = parse_wrk(REPORT).expect("parsed");
        assert_eq!(w.requests, 327_912);
        assert_eq!(w.secs, 2.0);
        assert_eq!(w.errors, 6, "socket errors and non-2xx responses");
        assert_eq!(
            w.latency,
            PeerLatency {
                p50_us: 376,
                p90_us: 450,
                p99_us: 1460,
                max_us: 5200
            }
        );
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_none());
    }
}
