//! Kernel TLS on a connected TCP socket: the `tls` upper-layer protocol, then the
//! crypto state of each direction (`SOL_TLS`, `TLS_TX` / `TLS_RX`). The crypto state
//! is the kernel's `struct tls12_crypto_info_*` (a `u16` version, a `u16` cipher, then
//! byte arrays), built by the caller (`tls/ktls.rs`) as bytes.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

const TCP_ULP: libc::c_int = 31;
const SOL_TLS: libc::c_int = 282;
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;

/// Which direction a crypto state is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtlsDirection {
    /// What the socket sends (`TLS_TX`).
    Tx,
    /// What it receives (`TLS_RX`).
    Rx,
}

fn set(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: &[u8]) -> io::Result<()> {
    // SAFETY: `value` is valid for reads of its length for the duration of the call;
    // the fd is borrowed and open.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Attaches the `tls` upper-layer protocol (`ENOENT`: the kernel has no TLS module).
pub fn ktls_set_ulp(fd: BorrowedFd<'_>) -> io::Result<()> {
    set(fd, libc::SOL_TCP, TCP_ULP, b"tls")
}

/// Hands one direction's crypto state (`struct tls12_crypto_info_*` as bytes) to the
/// kernel: from then on it seals what is sent, or opens what is received.
pub fn ktls_set_crypto(fd: BorrowedFd<'_>, dir: KtlsDirection, info: &[u8]) -> io::Result<()> {
    let name = match dir {
        KtlsDirection::Tx => TLS_TX,
        KtlsDirection::Rx => TLS_RX,
    };
    set(fd, SOL_TLS, name, info)
}
