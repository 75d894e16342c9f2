//! A partition's log on its owner shard: segments, the group-commit appender, reads, recovery
//! and retention.
//!
//! Appends are synchronous up to the point of assigning offsets: [`PartitionLog::append`]
//! validates, checks idempotent sequences, stamps offsets and queues the batches, all before the
//! first `.await`. So requests that reach the shard in order are appended in order. One flusher
//! task per partition then drains the queue:
//!
//! ```text
//!  append ─┬─► pending ──► flusher: copy tail page + all pending batches into one aligned buffer
//!  append ─┘                        ─► O_DIRECT write ─► fdatasync if any waiter needs it
//!                                   ─► advance high watermark ─► wake waiters and parked fetches
//! ```
//! Every produce that arrived while a flush ran shares the next write and the next fdatasync:
//! that is the group commit.
//!
//! This file holds the log's type, its state, `open` and `close`. Beside it: `append` (the
//! append path and idempotence), `flush` (the flusher, syncer, segment writes and rolls),
//! `recovery` (start-up), `read` (fetches and lookups), `retention` (moving the log start),
//! `txn` (markers, the last stable offset, read_committed) and `follower` (a replica's appends of its leader's batches, and KIP-101 truncation).

mod append;
mod compact;
mod epochs;
mod flush;
mod follower;
mod read;
mod recovery;
mod retention;
#[cfg(test)]
mod tests;
mod txn;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use glommio::io::{DmaFile, OpenOptions};

use super::StorageError;
use super::batch::{BatchHeader, StampedBatch};
use super::cache::BatchCache;
use super::journal::{AppendJournal, JournalPartition};
use super::producers::ProducerStates;
use super::segment::{self, Segment};
use crate::config::TopicConfig;
use crate::types::{TopicPartition, now_ms};

pub use compact::{CleanOutcome, Cleanable};
pub use flush::SyncRounds;
use flush::reply_all;
use epochs::EpochCache;
use recovery::{Recovered, read_number, recover};

/// Written into the partition's directory by a clean close, and removed (durably) at open: its
/// presence means every byte of the log was synced and the index files and producer snapshot
/// written, so start-up reads neither the last segment's CRCs nor the batch headers that those
/// files describe, as Kafka skips recovery after a clean shutdown. Reading them took 5 s for a
/// 5 GiB backlog on this machine's disk.
const CLEAN_SHUTDOWN: &str = "clean-shutdown";

/// The producer state as of the last clean close ([`ProducerStates::write_snapshot`]).
const PRODUCER_SNAPSHOT: &str = "producer-state.snapshot";

/// Direct I/O page size.
const PAGE: u64 = 4096;

/// How long after a fetch last found a partition's log end that its appends still go to the
/// append journal. A consumer that keeps up finds the end on nearly every fetch; one that lags
/// reads what is written long before it gets there, and the copy would buy it nothing.
const TAILED_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// Result of an append.
pub struct AppendOutcome {
    /// Offset of the first record appended (or of the duplicate already in the log).
    pub base_offset: i64,
    /// LogAppendTime when the topic uses it, else -1.
    pub log_append_time: i64,
    /// Resolves when the append is written (and synced, if asked for).
    pub done: Option<oneshot::Receiver<Result<(), StorageError>>>,
}

impl AppendOutcome {
    /// Waits until the append is written (and synced, if asked for). A writer that went away
    /// without answering counts as an i/o error: the append may not be on disk.
    pub async fn written(done: Option<oneshot::Receiver<Result<(), StorageError>>>) -> Result<(), StorageError> {
        match done {
            None => Ok(()),
            Some(done) => done.await.unwrap_or_else(|_| Err(StorageError::Io("append abandoned by its writer".into()))),
        }
    }
}

/// A partition log's offsets, kept apart because replication tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    /// The first offset a read may ask for.
    pub log_start: i64,
    /// The log end offset: the next offset to assign, counting batches not yet written.
    pub log_end: i64,
    /// Consumers read below this.
    pub high_watermark: i64,
    /// The locally visible end: what this replica may serve (written, or journaled or
    /// `visible_on_append` before its write). The high watermark never passes it.
    pub visible_end: i64,
}

/// Result of a read: `R` is [`Located`] for a fetch, whole batches for [`PartitionLog::read`].
pub struct ReadOutcome<R> {
    /// The records found.
    pub records: R,
    /// High watermark at the time of the read.
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
    /// Last stable offset at the time of the read.
    pub last_stable_offset: i64,
}

enum Pending {
    Batch(StampedBatch, BatchHeader),
    Roll(i64),
}

/// A produce waiting for its batches' flush (and fdatasync when `sync`).
struct Waiter {
    sync: bool,
    reply: oneshot::Sender<Result<(), StorageError>>,
}

struct LogState {
    segments: BTreeMap<i64, Segment>,
    /// Bytes of the active segment's last partial page, rewritten by the next write.
    tail: Vec<u8>,
    /// The log end offset: the next offset to assign, counting batches queued but not written.
    log_end: i64,
    /// The locally visible end: what this replica may serve. The log end while every batch not
    /// yet written is in the append journal (or with `visible_on_append`), else the written end;
    /// it never moves back ([`LogState::advance_visible_end`]).
    visible_end: i64,
    /// Consumers read below this. It follows the visible end while `hw_follows_visible_end`;
    /// otherwise only [`PartitionLog::set_high_watermark`] moves it. Never past the visible end.
    high_watermark: i64,
    /// The single-replica rule: the high watermark is the visible end. The replication layer
    /// turns it off ([`PartitionLog::set_replicated`]) and sets the high watermark itself.
    hw_follows_visible_end: bool,
    /// Where each leader epoch starts; the last is the epoch appends are stamped with.
    epochs: EpochCache,
    /// Offsets below this are written to the segment files.
    written_end: i64,
    /// The end of the last batch appended without an append-journal entry: readers see past
    /// the written end only once the writes reach it.
    unjournaled_end: i64,
    log_start_offset: i64,
    /// Projected size of the active segment including queued batches, for roll decisions.
    projected_size: u64,
    projected_created_ms: i64,
    pending: Vec<Pending>,
    /// When the first of `pending` was queued.
    pending_since: Option<std::time::Instant>,
    waiters: Vec<Waiter>,
    /// `acks=all` waiters whose batches are written, for the syncer's next fdatasync.
    sync_waiters: Vec<Waiter>,
    /// The flush policy (`flush.messages`, `flush.ms`) asked for an fdatasync.
    sync_requested: bool,
    producers: ProducerStates,
    /// Every aborted transaction in the log, by marker offset: the segments' `.txnindex`
    /// entries, and those of the active segment, which its file gets when it rolls or closes.
    aborted: Vec<super::txn::AbortedTxn>,
    unsynced_messages: i64,
    last_sync_ms: i64,
    failed: bool,
}

impl LogState {
    /// Moves the visible end up to what may be served now: the log end when every batch not yet
    /// written is in the append journal (or with `visible_on_append`), otherwise what is written.
    /// A batch appended without a journal entry hides later batches until its write, but never
    /// what was already visible. The high watermark follows when `hw_follows_visible_end`;
    /// returns whether it moved.
    /// Moves the visible end (and, unreplicated, the high watermark with it); true when it moved,
    /// which wakes parked fetches: consumers for the high watermark, followers for the new data.
    fn advance_visible_end(&mut self, visible_on_append: bool) -> bool {
        let servable = if visible_on_append || self.written_end >= self.unjournaled_end { self.log_end } else { self.written_end };
        let moved = servable > self.visible_end;
        self.visible_end = self.visible_end.max(servable);
        if self.hw_follows_visible_end && self.visible_end > self.high_watermark {
            self.high_watermark = self.visible_end;
        }
        moved
    }

    /// Whether `flush.ms` (Kafka's "never" is `i64::MAX`) has passed since the last fdatasync.
    fn flush_ms_passed(&self, flush_ms: i64) -> bool {
        flush_ms < i64::MAX && now_ms() - self.last_sync_ms >= flush_ms
    }
}

/// What every partition log on a shard shares.
#[derive(Clone)]
pub struct ShardLogContext {
    /// The shard's batch cache.
    pub cache: Rc<BatchCache>,
    /// When the shard's partitions may start their next fdatasync.
    pub sync_rounds: Rc<SyncRounds>,
    /// Whether fetches see a batch from its append on, not from its write (`visible_on_append`).
    pub visible_on_append: bool,
    /// The shard's append journal; `None` when `append_journal_dir` is off or unusable.
    pub journal: Option<Rc<AppendJournal>>,
    /// Fault injection: how long each segment write waits before it is issued.
    pub write_delay: std::time::Duration,
}

/// A partition's log. Lives on its owner shard (`!Send`).
pub struct PartitionLog {
    /// The partition.
    pub tp: TopicPartition,
    uid: u64,
    dir: PathBuf,
    config: RefCell<TopicConfig>,
    state: RefCell<LogState>,
    cache: Rc<BatchCache>,
    flush_wakeup: event_listener::Event,
    /// Wakes the syncer when written batches wait for an fdatasync.
    sync_wakeup: event_listener::Event,
    /// This partition's fetch wake-up ([`PartitionLog::data_event`]).
    data_event: Arc<event_listener::Event>,
    /// One flush at a time.
    flush_lock: glommio::sync::Semaphore,
    /// See [`SyncRounds`].
    sync_rounds: Rc<SyncRounds>,
    /// See [`PartitionLog::append`].
    visible_on_append: bool,
    /// The shard's append journal and this partition's link to it.
    journal: Option<(Rc<AppendJournal>, Rc<JournalPartition>)>,
    /// See [`ShardLogContext::write_delay`].
    write_delay: std::time::Duration,
    /// When a fetch last found nothing past the high watermark: a consumer tails this
    /// partition, and appends go to the journal for [`TAILED_FOR`] after.
    tailed_at: std::cell::Cell<Option<std::time::Instant>>,
}

async fn open_dma(path: &Path) -> Result<DmaFile, StorageError> {
    Ok(OpenOptions::new().read(true).write(true).create(true).dma_open(path).await?)
}

impl PartitionLog {
    /// Opens (or creates) a partition's log and recovers it ([`recover_segments`]): after a clean
    /// close from its index files and producer snapshot, otherwise by reading every segment's
    /// batch headers and the last segment's CRCs. `leader_epoch` is the metadata's; a newer one
    /// in the leader-epoch checkpoint ([`PartitionLog::set_leader_epoch`]) stands.
    pub async fn open(
        tp: TopicPartition,
        uid: u64,
        data_dir: &Path,
        leader_epoch: i32,
        config: TopicConfig,
        shard: ShardLogContext,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let ShardLogContext { cache, sync_rounds, visible_on_append, journal, write_delay } = shard;
        let dir = data_dir.join(tp.dir_name());
        std::fs::create_dir_all(&dir)?;
        // Before the segments are listed: a cleaner swap cut short by a crash is finished or undone.
        super::cleaner::swap::recover_leftovers(&dir)?;
        let mut bases = segment::base_offsets(&dir)?;
        let mut log_start_offset = read_number(&dir.join("log-start-offset")).unwrap_or(0);
        if bases.is_empty() {
            bases.push(log_start_offset);
        }
        let clean = dir.join(CLEAN_SHUTDOWN);
        let was_clean = clean.exists();
        if was_clean {
            // Durably gone before any write: a crash from here on must get the full check.
            std::fs::remove_file(&clean)?;
            std::fs::File::open(&dir)?.sync_all()?;
        }

        let recovered = recover(&tp, &dir, &bases, was_clean, config.index_interval_bytes).await?;
        let Recovered { segments, producers, aborted, tail, bytes_read } = recovered;
        let (log_end, created) = segments
            .values()
            .next_back()
            .map(|s| (s.last_offset + 1, s.created_ms))
            .unwrap_or((0, now_ms()));
        let first_base = segments.keys().next().copied().unwrap_or(0);
        log_start_offset = log_start_offset.max(first_base).min(log_end);
        let projected_size = segments.values().next_back().map(|s| s.size).unwrap_or(0);
        tracing::info!(partition = %tp, segments = segments.len(), clean_shutdown = was_clean, bytes_read, log_start_offset,
            log_end_offset = log_end, "partition log recovered");
        let epochs = EpochCache::open(&dir, leader_epoch, log_end)?;
        let journal = journal.map(|j| (j, JournalPartition::new(&tp, log_end)));
        let log = Rc::new(PartitionLog {
            tp,
            uid,
            dir,
            config: RefCell::new(config),
            state: RefCell::new(LogState {
                segments,
                tail,
                log_end,
                visible_end: log_end,
                // A replica of a cluster (epoch unknown at open) starts its high watermark at
                // the log start: what its tail holds may not be committed; the leader's answers
                // (or the ISR, once it leads) move it up.
                high_watermark: if leader_epoch < 0 { log_start_offset } else { log_end },
                hw_follows_visible_end: leader_epoch >= 0,
                epochs,
                written_end: log_end,
                unjournaled_end: 0,
                log_start_offset,
                projected_size,
                projected_created_ms: created,
                pending: Vec::new(),
                pending_since: None,
                waiters: Vec::new(),
                sync_waiters: Vec::new(),
                sync_requested: false,
                producers,
                aborted,
                unsynced_messages: 0,
                last_sync_ms: now_ms(),
                failed: false,
            }),
            cache,
            flush_wakeup: event_listener::Event::new(),
            sync_wakeup: event_listener::Event::new(),
            data_event: Arc::new(event_listener::Event::new()),
            flush_lock: glommio::sync::Semaphore::new(1),
            sync_rounds,
            visible_on_append,
            journal,
            write_delay,
            tailed_at: std::cell::Cell::new(None),
        });
        glommio::spawn_local(Self::flusher(Rc::downgrade(&log))).detach();
        glommio::spawn_local(Self::syncer(Rc::downgrade(&log))).detach();
        Ok(log)
    }

    /// `min.insync.replicas` of the log's topic.
    pub fn min_insync_replicas(&self) -> usize {
        self.config.borrow().min_insync_replicas
    }

    /// Replaces the topic config (AlterConfigs).
    pub fn set_config(&self, config: TopicConfig) {
        *self.config.borrow_mut() = config;
    }

    /// The log's offsets now ([`LogOffsets`]).
    pub fn offsets(&self) -> LogOffsets {
        let s = self.state.borrow();
        LogOffsets {
            log_start: s.log_start_offset,
            log_end: s.log_end,
            high_watermark: s.high_watermark,
            visible_end: s.visible_end,
        }
    }

    /// The log's size in bytes: the whole batches written to its segments, as Kafka's
    /// `UnifiedLog.size` (DescribeLogDirs). Batches queued but not yet written do not count.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments.values().map(|s| s.size).sum()
    }

    /// Notified when this partition's high watermark moves, and when a write makes visible
    /// batches readable from disk: a fetch parked on the partition (on any shard) waits on it,
    /// so an append wakes only the fetches of its own partition. Also notified when the log is
    /// dropped.
    pub fn data_event(&self) -> Arc<event_listener::Event> {
        Arc::clone(&self.data_event)
    }

    /// Sets the high watermark (the replication layer: what the in-sync replicas hold). It is
    /// held to the visible end and never moves back; when it moves, parked fetches are woken.
    pub fn set_high_watermark(&self, hw: i64) {
        let moved = {
            let mut st = self.state.borrow_mut();
            let hw = hw.min(st.visible_end);
            let moved = hw > st.high_watermark;
            if moved {
                st.high_watermark = hw;
                st.producers.prune_decided(hw);
            }
            moved
        };
        if moved {
            self.data_event.notify(usize::MAX);
        }
    }

    /// Whether the partition is replicated. Not replicated (the default), the high watermark
    /// follows the visible end; replicated, only [`PartitionLog::set_high_watermark`] moves it.
    /// Turning replication off brings the high watermark up to the visible end at once.
    pub fn set_replicated(&self, replicated: bool) {
        let moved = {
            let mut st = self.state.borrow_mut();
            st.hw_follows_visible_end = !replicated;
            let hw = st.high_watermark;
            st.advance_visible_end(self.visible_on_append) || st.high_watermark > hw
        };
        if moved {
            self.data_event.notify(usize::MAX);
        }
    }

    /// Flushes everything queued and syncs: the clean-shutdown path.
    pub async fn close(&self) -> Result<(), StorageError> {
        self.flush_once().await;
        let waiters = {
            let mut st = self.state.borrow_mut();
            st.sync_requested = false;
            std::mem::take(&mut st.sync_waiters)
        };
        let synced = self.sync().await;
        reply_all(waiters, &synced);
        synced?;
        {
            let st = self.state.borrow();
            if let Some(seg) = st.segments.values().next_back() {
                seg.write_index_files()?;
                txn::write_txn_index(seg, &st.aborted)?;
            }
            st.producers.write_snapshot(&self.dir.join(PRODUCER_SNAPSHOT), st.log_end)?;
        }
        std::fs::write(self.dir.join(CLEAN_SHUTDOWN), b"")?;
        Ok(())
    }

    /// Removes the partition's directory (DeleteTopics).
    pub fn remove_files(&self) -> Result<(), StorageError> {
        self.state.borrow_mut().failed = true;
        if let Some((j, p)) = &self.journal {
            j.forget(p);
        }
        self.cache.drop_partition(self.uid);
        self.flush_wakeup.notify(1);
        self.sync_wakeup.notify(1);
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

impl Drop for PartitionLog {
    /// Wakes the flusher and syncer, which hold only a weak reference while idle, so they end,
    /// and the fetches parked on the partition, which find it gone.
    fn drop(&mut self) {
        self.flush_wakeup.notify(usize::MAX);
        self.sync_wakeup.notify(usize::MAX);
        self.data_event.notify(usize::MAX);
    }
}
