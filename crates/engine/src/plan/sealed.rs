//! The sealed strategy: the destination speaks TLS in user space. Plaintext — header,
//! body, trailer, in order — is gathered into the staging buffer (a file body fills
//! [`FILE_BATCH`] bytes; a stream's bytes are sealed as they arrive, read a record's
//! worth at a time, a batch at a time once a read filled its buffer), handed to the
//! transfer's [`Seal`](crate::Seal) a record ([`SEAL_CHUNK`]) at a time, and the sealed
//! records of the batch go out in one send. A batch's plaintext counts as delivered once
//! all of its sealed bytes are out; a batch the sealer fails part-way is not sent.

use super::{Plan, Side, Step, Strategy};
use crate::error::TransferError;
use crate::resolved::FdKind;
use crate::seal::{Seal, SEAL_CHUNK};

/// Plaintext a file body is read and sealed in per batch: four full records, one read
/// and one send for them, not four round trips through the executor (docs/benchmarks.md,
/// "HTTPS").
const FILE_BATCH: usize = 4 * SEAL_CHUNK;

/// What the sealed strategy keeps beside the staging buffer (which holds plaintext).
pub(super) struct Sealing {
    sealer: Box<dyn Seal>,
    /// Sealed bytes; `[sent, len)` are still to go out.
    out: Vec<u8>,
    sent: usize,
    /// Plaintext of the records in `out`, by part (attributed when `out` is all sent).
    parts: (usize, usize, usize),
    /// Header and trailer bytes already copied into the staging buffer.
    header_staged: usize,
    trailer_staged: usize,
    /// The source is a file: fill a whole record before sealing.
    src_file: bool,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing")
            .field("out", &self.out.len())
            .field("sent", &self.sent)
            .finish()
    }
}

impl Plan {
    /// Switches a fresh plan to the sealed strategy, sealing with `sealer`.
    pub(crate) fn seal_with(&mut self, sealer: Box<dyn Seal>, src: FdKind) {
        self.strategy = Strategy::Sealed;
        self.staging = Default::default();
        self.sealing = Some(Box::new(Sealing {
            sealer,
            out: Vec::new(),
            sent: 0,
            parts: (0, 0, 0),
            header_staged: 0,
            trailer_staged: 0,
            src_file: src == FdKind::File,
        }));
    }

    /// The sealed bytes a `Send` step writes from.
    pub(super) fn sealed_out(&self) -> &[u8] {
        self.sealing.as_ref().map_or(&[], |s| &s.out)
    }

    pub(super) fn next_sealed(&mut self) -> Step {
        let ended = self.body_ended();
        let short = ended && self.short_source().is_some();
        let left = self.left();
        let Some(s) = self.sealing.as_mut() else {
            return Step::Done;
        };
        if s.sent < s.out.len() {
            // `MSG_MORE` only while a file body goes on: a stream's next bytes may be
            // long in coming, and corked records would wait for the kernel's 200 ms.
            return Step::Send {
                at: s.sent,
                len: s.out.len() - s.sent,
                more: !ended && s.src_file,
                dst_off: self.dst_off,
            };
        }
        // A file body, or a stream whose last read filled its buffer, is read a batch
        // at a time; other streams a record at a time (most answers are small).
        let size = if s.src_file || self.full_reads > 0 {
            FILE_BATCH
        } else {
            SEAL_CHUNK
        };
        if self.staging.buf.is_empty() || (self.staging.end == 0 && self.staging.buf.len() < size) {
            self.staging.buf = vec![0; size];
        }
        let st = &mut self.staging;
        let room = |st: &super::staging::Staging| st.buf.len() - st.end;
        if s.header_staged < self.header.len() {
            let n = (self.header.len() - s.header_staged).min(room(st));
            st.buf[st.end..st.end + n]
                .copy_from_slice(&self.header[s.header_staged..s.header_staged + n]);
            st.end += n;
            st.header += n;
            s.header_staged += n;
        }
        let body_waits = st.body > 0 && !s.src_file;
        if !ended && room(st) > 0 && !body_waits {
            if !s.src_file && self.poll_src_first && !self.src_ready {
                return Step::Poll(Side::Src);
            }
            let len = (room(st) as u64).min(left) as usize;
            return Step::Read {
                src_off: self.src_off,
                at: st.end,
                len,
            };
        }
        if ended && !short && s.trailer_staged < self.trailer.len() {
            let n = (self.trailer.len() - s.trailer_staged).min(room(st));
            st.buf[st.end..st.end + n]
                .copy_from_slice(&self.trailer[s.trailer_staged..s.trailer_staged + n]);
            st.end += n;
            st.trailer += n;
            s.trailer_staged += n;
        }
        if st.end > 0 {
            s.out.clear();
            s.sent = 0;
            for record in st.buf[..st.end].chunks(SEAL_CHUNK) {
                if let Err(e) = s.sealer.seal(record, &mut s.out) {
                    let e = TransferError::io(e.kind(), self.body, format!("seal: {e}"));
                    return self.fail(e);
                }
            }
            s.parts = (st.header, st.body, st.trailer);
            st.end = 0;
            st.header = 0;
            st.body = 0;
            st.trailer = 0;
            return self.next_sealed();
        }
        if !ended {
            return self.next_sealed();
        }
        if let Some(e) = self.short_source() {
            return self.fail(e);
        }
        self.done = true;
        Step::Done
    }

    /// `n` sealed bytes went out; once a batch of records is all out, its plaintext
    /// counts as delivered.
    pub(super) fn sent_sealed(&mut self, n: usize) {
        let Some(s) = self.sealing.as_mut() else {
            return;
        };
        s.sent += n;
        if s.sent < s.out.len() {
            return;
        }
        let (h, b, t) = std::mem::take(&mut s.parts);
        s.out.clear();
        s.sent = 0;
        if s.out.capacity() > 2 * FILE_BATCH {
            s.out.shrink_to(2 * FILE_BATCH);
        }
        self.header_sent += h;
        self.trailer_sent += t;
        self.delivered(b);
        self.advance_dst(h + t);
    }

    /// A sealed stream waiting for its source with nothing staged keeps no buffers.
    pub(super) fn release_idle_sealed_bufs(&mut self) {
        if let Some(s) = self.sealing.as_mut() {
            if self.staging.end == 0 && s.sent == s.out.len() {
                self.staging.buf = Vec::new();
                s.out = Vec::new();
                s.sent = 0;
            }
        }
    }
}
