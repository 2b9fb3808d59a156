//! What the `https-static` scenario adds to `http-static`: a certificate made for the
//! run (both servers use it, so both negotiate the same cipher with wrk), and a TLS
//! client for the untimed byte check.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for `localhost` and its key, as PEM files under the run's
/// directory.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    der: CertificateDer<'static>,
}

impl TlsFiles {
    pub fn make(dir: &std::path::Path) -> io::Result<TlsFiles> {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .map_err(io::Error::other)?;
        let (cert, key) = (dir.join("bench-cert.pem"), dir.join("bench-key.pem"));
        std::fs::write(&cert, ck.cert.pem())?;
        std::fs::write(&key, ck.signing_key.serialize_pem())?;
        Ok(TlsFiles {
            cert,
            key,
            der: ck.cert.der().clone(),
        })
    }

    /// `GET path` over TLS with `Connection: close`: every byte of the answer.
    pub fn fetch(&self, addr: SocketAddr, path: &str) -> io::Result<Vec<u8>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).map_err(io::Error::other)?;
        #[allow(deprecated)] // ring, as ferry serve: a light build
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
        let sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut s = rustls::StreamOwned::new(conn, sock);
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
        )?;
        let mut all = Vec::new();
        match s.read_to_end(&mut all) {
            Ok(_) => Ok(all),
            // A server that closes without close_notify after a complete answer.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !all.is_empty() => Ok(all),
            Err(e) => Err(e),
        }
    }
}
