//! The few calls of `ferry serve`/`ferry proxy` that `libc` has and `rustix` does not
//! (kernel TLS setup in `ktls.rs`).

/// Gives the heap's free pages back to the kernel (glibc keeps them after a crowd of
/// connections left; `malloc_trim` releases free pages anywhere in the heap, not only
/// at its top). Nothing where the C library is not glibc.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a plain integer and only walks the allocator's own
    // structures under its locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Takes ownership of an fd this process inherited (socket activation: fds 3.. that
/// the service manager passed, named by `LISTEN_FDS`), or `None` when `fd` is not open.
pub fn take_inherited(fd: std::os::fd::RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags; EBADF tells an unused
    // number, which is then not touched.
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
    if !open {
        return None;
    }
    // SAFETY: `fd` is open (checked above) and, by the socket-activation protocol the
    // caller checked (LISTEN_PID is this process), passed to this process for it to own;
    // nothing else in the process refers to it, so it is owned exactly once here.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
mod ktls;
pub use ktls::{ktls_recv_record, ktls_send_record, ktls_set_crypto, ktls_set_ulp, KtlsDirection};
