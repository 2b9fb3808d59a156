//! TLS for `ferry serve` (and, later, `ferry proxy`): rustls does the handshake
//! (`session.rs`); then, where the kernel has TLS, the record layer moves to the socket
//! (`ktls.rs`) and the connection is served as plain HTTP — bodies by
//! `sendfile`/`splice`, sealed by the kernel; elsewhere records are sealed and opened
//! in user space by the connection's rustls state, file bodies through the engine's
//! sealed strategy (`Transfer::seal`). `config.rs` loads the certificate chain and key
//! from PEM files. docs/serve.md, "HTTPS".

mod config;
pub mod ktls;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};

pub use config::{load, TlsArgs};
pub use session::{Received, Session};

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
