//! Flag types: `SendfileFlags` (`os.SF_*`), `SpliceFlags` (`os.SPLICE_F_*`), `AlgOp`.

use bitflags::bitflags;

bitflags! {
    /// Flags of BSD `sendfile` (Python's `os.SF_*`).
    ///
    /// Only FreeBSD/macOS honour them; on Linux they are accepted and ignored, as
    /// Python's documentation allows ("flags ... cross-platform applications should not
    /// use").
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SendfileFlags: u32 {
        /// `SF_NODISKIO`: do not wait for disk I/O; fail with `EBUSY` instead.
        const NODISKIO = 0x0001;
        /// `SF_MNOWAIT`: do not wait for memory allocations (FreeBSD; ignored since 11).
        const MNOWAIT = 0x0002;
        /// `SF_SYNC`: return only when the data has been sent out of the page cache.
        const SYNC = 0x0004;
        /// `SF_NOCACHE`: do not keep the pages in the page cache after sending.
        const NOCACHE = 0x0010;
    }
}

bitflags! {
    /// Flags of `splice(2)` (Python's `os.SPLICE_F_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SpliceFlags: u32 {
        /// `SPLICE_F_MOVE`: a hint to move pages instead of copying (a no-op since 2.6.21).
        const MOVE = 1;
        /// `SPLICE_F_NONBLOCK`: do not block on the *pipe* side (the other fd's own
        /// `O_NONBLOCK` still decides whether it blocks).
        const NONBLOCK = 2;
        /// `SPLICE_F_MORE`: more data follows (like `MSG_MORE` on a socket).
        const MORE = 4;
    }
}

/// The operation of an AF_ALG cipher socket (`ALG_OP_ENCRYPT` / `ALG_OP_DECRYPT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgOp {
    /// `ALG_OP_ENCRYPT`
    Encrypt,
    /// `ALG_OP_DECRYPT`
    Decrypt,
}

impl AlgOp {
    /// The kernel's value for this operation.
    pub fn as_raw(self) -> u32 {
        match self {
            AlgOp::Decrypt => 0,
            AlgOp::Encrypt => 1,
        }
    }
}
