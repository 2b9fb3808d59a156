//! The few calls of `ferry serve`/`ferry proxy` that `libc` has and `rustix` does not.

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
