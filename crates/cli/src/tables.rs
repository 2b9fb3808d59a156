//! Memory comes back after a crowd of connections leaves: a server thread's tables
//! (connections by key, ops by id) give back their room once mostly empty, checked on
//! each sweep. Without it, 1000 connections that came and went kept their room for
//! good (the heap never shrinks a `Vec` or `HashMap` by itself).

use std::collections::HashMap;
use std::hash::Hash;

use slab::Slab;

/// Rooms below this are kept: not worth a reallocation.
const KEEP: usize = 64;

/// Watches a thread's connection count between sweeps.
#[derive(Debug, Default)]
pub struct Shrinker {
    /// The most connections since the heap was last trimmed.
    peak: usize,
}

impl Shrinker {
    /// Shrinks the connection table and op map when under a quarter full, and gives the
    /// heap's free pages back (`sys::trim_heap`) each time the count halved since the
    /// last trim: connections end over seconds, and what the engine frees for them
    /// comes with their last events.
    pub fn sweep<T, K: Eq + Hash, V>(&mut self, s: &mut Slab<T>, m: &mut HashMap<K, V>) {
        let n = s.len();
        self.peak = self.peak.max(n);
        let shrank = shrink_slab(s) | shrink_map(m);
        if shrank || (self.peak >= KEEP && n * 2 <= self.peak) {
            crate::sys::trim_heap();
            self.peak = n;
        }
    }
}

/// Shrinks `s` when under a quarter full (down to its highest key in use).
fn shrink_slab<T>(s: &mut Slab<T>) -> bool {
    let shrink = s.capacity() > KEEP && s.len() * 4 < s.capacity();
    if shrink {
        s.shrink_to_fit();
    }
    shrink
}

/// Shrinks `m` to twice its length when under a quarter full.
fn shrink_map<K: Eq + Hash, V>(m: &mut HashMap<K, V>) -> bool {
    let shrink = m.capacity() > KEEP && m.len() * 4 < m.capacity();
    if shrink {
        m.shrink_to((m.len() * 2).max(KEEP));
    }
    shrink
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mostly_empty_tables_shrink_and_busy_ones_do_not() {
        let mut s: Slab<[u8; 100]> = Slab::new();
        let keys: Vec<usize> = (0..1000).map(|_| s.insert([0; 100])).collect();
        shrink_slab(&mut s);
        assert!(s.capacity() >= 1000, "a full slab is left alone");
        for k in &keys[10..] {
            s.remove(*k);
        }
        shrink_slab(&mut s);
        assert!(s.capacity() < 100, "capacity {}", s.capacity());
        let mut m: HashMap<u64, u64> = (0..1000).map(|i| (i, i)).collect();
        m.retain(|k, _| *k < 10);
        shrink_map(&mut m);
        assert!(m.capacity() < 200, "capacity {}", m.capacity());
        assert_eq!(m.len(), 10);
    }
}
