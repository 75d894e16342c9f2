//! The cleaner's dedupe map: key hash → the latest offset of that key in the dirty section, in a
//! fixed memory budget, as Kafka's `SkimpyOffsetMap`.
//!
//! Keys are stored as 128-bit hashes (Kafka uses MD5, 16 bytes), never as keys: a record's size
//! does not change the map's. Slots are open-addressed with linear probing; the map reports
//! itself full at `log.cleaner.io.buffer.load.factor` (0.9), and the cleaner then cleans only up
//! to the last offset it managed to put in.

use std::hash::{BuildHasher, Hasher};

/// Bytes one slot takes: a 16-byte hash, an 8-byte offset, and 4 bytes to list it as used (so
/// clearing touches only the used slots).
pub const SLOT_BYTES: usize = 28;

/// Kafka's `log.cleaner.io.buffer.load.factor` default.
pub const DEFAULT_LOAD_FACTOR: f64 = 0.9;

/// A fixed-size map of key hash → latest offset.
pub struct OffsetMap {
    /// Hash of each slot; 0 marks a free slot (a key hashing to 0 is stored as 1).
    hashes: Vec<u128>,
    offsets: Vec<i64>,
    /// The slots in use, in the order they were taken.
    taken: Vec<u32>,
    used: usize,
    /// Slots that may be used before the map calls itself full.
    limit: usize,
    /// The largest offset put in, or -1.
    latest: i64,
    hasher: [std::hash::RandomState; 2],
}

impl OffsetMap {
    /// A map in `memory` bytes (at least one slot), full at `load_factor` of its slots.
    pub fn new(memory: usize, load_factor: f64) -> Self {
        // Slots are indexed by u32 in `taken`.
        let slots = (memory / SLOT_BYTES).clamp(2, u32::MAX as usize);
        let limit = ((slots as f64 * load_factor.clamp(0.05, 1.0)) as usize).clamp(1, slots - 1);
        OffsetMap {
            // Zeroed allocations: the pages are mapped as the map fills, not up front on the
            // shard's thread (an offset is read only where a hash is set).
            hashes: vec![0; slots],
            offsets: vec![0; slots],
            taken: Vec::new(),
            used: 0,
            limit,
            latest: -1,
            hasher: [std::hash::RandomState::new(), std::hash::RandomState::new()],
        }
    }

    /// Forgets every entry (the memory stays allocated for the next log). Only the slots in use
    /// are reset: a pass over the whole map (128 MiB by default) stalled the shard for ~90 ms.
    pub fn clear(&mut self) {
        for i in self.taken.drain(..) {
            self.hashes[i as usize] = 0;
        }
        self.used = 0;
        self.latest = -1;
    }

    /// Keys the map holds.
    pub fn len(&self) -> usize {
        self.used
    }

    /// Whether the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    /// Whether a new key can no longer be put in.
    pub fn is_full(&self) -> bool {
        self.used >= self.limit
    }

    /// The largest offset put in, or -1.
    pub fn latest_offset(&self) -> i64 {
        self.latest
    }

    /// Keys the map can hold before it is full.
    pub fn capacity(&self) -> usize {
        self.limit
    }

    fn hash(&self, key: &[u8]) -> u128 {
        let half = |s: &std::hash::RandomState| {
            let mut h = s.build_hasher();
            h.write(key);
            h.finish()
        };
        let h = (u128::from(half(&self.hasher[0])) << 64) | u128::from(half(&self.hasher[1]));
        h.max(1)
    }

    /// The slot holding `hash`, or the free slot where it would go.
    fn slot(&self, hash: u128) -> usize {
        let n = self.hashes.len();
        let mut i = (hash as usize) % n;
        while self.hashes[i] != 0 && self.hashes[i] != hash {
            i = (i + 1) % n;
        }
        i
    }

    /// Records `offset` as the latest of `key`. Returns false, leaving the map unchanged, when
    /// the key is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = self.hash(key);
        let i = self.slot(hash);
        if self.hashes[i] == 0 {
            if self.is_full() {
                return false;
            }
            self.hashes[i] = hash;
            self.taken.push(i as u32);
            self.used += 1;
        }
        self.offsets[i] = offset;
        self.latest = self.latest.max(offset);
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let i = self.slot(self.hash(key));
        (self.hashes[i] != 0).then(|| self.offsets[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_per_key() {
        let mut map = OffsetMap::new(SLOT_BYTES * 100, 0.9);
        assert!(map.put(b"a", 1) && map.put(b"b", 2) && map.put(b"a", 7));
        assert_eq!((map.get(b"a"), map.get(b"b"), map.get(b"c")), (Some(7), Some(2), None));
        assert_eq!((map.len(), map.latest_offset()), (2, 7));
        map.clear();
        assert_eq!((map.get(b"a"), map.len()), (None, 0));
    }

    #[test]
    fn refuses_new_keys_once_full_but_updates_known_ones() {
        let mut map = OffsetMap::new(SLOT_BYTES * 10, 0.5);
        assert_eq!(map.capacity(), 5);
        for i in 0..5u8 {
            assert!(map.put(&[i], i64::from(i)));
        }
        assert!(map.is_full());
        assert!(!map.put(b"new", 99), "a sixth key does not fit");
        assert_eq!(map.get(b"new"), None);
        assert!(map.put(&[0], 42), "a known key is still updated");
        assert_eq!(map.get(&[0]), Some(42));
    }

    #[test]
    fn many_keys_in_a_large_map_stay_exact() {
        let mut map = OffsetMap::new(SLOT_BYTES * 300_000, 0.9);
        for i in 0..200_000i64 {
            assert!(map.put(format!("key-{}", i % 100_000).as_bytes(), i));
        }
        assert_eq!(map.len(), 100_000);
        for i in 0..100_000i64 {
            assert_eq!(map.get(format!("key-{i}").as_bytes()), Some(100_000 + i));
        }
    }
}
