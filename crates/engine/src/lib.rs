//! ferry-engine: many zero-copy transfers at once.
//!
//! An [`Engine`] runs [`Transfer`]s — file → socket, file → file, file → pipe, socket →
//! socket — inside the kernel: on Linux through io_uring rings issuing `SPLICE`, `READ`
//! and `SEND` operations from a per-transfer state machine, elsewhere (or where io_uring
//! is unavailable or forced off) through a pool of threads making blocking `sendfile`,
//! `splice` and `copy_file_range` calls via `ferry-compat`.
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
//! let done = engine
//!     .submit(Transfer::new(Arc::new(file), client.clone())
//!         .src_offset(Some(0))
//!         .header(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()))?
//!     .wait()?;
//! assert_eq!(done.bytes, 1 << 20);
//! client.shutdown(std::net::Shutdown::Write)?;
//! assert_eq!(reader.join().unwrap()?.len(), 19 + (1 << 20));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! See `docs/engine.md` for how a transfer runs and what is guaranteed on error,
//! timeout, cancel and drop.
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod blocking;
mod engine;
mod handle;
mod inline;
mod stats;
mod transfer;
#[cfg(target_os = "linux")]
mod uring;

pub use engine::{Backend, Engine, EngineBuilder};
pub use handle::{Completed, TransferError, TransferHandle};
pub use stats::{EngineStats, KindStats, Latency, SizeClass};
pub use transfer::{Transfer, TransferKind};
