//! `sendmsg_afalg` (Python's `socket.socket.sendmsg_afalg`).

use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use crate::flags::AlgOp;
use crate::sys;
use crate::util::invalid;

/// Sends `msg` to an AF_ALG operation socket (one made by `accept` on a bound AF_ALG
/// socket) with the control messages that set the operation, the IV and the AEAD
/// associated-data length; read the result from the same socket.
///
/// Wraps `sendmsg(2)` with `SOL_ALG` control messages: `ALG_SET_OP` (always, from `op`),
/// `ALG_SET_IV` (when `iv` is given; the kernel's `struct af_alg_iv`) and
/// `ALG_SET_AEAD_ASSOCLEN` (when `assoclen` is given). `flags` go to `sendmsg` as they
/// are (`MSG_MORE` to send the message in pieces). Returns the bytes accepted.
///
/// Errors: a non-socket `sock` is `InvalidInput`; a socket of another family is
/// `InvalidInput` when the kernel has AF_ALG and `Unsupported` when it has none (Linux
/// built without `CONFIG_CRYPTO_USER_API`, or any non-Linux system); an `iv` longer than
/// `u32::MAX` bytes is `InvalidInput`; the kernel's own errors pass through.
///
/// The machines this crate is tested on have no AF_ALG, so only the argument checks
/// run there; the full encrypt test runs wherever AF_ALG exists (see the test suite).
///
/// ```
/// use std::io::{ErrorKind, IoSlice};
/// use ferry_compat::{sendmsg_afalg, AlgOp};
/// // A TCP socket is not an AF_ALG socket: refused before anything is sent.
/// let l = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let s = std::net::TcpStream::connect(l.local_addr()?)?;
/// let err = sendmsg_afalg(&s, &[IoSlice::new(b"x")], AlgOp::Encrypt, None, None, 0)
///     .unwrap_err();
/// assert!(matches!(err.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # References
/// [Linux kernel crypto user-space interface](https://www.kernel.org/doc/html/latest/crypto/userspace-if.html),
/// [sendmsg(2)](https://man7.org/linux/man-pages/man2/sendmsg.2.html),
/// [Python `socket.sendmsg_afalg`](https://docs.python.org/3/library/socket.html#socket.socket.sendmsg_afalg)
pub fn sendmsg_afalg(
    sock: impl AsFd,
    msg: &[IoSlice<'_>],
    op: AlgOp,
    iv: Option<&[u8]>,
    assoclen: Option<u32>,
    flags: i32,
) -> io::Result<usize> {
    if iv.is_some_and(|iv| u32::try_from(iv.len()).is_err()) {
        return Err(invalid("iv", "longer than u32::MAX bytes"));
    }
    sys::afalg::sendmsg_afalg(sock.as_fd(), msg, op, iv, assoclen, flags)
}

/// Whether this kernel offers AF_ALG sockets (tries to open one).
#[doc(hidden)]
pub fn afalg_available() -> bool {
    sys::afalg::available()
}
