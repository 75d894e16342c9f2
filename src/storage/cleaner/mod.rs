//! Log compaction: Kafka's log cleaner, one per shard, for the logs whose `cleanup.policy`
//! includes `compact`.
//!
//! ```text
//!  shard's cleaner task (shard/cleaning.rs), every log.cleaner.backoff.ms when idle:
//!    pick the filthiest log: dirty ratio ≥ min.cleanable.dirty.ratio, or max.compaction.lag.ms
//!      passed, or a tombstone's delete horizon passed       (PartitionLog::cleanable)
//!    ─► offset map over the dirty section [first dirty, first uncleanable)
//!         (key hash → latest offset, bounded by this shard's share of the dedupe buffer;
//!          when it fills, the pass stops there)                         (offset_map)
//!    ─► rewrite every segment below that end, in groups up to segment.bytes,
//!         into <base>.log.cleaned, keeping each key's latest record    (rewrite, segment_io)
//!         and what the transaction walk keeps                         (txns)
//!    ─► swap: .cleaned ─► .swap ─► rename over the old segments        (swap)
//!    ─► cleaner-offset-checkpoint: the pass's end is the next first dirty offset (checkpoint)
//! ```
//! The first uncleanable offset is the lowest of: the active segment's base, the base of the
//! segment holding the high watermark, and the base of the first segment with a record younger
//! than `min.compaction.lag.ms`, and the segment holding the last stable offset (an open
//! transaction may yet abort). Aborted transactions' records go; a marker goes once no batch of
//! its transaction is left and its delete horizon has passed (`txns`).
//!
//! Memory is the offset map plus one read chunk and one write chunk; I/O is limited by
//! `log.cleaner.io.max.bytes.per.second`, and the task runs in its own low-share task queue and
//! yields after every chunk, so the shard's produce and fetch latency holds.

pub mod checkpoint;
pub mod offset_map;
pub mod rewrite;
pub mod segment_io;
pub mod swap;
pub mod txns;

use std::collections::BTreeMap;

/// The cleaner's broker settings, with Kafka's names and defaults (`log.cleaner.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.backoff.ms`: sleep when no log needs cleaning.
    pub backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: offset map memory of the whole broker (each shard gets
    /// its share).
    pub dedupe_buffer_size: usize,
    /// `log.cleaner.io.buffer.load.factor`: how full the offset map may get.
    pub load_factor: f64,
    /// `log.cleaner.io.buffer.size`: read and write chunk memory of the whole broker.
    pub io_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`: read plus write rate limit of the whole broker.
    pub io_max_bytes_per_second: f64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            backoff_ms: 15_000,
            dedupe_buffer_size: 128 << 20,
            load_factor: offset_map::DEFAULT_LOAD_FACTOR,
            io_buffer_size: 512 << 10,
            io_max_bytes_per_second: f64::MAX,
        }
    }
}

impl CleanerConfig {
    /// The settings from the broker's Kafka-named settings (`BrokerConfig::log_settings`, checked
    /// at start-up); Kafka's default for any not set.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Self {
        let d = CleanerConfig::default();
        let get = |key: &str| settings.get(key).map(|v| v.trim());
        CleanerConfig {
            enable: get("log.cleaner.enable").map_or(d.enable, |v| v.eq_ignore_ascii_case("true")),
            backoff_ms: get("log.cleaner.backoff.ms").and_then(|v| v.parse().ok()).unwrap_or(d.backoff_ms),
            dedupe_buffer_size: get("log.cleaner.dedupe.buffer.size").and_then(|v| v.parse().ok()).unwrap_or(d.dedupe_buffer_size),
            load_factor: get("log.cleaner.io.buffer.load.factor").and_then(|v| v.parse().ok()).unwrap_or(d.load_factor),
            io_buffer_size: get("log.cleaner.io.buffer.size").and_then(|v| v.parse().ok()).unwrap_or(d.io_buffer_size),
            io_max_bytes_per_second: get("log.cleaner.io.max.bytes.per.second")
                .and_then(|v| v.parse().ok())
                .unwrap_or(d.io_max_bytes_per_second),
        }
    }

    /// Offset map bytes of one of `shards` shards.
    pub fn dedupe_bytes_per_shard(&self, shards: usize) -> usize {
        self.dedupe_buffer_size / shards.max(1)
    }

    /// Read (and write) chunk bytes of one of `shards` shards: half the I/O buffer each, as
    /// Kafka splits it between its read and write buffers, and at least 64 KiB.
    pub fn io_chunk_per_shard(&self, shards: usize) -> usize {
        (self.io_buffer_size / shards.max(1) / 2).max(64 << 10)
    }

    /// The I/O rate of one of `shards` shards.
    pub fn io_rate_per_shard(&self, shards: usize) -> f64 {
        self.io_max_bytes_per_second / shards.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_override_kafka_defaults() {
        assert_eq!(CleanerConfig::from_settings(&BTreeMap::new()), CleanerConfig::default());
        let settings: BTreeMap<String, String> = [("log.cleaner.backoff.ms", "200"), ("log.cleaner.enable", "false"), ("log.cleaner.dedupe.buffer.size", "1048576")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = CleanerConfig::from_settings(&settings);
        assert_eq!((c.enable, c.backoff_ms, c.dedupe_bytes_per_shard(4)), (false, 200, 262_144));
        assert!(c.io_max_bytes_per_second > 1e300);
    }
}
