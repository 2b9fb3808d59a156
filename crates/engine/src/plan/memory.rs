//! The memory strategy: the file body is already in memory (a `LocalEngine`'s body
//! cache), so a response is one gather send of header | body | trailer, continued
//! from where a short write stopped. A source shorter than `len` sends header and
//! what there is, then fails with `UnexpectedEof` (the trailer is not sent), as on
//! every other strategy.

use super::{Plan, Step};

impl Plan {
    fn memory_short(&self) -> bool {
        self.len.is_some_and(|l| self.memory_body < l)
    }

    pub(super) fn next_memory(&mut self) -> Step {
        let trailer_end = if self.memory_short() {
            self.trailer_sent // never sent
        } else {
            self.trailer.len()
        };
        let body_left = self.memory_body - self.body;
        if self.header_sent < self.header.len() || body_left > 0 || self.trailer_sent < trailer_end
        {
            return Step::Gather {
                header_from: self.header_sent,
                body_off: self.src_off.unwrap_or(0),
                body_len: body_left as usize,
                trailer_from: if self.memory_short() {
                    self.trailer.len()
                } else {
                    self.trailer_sent
                },
            };
        }
        if self.memory_short() {
            self.eof = true;
            if let Some(e) = self.short_source() {
                return self.fail(e);
            }
        }
        self.done = true;
        Step::Done
    }

    /// Attributes `n` gathered bytes to header, body and trailer, in order.
    pub(super) fn sent_gathered(&mut self, n: usize) {
        let h = n.min(self.header.len() - self.header_sent);
        self.header_sent += h;
        self.advance_dst(h);
        let b = ((n - h) as u64).min(self.memory_body - self.body) as usize;
        self.took(b);
        self.delivered(b);
        let t = (n - h - b).min(self.trailer.len() - self.trailer_sent);
        self.trailer_sent += t;
        self.advance_dst(t);
    }
}
