//! What `fstat` said about an open file, the parts HTTP uses, and the validators
//! derived from it (nginx's ETag, `Last-Modified`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `fstat` told us about an open file, the parts HTTP uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    /// Modification time, whole seconds since the epoch (what HTTP dates carry).
    pub mtime: i64,
    /// Nanoseconds of the modification time (a change within one second still counts).
    pub mtime_nsec: i64,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Other,
}

impl Meta {
    /// nginx's ETag: `"<hex mtime>-<hex size>"`.
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.mtime, self.size)
    }

    /// The modification time as an HTTP date.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified())
    }

    /// The modification time (whole seconds; the epoch for a time before it).
    pub fn modified(&self) -> SystemTime {
        if self.mtime >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.mtime as u64)
        } else {
            UNIX_EPOCH
        }
    }
}
