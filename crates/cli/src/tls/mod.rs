//! TLS for `ferry serve` (and, later, `ferry proxy`): rustls does the handshake; after
//! it, records are sealed and opened in user space by the connection's rustls state
//! (`session.rs`), file bodies through the engine's sealed strategy
//! (`Transfer::seal`). `config.rs` loads the certificate chain and key from PEM files.
//! docs/tls.md has the design and what is still to come (kernel TLS).

mod config;
mod session;

pub use config::{load, TlsArgs};
pub use session::{Received, Session};
