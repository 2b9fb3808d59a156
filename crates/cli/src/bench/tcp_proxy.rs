//! The `tcp-proxy` scenario: HAProxy against `ferry proxy`, in TCP mode, in front of the
//! same origins.
//!
//! - One connection (`x1`): a bulk download through the proxy from an origin thread of
//!   this process that writes SIZE pattern bytes; throughput and the proxy's CPU s/GB.
//! - Many connections: wrk through the proxy to an HTTP origin (nginx where installed,
//!   else `ferry serve`) asking for the SIZE file; req/s, latency and the proxy's CPU per
//!   request.
//!
//! Methods: `haproxy` (HAProxy 2.x, `nbthread 1`, `option splice-auto`, default pipes),
//! `haproxy-splice` (`option splice-request` + `splice-response`, `tune.pipesize
//! 1048576`), and `ferry-proxy` (`ferry proxy --threads 1`); the better HAProxy of the
//! run is the baseline. With `--pin` the proxies run on CPU 0, wrk and the HTTP origin on
//! CPU 1. The untimed first run checks every byte that came through.
//!
//! The `tls-proxy` scenario (`Proxies::start_tls`) runs the same proxies terminating
//! TLS, with one certificate made for the run: `haproxy-tls` (`bind … ssl crt`, OpenSSL,
//! TCP mode; no splice, its TLS is in user space) against `ferry-proxy-tls`
//! (`--tls-cert/--tls-key`; in user space too where the kernel has no `tls` module),
//! every case under wrk over https to the HTTP origin, `x1` included.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::common::{
    fail, fill_pattern, machine_busy, machine_busy_since, new_hist, Checksum, Method, RunResult,
};
use super::https::TlsFiles;
use super::peers::{self, Peer};

/// The origins and, per origin, the three proxies in front of it.
pub struct Proxies {
    dir: PathBuf,
    pin: bool,
    wrk: Result<PathBuf, String>,
    haproxy: Result<PathBuf, String>,
    bulk_origin: SocketAddr,
    http_origin: Result<Peer, String>,
    fronts: HashMap<(SocketAddr, Method), Result<Peer, String>>,
    /// tls-proxy: the certificate both proxies present.
    tls: Option<TlsFiles>,
}

impl Proxies {
    /// Starts the origins (files served from `dir`); proxies start on first use.
    pub fn start(dir: &Path, pin: bool) -> io::Result<Proxies> {
        let bulk_origin = bulk_origin()?;
        let origin_cpu = pin.then_some(1);
        let http_origin = match peers::find("nginx") {
            Some(bin) => peers::start_nginx(&bin, dir, origin_cpu, false, 8192, 65, None)
                .map_err(|e| format!("the nginx origin did not start: {e}")),
            None => peers::start_ferry_serve(dir, origin_cpu, "ferry serve (origin)", &[])
                .map_err(|e| format!("the ferry serve origin did not start: {e}")),
        };
        Ok(Proxies {
            dir: dir.to_owned(),
            pin,
            wrk: peers::find("wrk")
                .ok_or_else(|| "not run: wrk not installed (scripts/install-peers.sh)".into()),
            haproxy: peers::find("haproxy")
                .ok_or_else(|| "not run: haproxy not installed (scripts/install-peers.sh)".into()),
            bulk_origin,
            http_origin,
            fronts: HashMap::new(),
            tls: None,
        })
    }

    /// The origins, for proxies that terminate TLS with a certificate made now.
    pub fn start_tls(dir: &Path, pin: bool) -> io::Result<Proxies> {
        let mut p = Proxies::start(dir, pin)?;
        p.tls = Some(TlsFiles::make(dir)?);
        Ok(p)
    }

    /// Why `m` cannot run for a case with `connections`, if it cannot.
    pub fn unavailable(&self, m: Method, connections: usize) -> Option<String> {
        if matches!(
            m,
            Method::Haproxy | Method::HaproxySplice | Method::HaproxyTls
        ) {
            if let Err(e) = &self.haproxy {
                return Some(e.clone());
            }
        }
        if connections > 1 || self.tls.is_some() {
            if let Err(e) = &self.wrk {
                return Some(e.clone());
            }
            if let Err(e) = &self.http_origin {
                return Some(e.clone());
            }
        }
        None
    }

    fn front(&mut self, m: Method, origin: SocketAddr) -> io::Result<&Peer> {
        let key = (origin, m);
        if !self.fronts.contains_key(&key) {
            let started = self
                .start_front(m, origin)
                .map_err(|e| format!("{}: {e}", m.name()));
            self.fronts.insert(key, started);
        }
        self.fronts[&key].as_ref().map_err(|e| fail(e.clone()))
    }

    fn start_front(&self, m: Method, origin: SocketAddr) -> io::Result<Peer> {
        let cpu = self.pin.then_some(0);
        match (m, &self.tls) {
            (Method::FerryProxy, _) => peers::start_ferry_proxy(origin, cpu, &[]),
            (Method::FerryProxyTls, Some(tls)) => {
                let (cert, key) = (tls.cert.to_string_lossy(), tls.key.to_string_lossy());
                let flags = ["--tls-cert", &*cert, "--tls-key", &*key];
                peers::start_ferry_proxy(origin, cpu, &flags)
            }
            (Method::HaproxyTls, Some(tls)) => {
                // HAProxy takes the certificate and its key in one PEM file.
                let pem = self.dir.join("bench-haproxy.pem");
                let both = [std::fs::read(&tls.cert)?, std::fs::read(&tls.key)?].concat();
                std::fs::write(&pem, both)?;
                let bin = self.haproxy.as_ref().map_err(|e| fail(e.clone()))?;
                let limits = (4096, 60);
                start_haproxy(bin, &self.dir, cpu, origin, false, limits, Some(&pem))
            }
            _ => {
                let bin = self.haproxy.as_ref().map_err(|e| fail(e.clone()))?;
                start_haproxy(
                    bin,
                    &self.dir,
                    cpu,
                    origin,
                    m == Method::HaproxySplice,
                    (4096, 60),
                    None,
                )
            }
        }
    }

    /// `m` in front of the HTTP origin (started on first use).
    pub fn http_front(&mut self, m: Method) -> io::Result<&Peer> {
        let origin = self.http_origin.as_ref().map_err(|e| fail(e.clone()))?.addr;
        self.front(m, origin)
    }

    /// One run of `m` on a case: verify (`expect`) or measure.
    pub fn run(
        &mut self,
        m: Method,
        size: u64,
        connections: usize,
        secs: u64,
        expect: Option<Checksum>,
    ) -> io::Result<RunResult> {
        if connections <= 1 && self.tls.is_none() {
            let origin = self.bulk_origin;
            let front = self.front(m, origin)?;
            return bulk(front, size, expect);
        }
        let pin = self.pin;
        let wrk = self.wrk.clone().map_err(fail)?;
        self.http_front(m)?;
        let origin = self.http_origin.as_ref().map_err(|e| fail(e.clone()))?.addr;
        let front = self.fronts[&(origin, m)]
            .as_ref()
            .map_err(|e| fail(e.clone()))?;
        let path = format!("/data-{size}");
        let tls = self.tls.as_ref();
        if let Some(want) = expect {
            match tls {
                Some(tls) => {
                    let all = tls.fetch(front.addr, &path)?;
                    peers::check_response(&all, front.name, size, want)?;
                }
                None => peers::verify_get(front.addr, front.name, &path, size, want)?,
            }
            return Ok(peers::verified(size));
        }
        // The certificate names localhost; wrk does not check it.
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}{path}", front.addr);
        peers::wrk(&wrk, pin, &url, connections, secs, size, front, &[])
    }
}

/// HAProxy in TCP mode, one thread, in front of `origin`: splice-auto, or (`tuned`)
/// splice both ways with 1 MiB pipes, or (`tls`: a PEM with the certificate and key)
/// terminating TLS; `maxconn` and the client/server idle timeouts as given. Its config
/// goes in `dir`.
pub fn start_haproxy(
    bin: &Path,
    dir: &Path,
    cpu: Option<usize>,
    origin: SocketAddr,
    tuned: bool,
    (maxconn, idle_secs): (usize, u64),
    tls: Option<&Path>,
) -> io::Result<Peer> {
    let port = peers::free_port()?;
    let cfg = dir.join(format!(".haproxy-{port}.cfg"));
    std::fs::write(
        &cfg,
        haproxy_config(port, origin, tuned, (maxconn, idle_secs), tls),
    )?;
    let mut child = peers::command(bin, cpu)
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    peers::wait_listening(&mut child, addr, None)?;
    Ok(Peer {
        child,
        addr,
        name: match (tls, tuned) {
            (Some(_), _) => "haproxy (ssl)",
            (None, true) => "haproxy (splice, 1 MiB pipes)",
            (None, false) => "haproxy (splice-auto)",
        },
    })
}

fn haproxy_config(
    port: u16,
    origin: SocketAddr,
    tuned: bool,
    (maxconn, idle_secs): (usize, u64),
    tls: Option<&Path>,
) -> String {
    let (tune, splice) = match (tls, tuned) {
        // TLS is sealed in user space: nothing to splice.
        (Some(_), _) => ("", ""),
        (None, true) => (
            "  tune.pipesize 1048576\n",
            "  option splice-request\n  option splice-response\n",
        ),
        (None, false) => ("", "  option splice-auto\n"),
    };
    let ssl = tls.map_or(String::new(), |pem| format!(" ssl crt {}", pem.display()));
    format!(
        "# written by ferry bench: docs/benchmarks.md, tcp-proxy\n\
         global\n  nbthread 1\n  maxconn {maxconn}\n{tune}\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client {idle_secs}s\n  timeout server {idle_secs}s\n{splice}\
         frontend fe\n  bind 127.0.0.1:{port}{ssl}\n  default_backend be\n\
         backend be\n  server origin {origin}\n"
    )
}

/// An origin thread: each connection sends an 8-byte little-endian length and gets that
/// many pattern bytes (seeded with the length), then EOF.
fn bulk_origin() -> io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    std::thread::Builder::new()
        .name("bench-origin".into())
        .spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                std::thread::spawn(move || {
                    let mut len = [0u8; 8];
                    if c.read_exact(&mut len).is_err() {
                        return;
                    }
                    let size = u64::from_le_bytes(len);
                    let mut buf = vec![0u8; 1 << 20];
                    let mut left = size;
                    let mut seed = size;
                    while left > 0 {
                        let n = left.min(buf.len() as u64) as usize;
                        fill_pattern(&mut buf[..n], seed);
                        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                        if c.write_all(&buf[..n]).is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                });
            }
        })?;
    Ok(addr)
}

/// The bytes `bulk_origin` sends for `size`, as a checksum.
pub fn origin_checksum(size: u64) -> Checksum {
    let mut sum = Checksum::default();
    let mut buf = vec![0u8; 1 << 20];
    let (mut left, mut seed) = (size, size);
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..n], seed);
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        sum.update(&buf[..n]);
        left -= n as u64;
    }
    sum
}

/// One download of `size` bytes through `front`; checked against `expect` if given.
fn bulk(front: &Peer, size: u64, expect: Option<Checksum>) -> io::Result<RunResult> {
    let mut s = TcpStream::connect(front.addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let cpu0 = peers::process_cpu(front.child.id())?;
    let machine0 = machine_busy();
    let t0 = Instant::now();
    s.write_all(&size.to_le_bytes())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    let mut sum = Checksum::default();
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if expect.is_some() {
            sum.update(&buf[..n]);
        }
        got += n as u64;
        if got >= size {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = peers::process_cpu(front.child.id())?;
    let machine = machine_busy_since(machine0);
    if got != size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {got} of {size} bytes arrived", front.name),
        ));
    }
    if let Some(want) = expect {
        if sum.value() != want.value() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: the bytes that arrived differ from the origin's",
                    front.name
                ),
            ));
        }
    }
    Ok(RunResult {
        bytes: size,
        secs,
        requests: None,
        hist: new_hist(),
        cpu_secs: (cpu1 - cpu0).as_secs_f64(),
        latency: None,
        machine_cpu_secs: machine,
    })
}
