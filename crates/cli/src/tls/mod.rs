//! TLS for `ferry serve` and `ferry proxy`: rustls does the handshake (`session.rs`);
//! then, where the kernel has TLS, the record layer moves to the socket (`ktls.rs`) and
//! the connection is served as a plain one — bodies by `sendfile`/`splice`, sealed by
//! the kernel; elsewhere records are sealed and opened in user space by the
//! connection's rustls state, bodies through the engine's sealed strategy
//! (`Transfer::seal`). `config.rs` loads the certificate chain and key from PEM files.
//! docs/serve.md, "HTTPS"; docs/proxy.md, "TLS".

mod config;
pub mod ktls;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};

pub use config::{load, TlsArgs};
pub use session::{Received, Session};

/// Whether this kernel can take connections' record layers (the `tls` module), or
/// why not, in words for the ready line.
pub fn kernel_support() -> Result<(), String> {
    match ktls::probe() {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            Err("this kernel has no TLS module".to_string())
        }
        Err(e) => Err(format!("kernel TLS unavailable: {e}")),
    }
}

/// The ready line's words on TLS, given [`kernel_support`].
pub fn ready_text(kernel: &Result<(), String>) -> String {
    match kernel {
        Ok(()) => "; TLS 1.3/1.2 by rustls, records by the kernel (kTLS)".to_string(),
        Err(why) => format!("; TLS 1.3/1.2 by rustls, encrypted in user space ({why})"),
    }
}

/// Connections whose records went to the kernel, and those sealed in user space.
static KERNEL: AtomicU64 = AtomicU64::new(0);
static USER: AtomicU64 = AtomicU64::new(0);

/// Counts a connection's record layer: in the kernel, or in user space.
pub fn count(kernel: bool) {
    let n = if kernel { &KERNEL } else { &USER };
    n.fetch_add(1, Ordering::Relaxed);
}

/// `"N by the kernel, M in user space"`, for the stop line.
pub fn counts() -> String {
    format!(
        "{} by the kernel, {} in user space",
        KERNEL.load(Ordering::Relaxed),
        USER.load(Ordering::Relaxed)
    )
}

/// An error-log line about a client's TLS (one a second at most).
pub fn note(peer: Option<std::net::IpAddr>, what: std::fmt::Arguments<'_>) {
    let peer = peer.map_or_else(|| "-".to_string(), |p| p.to_string());
    crate::error_log::say(
        crate::error_log::Level::Notice,
        crate::error_log::Kind::Tls,
        format_args!("TLS with client {peer}: {what}"),
    );
}
