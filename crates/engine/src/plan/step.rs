//! The vocabulary between the plan and its executors: steps, sides, strategies,
//! capabilities.

/// Which side of the transfer a readiness wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Wait until `src` is readable.
    Src,
    /// Wait until `dst` is writable.
    Dst,
}

/// How the body moves. Chosen at submit from the fds and what the executor can do;
/// it can only step down (copy_file_range or sendfile → splice) when the kernel
/// refuses, keeping every byte already moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// File body read into the staging buffer behind the header, sent with the
    /// trailer in as few writes as possible (small bodies; no io-wq hand-off).
    Buffered,
    /// `sendfile` file → socket/pipe (executors that make syscalls).
    Sendfile,
    /// `copy_file_range` file → file.
    CopyRange,
    /// src → pooled pipe → dst with two splices.
    Splice,
    /// File body held in memory (a `LocalEngine`'s body cache): header, body and
    /// trailer gathered into one non-blocking `sendmsg` — no read, no staging copy.
    Memory,
    /// Stream → socket, small flows: read up to [`RELAY_BUF`](super::RELAY_BUF) into the
    /// staging buffer and send it at once (no pipe, no io-wq hand-off); after
    /// [`RELAY_SWITCH`](super::RELAY_SWITCH) reads in a row that fill the buffer the flow
    /// is bulky and the plan moves to `Splice` (HAProxy's splice-auto rule).
    Relay,
    /// The destination speaks TLS in user space: plaintext read into the staging
    /// buffer a record at a time, sealed by the transfer's `Seal`, sent (`sealed.rs`).
    Sealed,
}

/// What the executor can carry out besides reads, writes, splices and polls (the same
/// for every transfer it runs; per-transfer facts are in [`SmallBody`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Caps {
    /// `sendfile(2)` is available (not on io_uring: no opcode).
    pub sendfile: bool,
    /// `copy_file_range(2)` is available (not on io_uring: no opcode).
    pub copy_range: bool,
    /// Small stream → socket flows go through the staging buffer (`Strategy::Relay`)
    /// until they prove bulky. Executors set it; the plan's unit tests of the splice
    /// path leave it off.
    pub relay: bool,
}

/// How one transfer's small file body into a socket may go out: decided at submit
/// from what is known of this transfer, not of the executor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum SmallBody {
    /// Read into the staging buffer and sent from there.
    #[default]
    Staged,
    /// With `sendfile` (zero-copy): the body is in the page cache, the socket is
    /// non-blocking and a header goes first (see `inline`).
    ZeroCopy,
    /// From memory (a body cache; `Strategy::Memory`): `src_avail` is exact.
    Memory,
}

impl Caps {
    /// Executors that make syscalls: `sendfile` and `copy_file_range` available.
    pub(crate) const SYSCALLS: Caps = Caps {
        sendfile: true,
        copy_range: true,
        relay: true,
    };

    /// io_uring rings: reads, writes and splices, no `sendfile`/`copy_file_range`.
    #[cfg_attr(not(ferry_uring), allow(dead_code))]
    pub(crate) const RING: Caps = Caps {
        sendfile: false,
        copy_range: false,
        relay: true,
    };
}

/// The next thing an executor must do for a transfer. Offsets are explicit: a file
/// side is always read or written at the offset given (`None` for streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Write `header()[from..]` to dst; `more`: bytes follow (MSG_MORE on sockets).
    Header {
        from: usize,
        more: bool,
        dst_off: Option<u64>,
    },
    /// Read up to `len` bytes from src into `staging_mut()[at..at + len]`.
    Read {
        src_off: Option<u64>,
        at: usize,
        len: usize,
    },
    /// Write `staging()[at..at + len]` to dst.
    Send {
        at: usize,
        len: usize,
        more: bool,
        dst_off: Option<u64>,
    },
    /// `sendfile` up to `len` bytes of src at `src_off` to dst.
    Sendfile {
        src_off: u64,
        len: usize,
        more: bool,
    },
    /// `copy_file_range` up to `len` bytes.
    CopyRange {
        src_off: u64,
        dst_off: u64,
        len: usize,
    },
    /// Splice up to `max` bytes (and at most the pipe's size) from src into the
    /// empty pipe.
    Fill { src_off: Option<u64>, max: usize },
    /// Splice `len` bytes (all the pipe holds) from the pipe to dst.
    Drain {
        len: usize,
        more: bool,
        dst_off: Option<u64>,
    },
    /// Write `trailer()[from..]` to dst.
    Trailer { from: usize, dst_off: Option<u64> },
    /// Memory strategy: one non-blocking gather send of `header()[header_from..]`,
    /// the body's `body_len` bytes at file offset `body_off` (from the job's memory),
    /// and `trailer()[trailer_from..]`.
    Gather {
        header_from: usize,
        body_off: u64,
        body_len: usize,
        trailer_from: usize,
    },
    /// Wait for readiness of one side, then ask again.
    Poll(Side),
    /// Nothing left: the transfer succeeded, or failed with [`Plan::take_error`].
    Done,
}

impl Step {
    /// Whether the step writes to dst (its errors are the destination's).
    pub(super) fn writes_dst(&self) -> bool {
        matches!(
            self,
            Step::Header { .. }
                | Step::Send { .. }
                | Step::Trailer { .. }
                | Step::Drain { .. }
                | Step::Sendfile { .. }
                | Step::Gather { .. }
        )
    }
}
