//! The server's TLS configuration from PEM files: TLS 1.3 and 1.2, ALPN `http/1.1`,
//! session tickets (TLS 1.3 tickets and TLS 1.2 stateless resumption, keys rotated by
//! rustls' ticketer, shared by every thread).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// `--tls-cert` and `--tls-key`: both or neither.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// Speak TLS to clients with this certificate chain (PEM: the server's certificate
    /// first, then its intermediates). Needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

fn bad(arg: &str, path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{arg} {}: {why}", path.display()),
    )
}

/// The server config of `args`, or `None` when TLS is off. `kernel`: the record layer
/// may move to the kernel after the handshake (the secrets are then kept for it).
/// `alpn`: the protocols offered (`http/1.1` for `ferry serve`; none for `ferry proxy`,
/// which does not know what its backends speak).
pub fn load(args: &TlsArgs, kernel: bool, alpn: &[&[u8]]) -> io::Result<Option<Arc<ServerConfig>>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("--tls-cert", cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("--tls-cert", cert, e))?;
    if chain.is_empty() {
        return Err(bad("--tls-cert", cert, "no CERTIFICATE in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("--tls-key", key, e))?;
    // ring: builds with `cc` alone, in seconds; aws-lc-rs (post-quantum key exchange,
    // faster AES-GCM on some CPUs) is weighed in docs/dependencies.md.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad("--tls-key", args.tls_key.as_deref().unwrap(), e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_secret_extraction = kernel;
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(io::Error::other)?;
    Ok(Some(Arc::new(config)))
}
