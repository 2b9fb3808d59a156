//! The OS layer. Each module provides the same contract, one kernel call per function
//! (EINTR retried), with arguments already checked and clamped by the caller:
//!
//! * `sendfile(out, in_, offset, count)`: `offset: None` uses and advances `in_`'s
//!   position, `Some` leaves it alone; returns bytes moved, 0 at EOF;
//! * `sendfile_with(..)`: the same with header and trailer buffers around the body;
//! * `splice(src, dst, count, off_src, off_dst, flags)`: one side must be a pipe;
//! * `copy_file_range(src, dst, count, off_src, off_dst)`: between regular files.
//!
//! Modules: `linux` (the real syscalls), `bsd` (native sendfile on macOS/FreeBSD, the
//! fallback for the rest; not compiled on our Linux CI), `fallback` (portable
//! `pread`/`write` emulation, compiled everywhere so that it is type-checked and tested
//! here; selected on Linux with `--cfg ferry_force_fallback`), and `common` (portable
//! helpers the others share), `afalg` (AF_ALG's `sendmsg` with control messages).

pub(crate) mod afalg;
pub(crate) mod common;

#[cfg_attr(
    all(
        any(target_os = "linux", target_os = "macos", target_os = "freebsd"),
        not(ferry_force_fallback)
    ),
    allow(dead_code)
)]
pub(crate) mod fallback;

#[cfg(all(target_os = "linux", not(ferry_force_fallback)))]
mod linux;
#[cfg(all(target_os = "linux", not(ferry_force_fallback)))]
pub(crate) use linux::*;

#[cfg(all(
    any(target_os = "macos", target_os = "freebsd"),
    not(ferry_force_fallback)
))]
mod bsd;
#[cfg(all(
    any(target_os = "macos", target_os = "freebsd"),
    not(ferry_force_fallback)
))]
pub(crate) use bsd::*;

#[cfg(any(
    ferry_force_fallback,
    not(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))
))]
pub(crate) use fallback::*;
