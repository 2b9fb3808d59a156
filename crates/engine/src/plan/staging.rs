//! The buffered strategy's staging buffer: header, body and trailer laid out in one
//! buffer so a small file body goes out in as few writes as possible.

use super::{Plan, Step, MIN_STAGING};

/// The staging buffer of the buffered strategy: `[start, end)` holds bytes not yet
/// written, in order header | body | trailer; the body is read in at `end`.
#[derive(Debug, Default)]
pub(super) struct Staging {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
    /// Unwritten bytes of each part within `[start, end)`.
    pub(super) header: usize,
    pub(super) body: usize,
    pub(super) trailer: usize,
    /// The trailer has been copied in.
    pub(super) trailer_staged: bool,
}

impl Plan {
    /// Lays out the staging buffer: the header, room for the body (exactly `len`, or
    /// the size seen at submit plus room to see the end of input), room for the trailer.
    pub(super) fn stage_header(&mut self) {
        let room = match self.len {
            Some(l) => l,
            None => self.hint.unwrap_or(0).saturating_add(1).max(MIN_STAGING),
        };
        let (h, t) = (self.header.len(), self.trailer.len());
        let mut buf = vec![0u8; h + room as usize + t];
        buf[..h].copy_from_slice(&self.header);
        self.header_sent = 0;
        self.staging = Staging {
            buf,
            start: 0,
            end: h,
            header: h,
            ..Staging::default()
        };
    }

    pub(super) fn next_buffered(&mut self) -> Step {
        let ended = self.body_ended();
        let read_limit = self.staging.buf.len() - self.trailer.len();
        if !ended && self.staging.end < read_limit {
            let room = (read_limit - self.staging.end) as u64;
            return Step::Read {
                src_off: self.src_off,
                at: self.staging.end,
                len: room.min(self.left()) as usize,
            };
        }
        let short = ended && self.short_source().is_some();
        if ended && !short && !self.staging.trailer_staged {
            let t = self.trailer.len();
            let s = &mut self.staging;
            s.buf[s.end..s.end + t].copy_from_slice(&self.trailer);
            s.end += t;
            s.trailer = t;
            s.trailer_staged = true;
        }
        let s = &mut self.staging;
        if s.end > s.start {
            return Step::Send {
                at: s.start,
                len: s.end - s.start,
                more: !ended,
                dst_off: self.dst_off,
            };
        }
        if !ended {
            // Buffer full and written: reuse it for the next part of the body.
            s.start = 0;
            s.end = 0;
            return self.next_buffered();
        }
        if let Some(e) = self.short_source() {
            // Every byte read has been written; the trailer is not sent.
            return self.fail(e);
        }
        self.done = true;
        Step::Done
    }

    /// The relay strategy's next step: send what the last read brought, else read
    /// again; `None` once the flow moved to splice (or ended: the common path finishes).
    pub(super) fn next_relay(&mut self) -> Option<Step> {
        let s = &mut self.staging;
        if s.end > s.start {
            return Some(Step::Send {
                at: s.start,
                len: s.end - s.start,
                // Never MSG_MORE on a relayed socket: the peer may be waiting for it.
                more: false,
                dst_off: self.dst_off,
            });
        }
        s.start = 0;
        s.end = 0;
        if self.body_ended() {
            return None;
        }
        if self.full_reads >= super::RELAY_SWITCH {
            self.strategy = super::Strategy::Splice;
            self.staging = Staging::default();
            return None;
        }
        if (self.poll_src_first || self.relay_drained) && !self.src_ready {
            self.release_idle_relay_buf();
            return Some(Step::Poll(super::Side::Src));
        }
        if self.staging.buf.is_empty() {
            self.staging.buf = vec![0; super::RELAY_BUF];
        }
        Some(Step::Read {
            src_off: None,
            at: 0,
            len: (super::RELAY_BUF as u64).min(self.left()) as usize,
        })
    }

    /// A relay waiting for its source with nothing staged keeps no buffer: an idle
    /// proxied connection then holds no 16 KiB per direction (HAProxy releases empty
    /// buffers the same way). The next read allocates it again.
    pub(super) fn release_idle_relay_buf(&mut self) {
        if self.strategy == super::Strategy::Relay && self.staging.end == self.staging.start {
            self.staging.buf = Vec::new();
        }
    }

    /// Attributes `n` written staging bytes to header, body and trailer, in order.
    pub(super) fn sent_staged(&mut self, n: usize) {
        let s = &mut self.staging;
        s.start += n;
        let h = n.min(s.header);
        s.header -= h;
        let b = (n - h).min(s.body);
        s.body -= b;
        let t = (n - h - b).min(s.trailer);
        s.trailer -= t;
        self.trailer_sent += t;
        self.delivered(b); // moves dst_off by the body part
        self.advance_dst(h + t);
    }
}
