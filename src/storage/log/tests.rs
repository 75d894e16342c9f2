//! Unit tests of the partition log.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use super::recovery::recover_segments;
use super::{CLEAN_SHUTDOWN, PRODUCER_SNAPSHOT, PartitionLog, ShardLogContext, SyncRounds};
use crate::config::TopicConfig;
use crate::storage::StorageError;
use crate::storage::batch::{self, BatchHeader};
use crate::storage::cache::BatchCache;
use crate::storage::journal::{AppendJournal, JournalPartition};
use crate::storage::producers::ProducerStates;
use crate::storage::reader::Located;
use crate::storage::segment::{self, Segment};
use crate::types::TopicPartition;
use crate::storage::batch::testing::make_batch;
use crate::storage::testing::run;

mod compaction;
mod follower;
mod replication;
mod txn;

fn config(segment_bytes: u64) -> TopicConfig {
    let defaults = crate::config::BrokerConfig::new("127.0.0.1:0".parse().unwrap()).topic_defaults;
    let mut c = TopicConfig::resolve(&defaults, &Default::default());
    c.segment_bytes = segment_bytes;
    c.index_interval_bytes = 1024;
    c
}

async fn open(dir: &Path, cfg: TopicConfig) -> Rc<PartitionLog> {
    open_lingering(dir, cfg, std::time::Duration::ZERO).await
}

async fn open_lingering(dir: &Path, cfg: TopicConfig, sync_linger: std::time::Duration) -> Rc<PartitionLog> {
    open_in_rounds(dir, cfg, 0, SyncRounds::new(sync_linger)).await
}

/// Partition `partition` of topic "t", syncing in `rounds`, with no batch cache: every read
/// goes to disk.
async fn open_in_rounds(dir: &Path, cfg: TopicConfig, partition: i32, rounds: Rc<SyncRounds>) -> Rc<PartitionLog> {
    open_with(dir, cfg, partition, rounds, 1, false, None).await
}

/// Partition `partition` of topic "t" with a batch cache of `cache_bytes`.
async fn open_with(
    dir: &Path,
    cfg: TopicConfig,
    partition: i32,
    sync_rounds: Rc<SyncRounds>,
    cache_bytes: usize,
    visible_on_append: bool,
    journal: Option<Rc<AppendJournal>>,
) -> Rc<PartitionLog> {
    let shard = ShardLogContext { sync_rounds, visible_on_append, journal, ..shard_context(cache_bytes) };
    open_in(dir, cfg, partition, 0, shard).await
}

/// A shard's context with a batch cache of `cache_bytes`, no journal, no linger and no delay.
fn shard_context(cache_bytes: usize) -> ShardLogContext {
    ShardLogContext {
        cache: Rc::new(BatchCache::new(cache_bytes, Arc::new(crate::metrics::ShardMetrics::new()))),
        sync_rounds: SyncRounds::new(std::time::Duration::ZERO),
        visible_on_append: false,
        journal: None,
        write_delay: std::time::Duration::ZERO,
    }
}

/// Partition `partition` of topic "t" at `leader_epoch`, on `shard`.
async fn open_in(dir: &Path, cfg: TopicConfig, partition: i32, leader_epoch: i32, shard: ShardLogContext) -> Rc<PartitionLog> {
    PartitionLog::open(TopicPartition::new("t", partition), partition as u64, dir, leader_epoch, cfg, shard)
        .await
        .unwrap()
}

/// (log start, high watermark, log end).
fn start_hw_end(log: &PartitionLog) -> (i64, i64, i64) {
    let o = log.offsets();
    (o.log_start, o.high_watermark, o.log_end)
}

async fn append_n(log: &PartitionLog, n: usize, ts0: i64) {
    for i in 0..n {
        let value = format!("value-{i:05}-{}", "x".repeat(400));
        let batch = make_batch(&[value.as_bytes(), b"second"], ts0 + i as i64 * 10, -1, -1);
        let out = log.append(&batch, -1).unwrap();
        out.done.unwrap().await.unwrap().unwrap();
    }
}

#[test]
fn rolls_reads_across_segments_and_recovers() {
    run(|dir| async move {
        let log = open(&dir, config(8192)).await;
        append_n(&log, 60, 1_000).await;
        let (start, hw, leo) = start_hw_end(&log);
        assert_eq!((start, hw, leo), (0, 120, 120));
        let segments = log.state.borrow().segments.len();
        assert!(segments > 3, "segment.bytes rolls segments, got {segments}");
        for offset in [0, 1, 57, 58, 119] {
            let r = log.read(offset, 1).await.unwrap();
            let h = BatchHeader::parse(&r.records[0]).unwrap();
            assert!(h.base_offset <= offset && offset <= h.last_offset(), "batch holds offset {offset}");
        }
        let many = log.read(10, 100_000).await.unwrap();
        assert!(many.records.len() > 10, "a read spans whole batches up to max_bytes");
        // Batch 30 holds timestamps 1300 (offset 60) and 1301 (offset 61).
        assert_eq!(log.offset_for_timestamp(1_000 + 30 * 10 + 1).await.unwrap(), Some((61, 1301)));
        assert_eq!(log.offset_for_timestamp(999_999).await.unwrap(), None);
        assert!(matches!(log.read(121, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
        log.close().await.unwrap();
        drop(log);
        let marker = dir.join("t-0").join(CLEAN_SHUTDOWN);
        assert!(marker.exists(), "a clean close leaves its marker");
        let log = open(&dir, config(8192)).await;
        assert!(!marker.exists(), "open removes the marker");
        assert_eq!(start_hw_end(&log), (0, 120, 120));
        drop(log);

        // A torn batch at the tail (a crash: no marker) is cut off at recovery; the log
        // continues after it.
        let last = std::fs::read_dir(dir.join("t-0"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .max()
            .unwrap();
        let valid = std::fs::metadata(&last).unwrap().len();
        let torn = make_batch(&[b"torn"], 5, -1, -1);
        let mut bytes = std::fs::read(&last).unwrap();
        bytes.truncate(valid as usize);
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(&last, &bytes).unwrap();
        let log = open(&dir, config(8192)).await;
        assert_eq!(start_hw_end(&log), (0, 120, 120));
        append_n(&log, 1, 5_000).await;
        let r = log.read(120, 1).await.unwrap();
        assert_eq!(BatchHeader::parse(&r.records[0]).unwrap().base_offset, 120);

        // retention.bytes drops whole closed segments from the front.
        let mut cfg = config(8192);
        cfg.retention_bytes = 10_000;
        log.set_config(cfg);
        log.enforce_retention().unwrap();
        let start = log.offsets().log_start;
        assert!(start > 0, "retention advanced the log start");
        assert!(matches!(log.read(0, 100).await, Err(StorageError::OffsetOutOfRange { .. })));
        assert!(log.read(start, 100).await.is_ok());
    });
}

/// What a reader relies on in each segment: base, size, last offset, max timestamp and
/// both indexes.
type SegmentSummary = (i64, u64, i64, i64, Vec<(u32, u32)>, Vec<(i64, u32)>);

fn summary(segments: &BTreeMap<i64, Segment>) -> Vec<SegmentSummary> {
    segments
        .values()
        .map(|s| (s.base_offset, s.size, s.last_offset, s.max_timestamp, s.index.clone(), s.time_index.clone()))
        .collect()
}

#[test]
fn a_clean_reopen_reads_only_past_each_last_index_entry_and_recovers_the_same_log() {
    run(|dir| async move {
        let log = open(&dir, config(8192)).await;
        // An idempotent producer (id 7) between plain batches, over several segments.
        append_n(&log, 30, 1_000).await;
        for seq in 0..10 {
            let value = format!("idempotent-{seq}-{}", "y".repeat(300));
            let out = log.append(&make_batch(&[value.as_bytes()], 2_000 + seq as i64, 7, seq), -1).unwrap();
            out.done.unwrap().await.unwrap().unwrap();
        }
        append_n(&log, 20, 3_000).await;
        let before = summary(&log.state.borrow().segments);
        assert!(before.len() > 3, "several segments, got {}", before.len());
        log.close().await.unwrap();
        drop(log);

        let part = dir.join("t-0");
        let bases: Vec<i64> = before.iter().map(|s| s.0).collect();
        let total: u64 = before.iter().map(|s| s.1).sum();
        let interval = config(8192).index_interval_bytes;
        let full = recover_segments(&TopicPartition::new("t", 0), &part, &bases, true, false, interval).await.unwrap();
        assert_eq!(summary(&full.segments), before);
        assert!(full.bytes_read >= total, "a full scan reads every byte (and the last page's padding)");
        let fast = recover_segments(&TopicPartition::new("t", 0), &part, &bases, true, true, interval).await.unwrap();
        assert_eq!(summary(&fast.segments), before, "the index files give the same segments");
        assert!(fast.bytes_read < total / 4, "read {} of {total} bytes", fast.bytes_read);
        drop((full, fast));

        // An index file that does not hold together costs its segment a full scan, not a wrong log.
        let broken = part.join(format!("{}.index", segment::file_stem(bases[1])));
        let mut idx = std::fs::read(&broken).unwrap();
        idx[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        std::fs::write(&broken, &idx).unwrap();
        let fast = recover_segments(&TopicPartition::new("t", 0), &part, &bases, true, true, interval).await.unwrap();
        assert_eq!(summary(&fast.segments), before);
        assert!(fast.bytes_read >= before[1].1, "the broken segment was scanned");
        drop(fast);

        // Through open: the producer snapshot stands in for the scanned headers, so a retry
        // of the idempotent producer's last batch is still known.
        let log = open(&dir, config(8192)).await;
        assert_eq!(summary(&log.state.borrow().segments), before);
        let value = format!("idempotent-9-{}", "y".repeat(300));
        let retry = log.append(&make_batch(&[value.as_bytes()], 2_009, 7, 9), -1).unwrap();
        assert_eq!(retry.base_offset, 69, "batch 60 + 9 holds the retried record");
        assert!(retry.done.is_none(), "a duplicate is not written again");
        let gap = make_batch(&[b"gap"], 1, 7, 12);
        assert!(matches!(log.append(&gap, -1), Err(StorageError::OutOfOrderSequence { expected: 10, got: 12 })));
        log.close().await.unwrap();
        drop(log);

        // A snapshot that does not match the log end (written for a longer log) is not used.
        let snapshot = part.join(PRODUCER_SNAPSHOT);
        let (states, end) = ProducerStates::read_snapshot(&snapshot).unwrap();
        assert_eq!(end, 110);
        ProducerStates::default().write_snapshot(&snapshot, end + 1).unwrap();
        let log = open(&dir, config(8192)).await;
        assert_eq!(log.append(&make_batch(&[value.as_bytes()], 2_009, 7, 9), -1).unwrap().base_offset, 69,
            "the producer state came from a full scan");
        drop((log, states));
    });
}

#[test]
fn a_journaled_or_visible_on_append_batch_is_served_before_its_write_and_never_past_it() {
    /// What makes a batch visible before its write, if anything.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Early {
        /// No journal, `visible_on_append` off: visible once written.
        Never,
        /// `visible_on_append`.
        OnAppend,
        /// An append journal with room, and a consumer at the log end.
        Journal,
        /// An append journal with room, and no consumer at the log end yet.
        JournalUntailed,
        /// An append journal already full of unwritten batches.
        JournalFull,
    }
    run(|dir| async move {
        // (what makes it visible early, batch cache bytes): what a fetch finds before the write.
        let cases = [(Early::Never, 1 << 20), (Early::OnAppend, 1 << 20), (Early::OnAppend, 1), (Early::Journal, 1 << 20), (Early::JournalUntailed, 1 << 20), (Early::JournalFull, 1 << 20)];
        for (early, cache_bytes) in cases {
            let dir = dir.join(format!("{early:?}-{cache_bytes}"));
            std::fs::create_dir_all(&dir).unwrap();
            let metrics = Arc::new(crate::metrics::ShardMetrics::new());
            let journal = matches!(early, Early::Journal | Early::JournalUntailed | Early::JournalFull).then(|| {
                Rc::new(AppendJournal::create(&dir, &dir, 0, 4096 + crate::storage::journal::MIN_BYTES, Arc::clone(&metrics)).unwrap())
            });
            if early == Early::JournalFull {
                // Another partition's unwritten batches fill the ring.
                let other = JournalPartition::new(&TopicPartition::new("other", 0), 0);
                let big = batch::stamp(&make_batch(&[&[0u8; 65_400]], 1, -1, -1), 0, 0, None);
                assert!(journal.as_ref().unwrap().record(&other, &big, 1));
            }
            let rounds = SyncRounds::new(std::time::Duration::ZERO);
            let log = open_with(&dir, config(1 << 20), 0, rounds, cache_bytes, early == Early::OnAppend, journal).await;
            if early != Early::JournalUntailed {
                // A consumer at the log end: from now on the appends are journaled.
                assert_eq!(log.locate(0, 1 << 20).unwrap().records.available(), 0);
            }
            let out = log.append(&make_batch(&[b"early", b"bird"], 1_000, -1, -1), 1).unwrap();
            let before = log.locate(0, 1 << 20).unwrap();
            match (early, cache_bytes) {
                (Early::Never | Early::JournalUntailed | Early::JournalFull, _) => {
                    assert_eq!((start_hw_end(&log), before.records.available()), ((0, 0, 2), 0), "visible once written")
                }
                (_, 1) => {
                    assert_eq!(start_hw_end(&log), (0, 2, 2), "visible from the append");
                    assert_eq!(before.records.available(), 0, "not cached and not written: nothing to read yet");
                }
                _ => {
                    assert_eq!(start_hw_end(&log), (0, 2, 2), "visible from the append");
                    assert!(matches!(&before.records, Located::Cached(b) if b.len() == 1), "served from the cache");
                }
            }
            let journaled = metrics.journal_batches.load(std::sync::atomic::Ordering::Relaxed);
            let full = metrics.journal_full.load(std::sync::atomic::Ordering::Relaxed);
            match early {
                Early::Journal => assert_eq!((journaled, full), (1, 0)),
                Early::JournalFull => assert_eq!((journaled, full), (1, 1), "only the other partition's batch"),
                _ => assert_eq!((journaled, full), (0, 0)),
            }
            out.done.unwrap().await.unwrap().unwrap();
            assert_eq!(start_hw_end(&log), (0, 2, 2));
            let after = log.read(0, 1 << 20).await.unwrap();
            assert_eq!(BatchHeader::parse(&after.records[0]).unwrap().records_count, 2, "written: read back whole");
        }
    });
}

#[test]
fn a_dropped_log_closes_its_files() {
    run(|dir| async move {
        let open_in_dir = || {
            std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| target.starts_with(&dir))
                .count()
        };
        let log = open(&dir, config(1 << 20)).await;
        append_n(&log, 3, 1_000).await;
        assert!(open_in_dir() > 0, "the active segment is open");
        drop(log);
        // The flusher and syncer wake, find the log gone and end; nothing else holds it.
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(open_in_dir(), 0, "no segment file stays open");
    });
}

#[test]
fn syncs_under_load_linger_and_a_sync_after_a_quiet_spell_does_not() {
    use std::time::{Duration, Instant};
    const LINGER: Duration = Duration::from_millis(500);
    run(|dir| async move {
        let log = open_lingering(&dir, config(1 << 20), LINGER).await;
        let syncs = || log.cache.metrics.fsync_latency.count();
        let append_all = |i: i64| {
            let batch = make_batch(&[b"durable"], 1_000 + i, -1, -1);
            log.append(&batch, -1).unwrap().done.unwrap()
        };
        append_all(0).await.unwrap().unwrap();
        assert_eq!(syncs(), 1, "the first acks=all append is synced");
        // Three more arrive 20 ms apart, within the linger after that sync: one sync covers all.
        let mut pending = Vec::new();
        for i in 1..=3 {
            pending.push(append_all(i));
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        let started = Instant::now();
        for done in pending {
            done.await.unwrap().unwrap();
        }
        assert_eq!(syncs(), 2, "appends within the linger share one fdatasync");
        assert!(started.elapsed() >= Duration::from_millis(300), "they waited out the linger");
        // After a quiet spell longer than the linger, a sync starts at once.
        glommio::timer::sleep(LINGER + Duration::from_millis(100)).await;
        let started = Instant::now();
        append_all(4).await.unwrap().unwrap();
        assert_eq!(syncs(), 3);
        assert!(started.elapsed() < Duration::from_millis(400), "no linger after a quiet spell: {:?}", started.elapsed());
    });
}

#[test]
fn a_shards_partitions_sync_in_one_round() {
    use std::time::{Duration, Instant};
    const LINGER: Duration = Duration::from_millis(300);
    run(|dir| async move {
        let rounds = SyncRounds::new(LINGER);
        let a = open_in_rounds(&dir, config(1 << 20), 0, Rc::clone(&rounds)).await;
        let b = open_in_rounds(&dir, config(1 << 20), 1, rounds).await;
        let append_all = |log: &PartitionLog| log.append(&make_batch(&[b"durable"], 1_000, -1, -1), -1).unwrap().done.unwrap();
        append_all(&a).await.unwrap().unwrap();
        // B has never synced, but A just did: B's first sync waits for the shard's next round.
        let started = Instant::now();
        append_all(&b).await.unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200), "B synced {:?} after A's sync", started.elapsed());
    });
}

#[test]
fn flush_ms_syncs_acks1_appends_through_the_syncer() {
    use std::time::Duration;
    run(|dir| async move {
        let mut cfg = config(1 << 20);
        cfg.flush_ms = 50;
        let log = open(&dir, cfg).await;
        let syncs = || log.cache.metrics.fsync_latency.count();
        let append_written = |text: &'static [u8]| {
            let batch = make_batch(&[text], 1_000, -1, -1);
            log.append(&batch, 1).unwrap().done.unwrap()
        };
        append_written(b"one").await.unwrap().unwrap();
        append_written(b"two").await.unwrap().unwrap();
        let written = syncs();
        log.request_timed_sync();
        glommio::timer::sleep(Duration::from_millis(10)).await;
        assert_eq!(syncs(), written, "flush.ms has not passed since the log opened: no sync");
        glommio::timer::sleep(Duration::from_millis(60)).await;
        log.request_timed_sync();
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert_eq!(syncs(), written + 1, "flush.ms passed with unsynced data: the syncer synced");
        log.request_timed_sync();
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert_eq!(syncs(), written + 1, "nothing left unsynced: no further sync");
    });
}

#[test]
fn idempotent_retry_is_acknowledged_once() {
    run(|dir| async move {
        let log = open(&dir, config(1 << 20)).await;
        let b0 = make_batch(&[b"a", b"b"], 1, 42, 0);
        let first = log.append(&b0, -1).unwrap();
        first.done.unwrap().await.unwrap().unwrap();
        let retry = log.append(&b0, -1).unwrap();
        assert_eq!(retry.base_offset, first.base_offset);
        assert!(retry.done.is_none(), "a duplicate is not written again");
        let gap = make_batch(&[b"c"], 1, 42, 5);
        assert!(matches!(log.append(&gap, -1), Err(StorageError::OutOfOrderSequence { expected: 2, got: 5 })));
        assert_eq!(log.offsets().log_end, 2);
        log.close().await.unwrap();
        drop(log);
        // Producer state is rebuilt from the log at recovery.
        let log = open(&dir, config(1 << 20)).await;
        assert_eq!(log.append(&b0, -1).unwrap().base_offset, 0);
        assert_eq!(log.offsets().log_end, 2);
    });
}
