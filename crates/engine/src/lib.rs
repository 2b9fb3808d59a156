//! ferry-engine: many zero-copy transfers at once.
//!
//! An [`Engine`] runs [`Transfer`]s — file → socket, file → file, file → pipe, socket →
//! socket — inside the kernel. Every transfer follows one plan (the transfer algorithm,
//! written once); executors carry its steps out: io_uring rings issuing `READ`, `SEND`
//! and linked `SPLICE` pairs (Linux), a pool of threads making `sendfile`, `splice`,
//! `copy_file_range`, `pread`/`send` calls (where io_uring is unavailable, forced off,
//! or not Linux), and, for small file bodies, the submitting thread itself with calls
//! that cannot block.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::sync::Arc;
//! use ferry_engine::{Engine, Transfer};
//!
//! let engine = Engine::new()?;
//! let mut file = tempfile::tempfile()?;
//! file.write_all(&vec![42u8; 1 << 20])?;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let client = TcpStream::connect(listener.local_addr()?)?;
//! let (mut server, _) = listener.accept()?;
//! let reader = std::thread::spawn(move || {
//!     let mut v = Vec::new();
//!     server.read_to_end(&mut v).map(|_| v)
//! });
//! let client = Arc::new(client);
//! let handle = engine.submit(Transfer::new(Arc::new(file), client.clone())
//!     .src_offset(Some(0))
//!     .header(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()))?;
//! let progress = handle.progress(); // body bytes so far; kept for errors too
//! let done = handle.wait()?;        // or `.await`; an Err's raw_os_error() is the errno
//! assert_eq!(done.bytes, 1 << 20);
//! assert_eq!(progress.bytes(), 1 << 20);
//! client.shutdown(std::net::Shutdown::Write)?;
//! assert_eq!(reader.join().unwrap()?.len(), 19 + (1 << 20));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! See `docs/engine.md` for the map of the crate, the plan as a table, the backend
//! contract, kernel requirements, and what is guaranteed on error, timeout, cancel and
//! drop.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]

// Modules import each other in one direction: docs/engine.md lists the order.
mod backend;
mod backend_kind;
mod body_cache;
mod builder;
mod engine;
mod error;
mod events;
#[cfg(test)]
mod footprint_tests;
mod gate;
mod group;
mod handle;
mod idle;
mod job;
#[cfg(target_os = "linux")]
mod local;
mod modes;
mod plan;
mod proxy;
mod resolve;
mod resolved;
mod seal;
mod stats;
mod sys;
mod transfer;

pub use backend_kind::{Backend, RunsOn};
pub use builder::EngineBuilder;
pub use engine::{Engine, SubmitAsync};
pub use error::TransferError;
pub use events::{Event, OpId};
pub use handle::{CancelOnDrop, Completed, Progress, TransferHandle};
#[cfg(target_os = "linux")]
pub use local::{LocalEngine, LocalEngineBuilder, LocalHandle, LocalProxyHandle};
pub use proxy::{Proxy, ProxyError, ProxyHandle};
pub use seal::{Seal, SEAL_CHUNK};
pub use stats::{EngineStats, KindStats, Latency, SizeClass};
pub use transfer::{Transfer, TransferKind};

/// The README's and docs/embedding.md's snippets, compiled as doctests so they can
/// never drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
#[doc = include_str!("../../../docs/embedding.md")]
struct DocSnippets;
