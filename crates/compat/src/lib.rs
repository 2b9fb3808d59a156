//! Synchronous `sendfile`, `splice`, `copy_file_range` and friends, with the semantics
//! of Python's `os` and `socket` modules, shaped for Rust.
//!
//! Every function takes `impl AsFd`, so `&File`, `&TcpStream`, `&OwnedFd` and pipe ends
//! all work. Errors follow one rule:
//!
//! * an error from the kernel is passed through as [`io::Error::from_raw_os_error`], so
//!   `raw_os_error()` is what Python's `OSError.errno` would be;
//! * an argument the kernel would not catch (or would silently wrap) is refused with
//!   [`ErrorKind::InvalidInput`](std::io::ErrorKind::InvalidInput) and a message that
//!   names the argument;
//! * `EINTR` is retried (PEP 475); nothing panics on bad input.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//!
//! let mut file = tempfile::tempfile()?;
//! file.write_all(b"hello, ferry")?;
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let client = TcpStream::connect(listener.local_addr()?)?;
//! let (mut server, _) = listener.accept()?;
//!
//! let sent = ferry_compat::sendfile(&client, &file, Some(7), 5)?;
//! assert_eq!(sent, 5);
//! let mut got = [0u8; 5];
//! server.read_exact(&mut got)?;
//! assert_eq!(&got, b"ferry");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The OS code lives in a private `sys` module: `linux` (the real syscalls), `bsd`
//! (macOS/FreeBSD native `sendfile` with headers and trailers; not compiled on our CI)
//! and `fallback` (portable `pread`/`pwrite`/`read`/`write` emulation). Build with
//! `RUSTFLAGS="--cfg ferry_force_fallback"` to use the fallback on Linux; CI runs the
//! whole test suite both ways. See `docs/compat.md` for how each function compares with
//! Python.
#![deny(missing_docs)]
#![deny(unsafe_code)] // `unsafe` lives in `sys` only
#![warn(missing_debug_implementations)]

mod afalg;
mod copy_range;
mod fdflags;
mod flags;
mod sendfile;
mod socket_sendfile;
mod splice;
#[allow(unsafe_code)] // every kernel call, each with its SAFETY
mod sys;
mod util;

pub use afalg::{afalg_available, sendmsg_afalg};
pub use copy_range::copy_file_range;
pub use fdflags::{get_blocking, get_inheritable, set_blocking, set_inheritable};
pub use flags::{AlgOp, SendfileFlags, SpliceFlags};
pub use sendfile::{sendfile, sendfile_with};
pub use socket_sendfile::socket_sendfile;
pub use splice::splice;

/// The most bytes one kernel read/write call moves on Linux (`MAX_RW_COUNT`,
/// `INT_MAX` rounded down to a page). Larger counts are clamped to this before the call.
pub const MAX_CHUNK: usize = 0x7fff_f000;

/// Which OS layer this build uses: `"linux"`, `"bsd"` or `"fallback"`.
///
/// ```
/// assert!(["linux", "bsd", "fallback"].contains(&ferry_compat::implementation()));
/// ```
pub fn implementation() -> &'static str {
    sys::NAME
}
