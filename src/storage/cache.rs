//! The shard's batch cache: recently appended batches, kept as [`StampedBatch`]es (their bytes
//! still in the produce requests' frames), bounded in bytes.
//!
//! ```text
//!   append ──► insert(partition, base_offset, batch) ──► fifo (oldest first) ──► evict when over budget
//!   fetch  ──► get(partition, offset): the batch holding `offset`, then its successors while contiguous
//! ```
//! A consumer that keeps up reads only from here, never touching the disk. One cache serves
//! every partition of a shard, so a busy partition can use the whole budget.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};

use std::sync::Arc;

use super::batch::{BatchHeader, StampedBatch};
use crate::metrics::ShardMetrics;

/// A shard-wide cache of record batches keyed by (partition id, base offset).
pub struct BatchCache {
    limit: usize,
    used: Cell<usize>,
    /// The shard's counters: cache hits and misses, and fsync latency of its logs.
    pub metrics: Arc<ShardMetrics>,
    partitions: RefCell<HashMap<u64, BTreeMap<i64, StampedBatch>>>,
    fifo: RefCell<VecDeque<(u64, i64, usize)>>,
}

impl BatchCache {
    /// A cache that holds at most `limit` bytes.
    pub fn new(limit: usize, metrics: Arc<ShardMetrics>) -> Self {
        BatchCache {
            limit,
            used: Cell::new(0),
            metrics,
            partitions: RefCell::new(HashMap::new()),
            fifo: RefCell::new(VecDeque::new()),
        }
    }

    /// Adds a stamped batch, evicting the oldest batches of any partition when over budget.
    pub fn insert(&self, partition: u64, base_offset: i64, batch: StampedBatch) {
        if batch.len() > self.limit {
            return;
        }
        let len = batch.len();
        // A batch at an offset already cached (appended again after a truncation) replaces it.
        let replaced = self.partitions.borrow_mut().entry(partition).or_default().insert(base_offset, batch);
        self.fifo.borrow_mut().push_back((partition, base_offset, len));
        self.used.set(self.used.get() + len - replaced.map_or(0, |b| b.len()));
        while self.used.get() > self.limit {
            let Some((p, off, _)) = self.fifo.borrow_mut().pop_front() else { break };
            // The fifo may name a batch since replaced: what is freed is what the map held.
            let removed = self.partitions.borrow_mut().get_mut(&p).and_then(|m| m.remove(&off));
            if let Some(b) = removed {
                self.used.set(self.used.get() - b.len());
            }
        }
    }

    /// Contiguous batches starting with the one that holds `offset`, up to `max_bytes`
    /// (at least one batch), and never past `limit_offset` (the high watermark).
    pub fn read(&self, partition: u64, offset: i64, max_bytes: usize, limit_offset: i64) -> Option<Vec<StampedBatch>> {
        let parts = self.partitions.borrow();
        let map = parts.get(&partition);
        let found = map.and_then(|m| {
            let (_, first) = m.range(..=offset).next_back()?;
            let header = BatchHeader::parse(first.header())?;
            if header.last_offset() < offset || header.base_offset >= limit_offset {
                return None;
            }
            let mut out = Vec::new();
            let mut total = 0;
            let mut next = header.base_offset;
            for (&base, batch) in m.range(header.base_offset..) {
                if base != next || base >= limit_offset || (total > 0 && total + batch.len() > max_bytes) {
                    break;
                }
                let h = BatchHeader::parse(batch.header())?;
                next = h.last_offset() + 1;
                total += batch.len();
                out.push(batch.clone());
            }
            Some(out)
        });
        match found {
            Some(v) => {
                ShardMetrics::add(&self.metrics.cache_hits, 1);
                Some(v)
            }
            None => {
                ShardMetrics::add(&self.metrics.cache_misses, 1);
                None
            }
        }
    }

    /// Drops a partition's batches (delete, truncation).
    pub fn drop_partition(&self, partition: u64) {
        if let Some(map) = self.partitions.borrow_mut().remove(&partition) {
            let freed: usize = map.values().map(|b| b.len()).sum();
            self.used.set(self.used.get() - freed);
        }
    }

    /// Drops a partition's batches at and above `offset` (a follower's truncation).
    pub fn drop_from(&self, partition: u64, offset: i64) {
        if let Some(map) = self.partitions.borrow_mut().get_mut(&partition) {
            let freed: usize = map.split_off(&offset).values().map(|b| b.len()).sum();
            self.used.set(self.used.get() - freed);
        }
    }

    /// Drops a partition's batches below `offset` (retention, DeleteRecords).
    pub fn drop_below(&self, partition: u64, offset: i64) {
        if let Some(map) = self.partitions.borrow_mut().get_mut(&partition) {
            let keep = map.split_off(&offset);
            let freed: usize = map.values().map(|b| b.len()).sum();
            *map = keep;
            self.used.set(self.used.get() - freed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{stamp, testing::make_batch};

    #[test]
    fn reads_contiguous_batches_and_evicts_oldest() {
        let b0 = stamp(&make_batch(&[b"a", b"b"], 0, -1, -1), 0, 0, None);
        let b1 = stamp(&make_batch(&[b"c"], 0, -1, -1), 2, 0, None);
        let cache = BatchCache::new(b0.len() + b1.len(), Arc::new(ShardMetrics::new()));
        cache.insert(1, 0, b0.clone());
        cache.insert(1, 2, b1.clone());
        assert_eq!(cache.read(1, 1, 1 << 20, 3).unwrap().len(), 2);
        assert_eq!(cache.read(1, 1, 1 << 20, 2).unwrap().len(), 1, "high watermark bounds reads");
        assert!(cache.read(1, 3, 1 << 20, 10).is_none());
        cache.insert(1, 3, stamp(&make_batch(&[b"d"], 0, -1, -1), 3, 0, None));
        assert!(cache.read(1, 0, 1 << 20, 10).is_none(), "oldest batch evicted");
    }

    #[test]
    fn a_truncation_drops_the_tail_and_a_batch_appended_again_replaces_its_bytes() {
        let batch = |o: i64, v: &[u8]| stamp(&make_batch(&[v], 0, -1, -1), o, 0, None);
        let cache = BatchCache::new(1 << 20, Arc::new(ShardMetrics::new()));
        for o in 0..4 {
            cache.insert(1, o, batch(o, b"old"));
        }
        let one = batch(0, b"old").len();
        cache.drop_from(1, 2);
        assert_eq!(cache.used.get(), 2 * one);
        assert_eq!(cache.read(1, 0, 1 << 20, 10).unwrap().len(), 2, "offsets 2 and 3 are gone");
        cache.insert(1, 2, batch(2, b"new-longer"));
        cache.insert(1, 2, batch(2, b"newer"));
        assert_eq!(cache.used.get(), 2 * one + batch(2, b"newer").len(), "a replaced batch's bytes are not counted twice");
        let read = cache.read(1, 2, 1 << 20, 10).unwrap();
        assert_eq!(read[0].to_bytes(), batch(2, b"newer").to_bytes());
    }
}
