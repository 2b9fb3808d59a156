//! The one place that turns libc results into `io::Result`, plus argument checks.

use std::io;

/// `-1` → the thread's errno as an `io::Error`; anything else passes through.
pub(crate) fn cvt<T: Copy + PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Like [`cvt`], retrying while the call fails with `EINTR` (PEP 475).
pub(crate) fn cvt_r<T: Copy + PartialEq + From<i8>>(mut f: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cvt(f()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// An `InvalidInput` error naming the argument at fault.
pub(crate) fn invalid(arg: &str, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{arg}: {why}"))
}

/// Refuses offsets the kernel's signed `loff_t` cannot hold.
pub(crate) fn check_offset(arg: &str, off: Option<u64>) -> io::Result<Option<i64>> {
    match off {
        None => Ok(None),
        Some(o) => i64::try_from(o)
            .map(Some)
            .map_err(|_| invalid(arg, &format!("{o} is larger than i64::MAX"))),
    }
}

/// Clamps a byte count to what one kernel call accepts.
pub(crate) fn clamp(count: usize) -> usize {
    count.min(crate::MAX_CHUNK)
}
