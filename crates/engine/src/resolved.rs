//! What the submit-time checks (`resolve`) decided about a transfer: plain data the
//! plan and the executors read, with no system call behind it.

use crate::transfer::TransferKind;

/// What an fd is, for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdKind {
    File,
    Socket,
    Pipe,
}

/// A checked transfer: kinds, offsets, length and modes, decided at submit.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub kind: TransferKind,
    pub src_kind: FdKind,
    pub dst_kind: FdKind,
    /// File source: where to read. Streams: None.
    pub src_off: Option<u64>,
    /// File destination: where to write. Otherwise None.
    pub dst_off: Option<u64>,
    pub len: Option<u64>,
    /// Body bytes a file source held from `src_off` at submit (a hint: the body
    /// still ends at the first read of 0).
    pub src_avail: Option<u64>,
    pub src_nonblocking: bool,
    /// None: not asked (a socket seen before needs no flags checked; whoever needs
    /// O_NONBLOCK asks then).
    pub dst_nonblocking: Option<bool>,
}
