//! The in-memory index of the blob store: which digests are on disk, their sizes, and the
//! least-recently-used order that eviction follows. Pure bookkeeping: it never touches the
//! disk (the caller unlinks what [`Index::insert`] says to evict). Rebuilt from the directory
//! at start (`layout::scan`), so it never needs saving.

use std::collections::{BTreeMap, HashMap};

use crate::refs::Digest;

struct Entry {
    len: u64,
    /// Position in the LRU order: larger is more recent.
    tick: u64,
}

/// Digests on disk, in least-recently-used order.
#[derive(Default)]
pub(super) struct Index {
    entries: HashMap<Digest, Entry>,
    by_tick: BTreeMap<u64, Digest>,
    next_tick: u64,
    total: u64,
}

impl Index {
    /// The length of `d` when indexed, marking it most recently used.
    pub(super) fn touch(&mut self, d: &Digest) -> Option<u64> {
        let tick = self.bump();
        let e = self.entries.get_mut(d)?;
        self.by_tick.remove(&e.tick);
        e.tick = tick;
        self.by_tick.insert(tick, d.clone());
        Some(e.len)
    }

    /// Records `d` (most recently used) and returns what must be evicted so the total stays
    /// within `max`, oldest first. `d` itself is never in the list: the caller refuses blobs
    /// larger than `max` before writing them.
    pub(super) fn insert(&mut self, d: Digest, len: u64, max: u64) -> Vec<(Digest, u64)> {
        self.remove(&d);
        let tick = self.bump();
        self.by_tick.insert(tick, d.clone());
        self.entries.insert(d.clone(), Entry { len, tick });
        self.total += len;
        let mut evicted = Vec::new();
        while self.total > max {
            let Some(oldest) = self.by_tick.values().next().cloned() else {
                break;
            };
            if oldest == d {
                break;
            }
            if let Some(n) = self.remove(&oldest) {
                evicted.push((oldest, n));
            }
        }
        evicted
    }

    /// Whether `d` is indexed (without marking it used).
    pub(super) fn contains(&self, d: &Digest) -> bool {
        self.entries.contains_key(d)
    }

    /// Forgets `d` (e.g. its file vanished); its length when it was indexed.
    pub(super) fn remove(&mut self, d: &Digest) -> Option<u64> {
        let e = self.entries.remove(d)?;
        self.by_tick.remove(&e.tick);
        self.total -= e.len;
        Some(e.len)
    }

    /// Bytes indexed.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn bump(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::sha256_of(s.as_bytes())
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut i = Index::default();
        assert!(i.insert(d("a"), 40, 100).is_empty());
        assert!(i.insert(d("b"), 40, 100).is_empty());
        // A read makes "a" recent: "b" is now the oldest.
        assert_eq!(i.touch(&d("a")), Some(40));
        let out = i.insert(d("c"), 40, 100);
        assert_eq!(out, vec![(d("b"), 40)]);
        assert_eq!(i.total(), 80);
        assert_eq!(i.touch(&d("b")), None);
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn the_new_entry_is_never_evicted_and_reinsert_does_not_double_count() {
        let mut i = Index::default();
        i.insert(d("a"), 10, 100);
        i.insert(d("a"), 10, 100);
        assert_eq!(i.total(), 10);
        let out = i.insert(d("big"), 100, 100);
        assert_eq!(out, vec![(d("a"), 10)]);
        assert_eq!(i.total(), 100);
        assert_eq!(i.remove(&d("big")), Some(100));
        assert_eq!(i.total(), 0);
    }
}
