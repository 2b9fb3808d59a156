//! A `LocalEngine`'s cache of small file bodies: a hot file's bytes kept in memory so
//! a response sends header and body with one `send` — an `fstat` instead of the
//! `cachestat` + `sendfile` (or `preadv2`) of every request.
//!
//! Never stale: an entry is keyed by (device, inode) and used only while `fstat` still
//! gives the size, mtime and ctime it was read at (ctime cannot be set by anyone, so
//! even a write that restores the old mtime shows). Bytes are loaded with
//! `preadv2(RWF_NOWAIT)` (a file not in the page cache is not cached, and the ring's
//! thread never waits for a disk), between two equal stamps; and a file whose ctime is
//! within [`RACY`] of now is served from the bytes just read but not kept: a write in
//! the same clock tick could leave its timestamps unchanged (git's "racy" entries).
//!
//! Bounded by bytes and entries; when full, the least recently used entry goes.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sys::{self, Stamp};

/// Timestamps this close to now may not yet show a write made right after our read.
const RACY: Duration = Duration::from_millis(100);

/// Entries at most (many empty files must not make eviction scans long).
const MAX_ENTRIES: usize = 1024;

struct Entry {
    stamp: Stamp,
    bytes: Arc<[u8]>,
    last_use: u64,
}

/// Small file bodies by (device, inode); see the module docs.
pub(crate) struct BodyCache {
    max_body: u64,
    budget: usize,
    used: usize,
    clock: u64,
    map: HashMap<(u64, u64), Entry>,
}

impl BodyCache {
    /// Keeps files of at most `max_body` bytes, `budget` bytes in all (0: off).
    pub(crate) fn new(max_body: u64, budget: usize) -> BodyCache {
        BodyCache {
            max_body: max_body.min(budget as u64),
            budget,
            used: 0,
            clock: 0,
            map: HashMap::new(),
        }
    }

    /// Whether a body of `len` bytes (None: unknown) could come from here.
    pub(crate) fn may_hold(&self, len: Option<u64>) -> bool {
        self.budget > 0 && len.is_none_or(|l| l <= self.max_body)
    }

    /// The whole current contents of the regular file `fd`, if it is small, in the
    /// page cache and unchanged while read; from memory when the stamp still matches.
    pub(crate) fn body(&mut self, fd: BorrowedFd<'_>) -> Option<Arc<[u8]>> {
        let stamp = sys::stamp(fd).ok()?;
        if !stamp.regular || stamp.size > self.max_body {
            return None;
        }
        self.clock += 1;
        let key = (stamp.dev, stamp.ino);
        if let Some(e) = self.map.get_mut(&key) {
            if e.stamp == stamp {
                e.last_use = self.clock;
                return Some(e.bytes.clone());
            }
            self.remove(key);
        }
        let bytes = load(fd, stamp.size)?;
        if sys::stamp(fd).ok()? != stamp {
            return None; // changed while read: this request takes the normal path
        }
        if !racy(&stamp) {
            self.insert(key, stamp, bytes.clone());
        }
        Some(bytes)
    }

    fn insert(&mut self, key: (u64, u64), stamp: Stamp, bytes: Arc<[u8]>) {
        while !self.map.is_empty()
            && (self.used + bytes.len() > self.budget || self.map.len() >= MAX_ENTRIES)
        {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.last_use)
                .map(|(k, _)| *k)
                .expect("not empty");
            self.remove(oldest);
        }
        self.used += bytes.len();
        let last_use = self.clock;
        self.map.insert(
            key,
            Entry {
                stamp,
                bytes,
                last_use,
            },
        );
    }

    fn remove(&mut self, key: (u64, u64)) {
        if let Some(e) = self.map.remove(&key) {
            self.used -= e.bytes.len();
        }
    }

    /// Bytes held (for tests).
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }
}

/// Reads all `size` bytes without waiting for a disk; None when any is not in the
/// page cache or the file ends early.
fn load(fd: BorrowedFd<'_>, size: u64) -> Option<Arc<[u8]>> {
    let mut buf = vec![0u8; size as usize];
    let mut at = 0;
    while at < buf.len() {
        match sys::pread_nowait(fd, &mut buf[at..], at as u64) {
            Ok(0) | Err(_) => return None,
            Ok(n) => at += n,
        }
    }
    Some(buf.into())
}

/// Whether the file changed so recently that a write in the same clock tick could
/// still be invisible in its timestamps.
fn racy(s: &Stamp) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let changed = Duration::new(
        s.ctime.0.max(0) as u64,
        s.ctime.1.clamp(0, 999_999_999) as u32,
    )
    .max(Duration::new(
        s.mtime.0.max(0) as u64,
        s.mtime.1.clamp(0, 999_999_999) as u32,
    ));
    changed + RACY > now
}

#[cfg(test)]
#[path = "body_cache_tests.rs"]
mod tests;
