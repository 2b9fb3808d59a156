//! What the TLS tests share: a certificate for `localhost` made at test time (PEM files
//! in a fresh directory), rustls client configs that trust it, the `--tls-cert`/
//! `--tls-key` flags, and the kernel's TLS counters.
#![allow(dead_code)] // each test binary uses a part of these helpers

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

pub struct Cert {
    dir: tempfile::TempDir,
    der: CertificateDer<'static>,
}

impl Cert {
    pub fn new() -> Cert {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        Cert {
            der: ck.cert.der().clone(),
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `--tls-cert C --tls-key K`, then `extra`.
    pub fn flags(&self, extra: &[&str]) -> Vec<String> {
        let (c, k) = (self.path("cert.pem"), self.path("key.pem"));
        let mut flags = vec![
            "--tls-cert".to_string(),
            c.display().to_string(),
            "--tls-key".to_string(),
            k.display().to_string(),
        ];
        flags.extend(extra.iter().map(|s| s.to_string()));
        flags
    }

    /// A client trusting this certificate, for `versions` (empty: rustls' defaults).
    pub fn client_for(&self, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        #[allow(deprecated)] // ring: a light test peer
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider);
        let builder = if versions.is_empty() {
            builder.with_safe_default_protocol_versions()
        } else {
            builder.with_protocol_versions(versions)
        };
        let config = builder
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }
}

/// The kernel's TLS counters (`/proc/net/tls_stat`), by name; 0 without TLS.
pub fn tls_stat(name: &str) -> u64 {
    let stat = std::fs::read_to_string("/proc/net/tls_stat").unwrap_or_default();
    stat.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next().unwrap().parse().unwrap())
        })
        .unwrap_or(0)
}

/// strace attached to a running process (all its threads), tracing `calls`: what moved
/// the bytes.
pub struct Strace {
    child: std::process::Child,
    log: tempfile::NamedTempFile,
}

impl Strace {
    /// Attaches to `pid` (waits until it is attached).
    pub fn attach(pid: u32, calls: &str) -> Strace {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = std::process::Command::new("strace")
            .args(["-f", "-qq", "-e", &format!("trace={calls}"), "-o"])
            .arg(log.path())
            .args(["-p", &pid.to_string()])
            .spawn()
            .expect("strace (scripts/install-test-deps.sh)");
        std::thread::sleep(std::time::Duration::from_millis(500));
        Strace { child, log }
    }

    /// Detaches; the trace.
    pub fn finish(mut self) -> Trace {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        Trace(std::fs::read_to_string(self.log.path()).unwrap())
    }
}

/// An strace log (`-f`: each line starts with the thread's id).
pub struct Trace(pub String);

impl Trace {
    /// The bytes the successful calls of `call` returned, summed (a call split by
    /// another thread's line counts on its `resumed` line).
    pub fn bytes(&self, call: &str) -> u64 {
        let (start, resumed) = (format!("{call}("), format!("<... {call} resumed>"));
        self.0
            .lines()
            .filter(|l| {
                let rest = l
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .trim_start();
                rest.starts_with(&start) || rest.starts_with(&resumed)
            })
            .filter_map(|l| {
                l.rsplit("= ")
                    .next()?
                    .split_whitespace()
                    .next()?
                    .parse::<i64>()
                    .ok()
            })
            .filter(|&n| n > 0)
            .map(|n| n as u64)
            .sum()
    }

    /// `call: N bytes` for each of `calls`.
    pub fn summary(&self, calls: &[&str]) -> String {
        let each: Vec<String> = calls
            .iter()
            .map(|c| format!("{c}: {} bytes", self.bytes(c)))
            .collect();
        each.join(", ")
    }
}
