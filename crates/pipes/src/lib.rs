//! Pooled kernel pipe pairs for `splice`.
//!
//! Moving bytes between two non-pipe descriptors with `splice(2)` needs a pipe in the
//! middle. Creating one costs two syscalls (`pipe2` + `F_SETPIPE_SZ`) and two fds, so
//! servers keep them in a pool. This crate is that pool:
//!
//! * bounded: at most [`PoolConfig::capacity`] idle pipes are kept; more are closed on
//!   return, so the pool never hoards fds;
//! * sized: every pipe is grown to [`PoolConfig::pipe_size`] with `F_SETPIPE_SZ`, clamped to
//!   `/proc/sys/fs/pipe-max-size`; when the per-user pipe budget
//!   (`/proc/sys/fs/pipe-user-pages-soft`) is spent the kernel refuses and the pool carries
//!   on with the smaller pipe it got, counted in [`PoolStats::undersized`];
//! * clean: a pipe is checked with `FIONREAD` when it is returned and closed if it still
//!   holds bytes, so stale data from one transfer can never reach another.
//!
//! ```
//! use ferry_pipes::{PipePool, PoolConfig};
//! use std::io::{Read, Write};
//! use std::fs::File;
//!
//! let pool = PipePool::new(PoolConfig { capacity: 4, nonblocking: false, ..Default::default() })?;
//! let pipe = pool.get()?;
//! let mut w = File::from(pipe.writer().try_clone_to_owned()?);
//! let mut r = File::from(pipe.reader().try_clone_to_owned()?);
//! w.write_all(b"hello")?;
//! let mut buf = [0u8; 5];
//! r.read_exact(&mut buf)?;
//! assert_eq!(&buf, b"hello");
//! drop(pipe); // empty again: back to the pool
//! assert_eq!(pool.stats().idle, 1);
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]
#![deny(unsafe_code)] // `unsafe` lives in `sys` only

mod pool;
#[allow(unsafe_code)] // the pipe syscalls, each with its SAFETY comment
mod sys;

pub use pool::{PipePool, PoolConfig, PoolStats, PooledPipe};
