//! How a transfer fails: the one path from a kernel result to an `io::Error`, and the
//! engine's own failures (timeout, cancel, shutdown, short source) with bytes moved.

use std::fmt;
use std::io;

/// The details of a failure the kernel did not report: a timeout, a cancel, the
/// engine shutting down, a source shorter than `len`. Found inside the `io::Error`
/// (`err.get_ref()` / [`TransferError::of`]); the `io::Error`'s kind says which
/// (`TimedOut`, `Interrupted`, `UnexpectedEof`, `WriteZero`).
///
/// Errors from the kernel are plain OS errors instead: `err.raw_os_error()` is the
/// errno (`EPIPE`, `ECONNRESET`, …), exactly as `ferry-compat` and Python report it.
/// `std::io::Error` cannot hold an errno and a payload at once, so the body bytes a
/// failed transfer moved are always available from the handle, whatever the error:
/// [`TransferHandle::progress`](crate::TransferHandle::progress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferError {
    /// The kernel's errno, when the failure came from the kernel (kernel-internal
    /// restart codes ≥ 512 surface as `Interrupted` with the code here).
    pub errno: Option<i32>,
    /// Body bytes delivered to `dst` before the failure.
    pub bytes: u64,
    /// What happened.
    pub reason: String,
}

impl TransferError {
    /// The `TransferError` inside an error returned by a transfer, if it has one
    /// (not for plain kernel errors; see the type's documentation).
    pub fn of(err: &io::Error) -> Option<&TransferError> {
        err.get_ref()?.downcast_ref()
    }

    /// An engine failure of `kind` after `bytes` body bytes.
    pub(crate) fn io(kind: io::ErrorKind, bytes: u64, reason: impl Into<String>) -> io::Error {
        io::Error::new(
            kind,
            TransferError {
                errno: None,
                bytes,
                reason: reason.into(),
            },
        )
    }
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} after {} body bytes", self.reason, self.bytes)
    }
}

impl std::error::Error for TransferError {}

/// The one conversion of a kernel failure (a syscall's errno or a CQE's `-res`) into
/// the error a transfer fails with. Kernel-internal codes (≥ 512, e.g. `ERESTARTSYS`
/// seen in a CQE of an interrupted io-wq op) never reach users as unknown errnos:
/// they become `Interrupted`.
pub(crate) fn kernel_error(errno: i32, bytes: u64) -> io::Error {
    if errno >= 512 {
        return io::Error::new(
            io::ErrorKind::Interrupted,
            TransferError {
                errno: Some(errno),
                bytes,
                reason: format!("interrupted (kernel code {errno})"),
            },
        );
    }
    io::Error::from_raw_os_error(errno)
}

/// A syscall's or CQE's result as bytes moved or the (positive) errno.
pub(crate) fn from_ret(ret: isize) -> Result<usize, i32> {
    if ret >= 0 {
        Ok(ret as usize)
    } else if ret == -1 {
        Err(errno_of(&io::Error::last_os_error()))
    } else {
        Err((-ret) as i32)
    }
}

/// The errno of an error from a syscall wrapper (`EIO` when it carries none).
pub(crate) fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_errors_keep_the_errno_and_internal_codes_become_interrupted() {
        let e = kernel_error(libc::EPIPE, 7);
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        let e = kernel_error(512, 7);
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        let t = TransferError::of(&e).unwrap();
        assert_eq!((t.errno, t.bytes), (Some(512), 7));
        assert_eq!(
            from_ret(-(libc::ECONNRESET as isize)),
            Err(libc::ECONNRESET)
        );
        assert_eq!(from_ret(5), Ok(5));
    }
}
