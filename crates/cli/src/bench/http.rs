//! The `http-static` scenario: nginx against `ferry serve`, the same files, the same
//! load generator (wrk, closed loop, keep-alive), one server process each; and
//! `https-static`, the same over HTTPS with one certificate made for the run
//! (`https.rs`): nginx with `ssl`, `ssl_session_tickets on`, against `ferry serve
//! --tls-cert --tls-key`.
//!
//! nginx runs with the fair configuration of docs/benchmarks.md (one process,
//! `sendfile on; tcp_nopush on; open_file_cache`, access log off, keep-alive unbounded);
//! `ferry serve` runs one thread. Each run measures wrk's req/s and latency
//! percentiles and the server process's CPU time (utime + stime from /proc), so CPU
//! per request can be compared. With `--pin` both servers run on CPU 0 and wrk on
//! CPU 1 (through `taskset`). The untimed first run fetches the file once from each
//! server with a raw client and checks status, length and every byte.

use std::io;
use std::path::{Path, PathBuf};

use super::common::{fail, Checksum, Method, RunResult};
use super::peers::{self, Peer};

/// Both servers over one root, started once per `ferry bench` run; a server that
/// cannot run is the reason why.
pub struct Servers {
    pub nginx: Result<Peer, String>,
    pub nginx_nopush: Result<Peer, String>,
    pub ferry: Result<Peer, String>,
    wrk: Result<PathBuf, String>,
    pin: bool,
    /// HTTPS (https-static): the certificate both servers use.
    tls: Option<super::https::TlsFiles>,
}

impl Servers {
    /// Starts nginx and `ferry serve` on `root` (nginx's own files go under
    /// `root/.nginx`). Absent peers are reasons, not errors.
    pub fn start(root: &Path, pin: bool) -> Servers {
        Servers::start_with(root, pin, None)
    }

    /// The HTTPS pair (https-static): nginx with `ssl` and `ferry serve` with TLS, one
    /// certificate made for the run.
    pub fn start_tls(root: &Path, pin: bool) -> Servers {
        match super::https::TlsFiles::make(root) {
            Ok(tls) => Servers::start_with(root, pin, Some(tls)),
            Err(e) => {
                let why = format!("not run: no certificate: {e}");
                Servers {
                    nginx: Err(why.clone()),
                    nginx_nopush: Err(why.clone()),
                    ferry: Err(why.clone()),
                    wrk: Err(why),
                    pin,
                    tls: None,
                }
            }
        }
    }

    fn start_with(root: &Path, pin: bool, tls: Option<super::https::TlsFiles>) -> Servers {
        let server_cpu = pin.then_some(0);
        let wrk = peers::find("wrk")
            .ok_or_else(|| "not run: wrk not installed (scripts/install-peers.sh)".to_string());
        let nginx = |nopush: bool| match peers::find("nginx") {
            None => Err("not run: nginx not installed (scripts/install-peers.sh)".to_string()),
            Some(bin) => peers::start_nginx(&bin, root, server_cpu, nopush, 8192, 65, tls.as_ref())
                .map_err(|e| format!("nginx did not start: {e}")),
        };
        let (cert, key) = match &tls {
            Some(t) => (t.cert.display().to_string(), t.key.display().to_string()),
            None => Default::default(),
        };
        let extra: Vec<&str> = match &tls {
            Some(_) => vec!["--tls-cert", &cert, "--tls-key", &key],
            None => Vec::new(),
        };
        let name = if tls.is_some() {
            "ferry serve (TLS)"
        } else {
            "ferry serve"
        };
        let ferry = peers::start_ferry_serve(root, server_cpu, name, &extra)
            .map_err(|e| format!("ferry serve did not start: {e}"));
        Servers {
            nginx: nginx(true),
            // One nginx configuration over TLS (tcp_nopush matters little there).
            nginx_nopush: match &tls {
                Some(_) => Err("not run over TLS".into()),
                None => nginx(false),
            },
            ferry,
            wrk,
            pin,
            tls,
        }
    }

    /// Why `m` cannot run here, if it cannot.
    pub fn unavailable(&self, m: Method) -> Option<String> {
        if let Err(e) = &self.wrk {
            return Some(e.clone());
        }
        match m {
            Method::Nginx | Method::NginxTls => self.nginx.as_ref().err().cloned(),
            Method::NginxNoPush => self.nginx_nopush.as_ref().err().cloned(),
            Method::FerryServe | Method::FerryServeTls => self.ferry.as_ref().err().cloned(),
            _ => Some("not an HTTP server".into()),
        }
    }

    /// One light-load run of `m` (`super::paced`): one connection at a fixed rate for
    /// `secs`, from CPU 1 with `--pin`.
    pub fn paced(&self, m: Method, size: u64, secs: f64) -> io::Result<RunResult> {
        let peer = self.peer(m)?;
        let (addr, pid, pin) = (peer.addr, peer.child.id(), self.pin);
        let path = format!("/data-{size}");
        std::thread::scope(|s| {
            s.spawn(|| {
                if pin {
                    super::rr::pin_to_cpu(1)?;
                }
                super::paced::http(addr, &path, size, secs, pid)
            })
            .join()
            .map_err(|_| fail("the paced client panicked"))?
        })
    }

    /// The address and process id of `m`'s server.
    pub fn target(&self, m: Method) -> io::Result<(std::net::SocketAddr, u32)> {
        let peer = self.peer(m)?;
        Ok((peer.addr, peer.child.id()))
    }

    fn peer(&self, m: Method) -> io::Result<&Peer> {
        match m {
            Method::Nginx | Method::NginxTls => self.nginx.as_ref(),
            Method::NginxNoPush => self.nginx_nopush.as_ref(),
            _ => self.ferry.as_ref(),
        }
        .map_err(|e| fail(e.clone()))
    }

    /// One run of `m`: verify (`expect` given: one GET, every byte checked, untimed)
    /// or measure (wrk for `secs` with `connections` connections).
    pub fn run(
        &self,
        m: Method,
        size: u64,
        connections: usize,
        secs: u64,
        expect: Option<Checksum>,
    ) -> io::Result<RunResult> {
        self.run_wrk(m, size, connections, secs, expect, &[])
    }

    /// `run` with a new connection per request (`Connection: close`): over TLS, a
    /// handshake per request (https-handshakes).
    pub fn run_new_connections(
        &self,
        m: Method,
        size: u64,
        connections: usize,
        secs: u64,
        expect: Option<Checksum>,
    ) -> io::Result<RunResult> {
        self.run_wrk(
            m,
            size,
            connections,
            secs,
            expect,
            &["-H", "Connection: close"],
        )
    }

    fn run_wrk(
        &self,
        m: Method,
        size: u64,
        connections: usize,
        secs: u64,
        expect: Option<Checksum>,
        extra: &[&str],
    ) -> io::Result<RunResult> {
        let peer = self.peer(m)?;
        let path = format!("/data-{size}");
        if let Some(want) = expect {
            match &self.tls {
                Some(tls) => {
                    let all = tls.fetch(peer.addr, &path)?;
                    peers::check_response(&all, peer.name, size, want)?;
                }
                None => peers::verify_get(peer.addr, peer.name, &path, size, want)?,
            }
            return Ok(peers::verified(size));
        }
        let wrk = self.wrk.as_ref().map_err(|e| fail(e.clone()))?;
        let url = match self.tls {
            // The certificate names localhost; wrk does not check it.
            Some(_) => format!("https://{}{path}", peer.addr),
            None => format!("http://{}{path}", peer.addr),
        };
        peers::wrk(wrk, self.pin, &url, connections, secs, size, peer, extra)
    }
}
