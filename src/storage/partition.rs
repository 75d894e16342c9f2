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

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use bytes::Bytes;
use futures::channel::oneshot;
use glommio::io::{DmaFile, OpenOptions};

use super::StorageError;
use super::batch::{self, BatchHeader, HEADER_LEN, StampedBatch};
use super::cache::BatchCache;
use super::journal::{AppendJournal, JournalPartition};
use super::producers::{ProducerStates, SequenceCheck};
use super::reader::{self, DiskRange, Located};
use super::segment::{self, Segment};
use crate::config::TopicConfig;
use crate::types::{TopicPartition, now_ms};

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

/// Result of a read: `R` is [`Located`] for a fetch, whole batches for [`PartitionLog::read`].
pub struct ReadOutcome<R> {
    /// The records found.
    pub records: R,
    /// High watermark at the time of the read.
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
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
    /// Next offset to assign (log end offset, including queued batches).
    next_offset: i64,
    /// Readers see offsets below this ([`LogState::visible_end`]).
    high_watermark: i64,
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
    unsynced_messages: i64,
    last_sync_ms: i64,
    failed: bool,
}

impl LogState {
    /// What readers may see: the log end when every batch not yet written is in the append
    /// journal (or with `visible_on_append`), otherwise what is written.
    fn visible_end(&self, visible_on_append: bool) -> i64 {
        if visible_on_append || self.written_end >= self.unjournaled_end { self.next_offset } else { self.written_end }
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
    /// Notified when a high watermark moves: parked fetches wait on it (from any shard).
    pub data_event: Arc<event_listener::Event>,
    /// When the shard's partitions may start their next fdatasync.
    pub sync_rounds: Rc<SyncRounds>,
    /// Whether fetches see a batch from its append on, not from its write (`visible_on_append`).
    pub visible_on_append: bool,
    /// The shard's append journal; `None` when `append_journal_dir` is off or unusable.
    pub journal: Option<Rc<AppendJournal>>,
    /// Fault injection: how long each segment write waits before it is issued.
    pub write_delay: std::time::Duration,
}

/// The shard's sync rounds. Under load a partition's fdatasync starts no sooner than the linger
/// (`sync_linger_us`) after the shard's last fdatasync ended, so one sync covers the group commits
/// of that window and a shard's partitions sync together, then leave the device alone for the
/// linger. Each sync flushes the device's cache, and on some disks (this VM's virtio disk) the
/// writes behind a flush wait for it. A zero linger, the default, syncs at once.
pub struct SyncRounds {
    linger: std::time::Duration,
    last_end: std::cell::Cell<Option<std::time::Instant>>,
}

impl SyncRounds {
    /// Rounds `linger` apart.
    pub fn new(linger: std::time::Duration) -> Rc<Self> {
        Rc::new(SyncRounds { linger, last_end: std::cell::Cell::new(None) })
    }

    /// How long a sync that is due now waits for the shard's next round; zero after a quiet spell.
    fn wait(&self) -> std::time::Duration {
        self.last_end.get().map_or(std::time::Duration::ZERO, |end| self.linger.saturating_sub(end.elapsed()))
    }

    /// Records that a sync just ended.
    fn ended(&self) {
        self.last_end.set(Some(std::time::Instant::now()));
    }
}

/// A partition's log. Lives on its owner shard (`!Send`).
pub struct PartitionLog {
    /// The partition.
    pub tp: TopicPartition,
    uid: u64,
    dir: PathBuf,
    leader_epoch: i32,
    config: RefCell<TopicConfig>,
    state: RefCell<LogState>,
    cache: Rc<BatchCache>,
    flush_wakeup: event_listener::Event,
    /// Wakes the syncer when written batches wait for an fdatasync.
    sync_wakeup: event_listener::Event,
    /// Notified when the high watermark moves: parked fetches wait on it (from any shard).
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

/// What start-up recovered from a partition's segment files.
struct Recovered {
    segments: BTreeMap<i64, Segment>,
    producers: ProducerStates,
    /// The active segment's last partial page.
    tail: Vec<u8>,
    /// Bytes of `.log` files read to recover.
    bytes_read: u64,
}

impl Recovered {
    /// The recovered log end offset.
    fn end_offset(&self) -> i64 {
        self.segments.values().next_back().map_or(0, |s| s.last_offset + 1)
    }
}

/// Opens the segments at `bases` and recovers their indexes, sizes and producer state. With
/// `use_index_files` (after a clean close, with a producer snapshot to stand in for the producer
/// state), each segment's index files are loaded and only the batches after the last index entry
/// are read; otherwise every batch header is read, and the last segment's CRCs are checked unless
/// the close was clean. A torn or corrupt tail of the last segment is cut off.
async fn recover_segments(
    tp: &TopicPartition,
    dir: &Path,
    bases: &[i64],
    was_clean: bool,
    use_index_files: bool,
    interval: u64,
) -> Result<Recovered, StorageError> {
    let mut segments = BTreeMap::new();
    let mut producers = ProducerStates::default();
    let mut tail = Vec::new();
    let mut bytes_read = 0;
    for (i, &base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        let log_path = dir.join(format!("{}.log", segment::file_stem(base)));
        if !log_path.exists() {
            std::fs::write(&log_path, [])?;
        }
        let file = Rc::new(open_dma(&log_path).await?);
        let meta = std::fs::metadata(&log_path)?;
        let created = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or_else(now_ms);
        let mut seg = Segment::new(base, file, log_path.clone(), created);
        let from = if use_index_files { seg.load_index_files(meta.len()) } else { None };
        let scan = segment::scan_log(&log_path, from.unwrap_or(0), is_last && !was_clean, |h, pos| {
            seg.track_batch(h, pos, interval);
            if !use_index_files {
                producers.record(h);
            }
        })?;
        bytes_read += meta.len() - from.unwrap_or(0);
        if scan.torn {
            tracing::warn!(partition = %tp, segment = base, valid_bytes = scan.valid_len,
                dropped_bytes = scan.trailing, "recovery truncated a torn or corrupt tail");
        }
        if scan.trailing > 0 {
            // The last write's page padding (or a torn tail): the appender rewrites from valid_len.
            seg.file.truncate(scan.valid_len).await?;
        }
        if is_last {
            tail = segment::read_tail_page(&log_path, scan.valid_len, PAGE)?;
        } else if from.is_none() {
            seg.write_index_files()?;
        }
        segments.insert(base, seg);
    }
    Ok(Recovered { segments, producers, tail, bytes_read })
}

impl PartitionLog {
    /// Opens (or creates) a partition's log and recovers it ([`recover_segments`]): after a clean
    /// close from its index files and producer snapshot, otherwise by reading every segment's
    /// batch headers and the last segment's CRCs.
    pub async fn open(
        tp: TopicPartition,
        uid: u64,
        data_dir: &Path,
        leader_epoch: i32,
        config: TopicConfig,
        shard: ShardLogContext,
    ) -> Result<Rc<PartitionLog>, StorageError> {
        let ShardLogContext { cache, data_event, sync_rounds, visible_on_append, journal, write_delay } = shard;
        let dir = data_dir.join(tp.dir_name());
        std::fs::create_dir_all(&dir)?;
        let mut bases = segment::base_offsets(&dir)?;
        let mut log_start_offset = read_number(&dir.join("log-start-offset")).unwrap_or(0);
        if bases.is_empty() {
            bases.push(log_start_offset);
        }
        write_epoch_checkpoint(&dir, leader_epoch)?;
        let clean = dir.join(CLEAN_SHUTDOWN);
        let was_clean = clean.exists();
        if was_clean {
            // Durably gone before any write: a crash from here on must get the full check.
            std::fs::remove_file(&clean)?;
            std::fs::File::open(&dir)?.sync_all()?;
        }

        let interval = config.index_interval_bytes;
        // After a clean close, the index files and the producer snapshot stand in for reading
        // the segments; a snapshot that does not match the recovered log end is not trusted.
        let snapshot = if was_clean { ProducerStates::read_snapshot(&dir.join(PRODUCER_SNAPSHOT)) } else { None };
        let mut recovered = recover_segments(&tp, &dir, &bases, was_clean, snapshot.is_some(), interval).await?;
        match snapshot {
            Some((states, end)) if end == recovered.end_offset() => recovered.producers = states,
            Some((_, end)) => {
                tracing::warn!(partition = %tp, snapshot_end_offset = end, log_end_offset = recovered.end_offset(),
                    "producer snapshot does not match the log; scanning every segment");
                recovered = recover_segments(&tp, &dir, &bases, was_clean, false, interval).await?;
            }
            None => {}
        }
        let Recovered { segments, producers, tail, bytes_read } = recovered;
        let (next_offset, created) = segments
            .values()
            .next_back()
            .map(|s| (s.last_offset + 1, s.created_ms))
            .unwrap_or((0, now_ms()));
        let first_base = segments.keys().next().copied().unwrap_or(0);
        log_start_offset = log_start_offset.max(first_base).min(next_offset);
        let projected_size = segments.values().next_back().map(|s| s.size).unwrap_or(0);
        tracing::info!(partition = %tp, segments = segments.len(), clean_shutdown = was_clean, bytes_read, log_start_offset,
            log_end_offset = next_offset, "partition log recovered");
        let journal = journal.map(|j| (j, JournalPartition::new(&tp, next_offset)));
        let log = Rc::new(PartitionLog {
            tp,
            uid,
            dir,
            leader_epoch,
            config: RefCell::new(config),
            state: RefCell::new(LogState {
                segments,
                tail,
                next_offset,
                high_watermark: next_offset,
                written_end: next_offset,
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
                unsynced_messages: 0,
                last_sync_ms: now_ms(),
                failed: false,
            }),
            cache,
            flush_wakeup: event_listener::Event::new(),
            sync_wakeup: event_listener::Event::new(),
            data_event,
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

    /// The partition's leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Replaces the topic config (AlterConfigs).
    pub fn set_config(&self, config: TopicConfig) {
        *self.config.borrow_mut() = config;
    }

    /// (log start offset, high watermark, log end offset).
    pub fn offsets(&self) -> (i64, i64, i64) {
        let s = self.state.borrow();
        (s.log_start_offset, s.high_watermark, s.next_offset)
    }

    /// Validates and queues `records` (one produce request's data for this partition).
    /// `acks = -1` makes the returned future wait for fdatasync; `acks = 1` for the write.
    ///
    /// While a consumer tails the partition ([`TAILED_FOR`]), each batch is copied into the
    /// shard's append journal ([`super::journal`]), and fetches see the batches from here on,
    /// served from the batch cache, as Kafka's consumers see a record once it is in the page
    /// cache: a consumer then does not wait for the O_DIRECT write (0.4 ms at the median on this
    /// VM, and 1.7 ms at p99 behind the fdatasyncs of `acks=all`). The journal outlives a broker
    /// process crash, and start-up writes back what it holds, so a record a consumer has seen
    /// survives the crash. A batch not in the journal (no consumer tails, or it had no room) is
    /// seen once written, and so is every batch after it until then.
    ///
    /// `visible_on_append` makes batches visible on append even without a journal entry. The
    /// price: a broker crash before the write loses records that consumers may have read. They
    /// were never acknowledged, since every `acks` level still waits for its write or fdatasync.
    ///
    /// A visible batch that leaves the cache before its write is in no segment yet, so a fetch
    /// finds nothing and waits for the write's `data_event`, as it waits at the log end.
    pub fn append(&self, records: &Bytes, acks: i16) -> Result<AppendOutcome, StorageError> {
        let config = self.config.borrow().clone();
        let batches = batch::split_batches(records)?;
        if batches.is_empty() {
            return Err(StorageError::CorruptBatch("produce carried no record batch".into()));
        }
        let mut headers = Vec::with_capacity(batches.len());
        for b in &batches {
            if b.len() > config.max_message_bytes {
                return Err(StorageError::MessageTooLarge { size: b.len(), max: config.max_message_bytes });
            }
            headers.push(batch::validate(b)?);
        }
        let mut st = self.state.borrow_mut();
        if st.failed {
            return Err(StorageError::Closed);
        }
        // Idempotence: a request's batches come from one producer; a retried request is a duplicate.
        let first = &headers[0];
        if let SequenceCheck::Duplicate(base_offset) = st.producers.check(first)? {
            tracing::debug!(partition = %self.tp, producer_id = first.producer_id, base_offset,
                "duplicate batch acknowledged without a write");
            return Ok(AppendOutcome { base_offset, log_append_time: -1, done: None });
        }
        let now = now_ms();
        let append_time = config.log_append_time.then_some(now);
        let base_offset = st.next_offset;
        let mut messages = 0i64;
        let journal = self.journal.as_ref().filter(|_| self.tailed_at.get().is_some_and(|at| at.elapsed() < TAILED_FOR));
        for (raw, h) in batches.iter().zip(&headers) {
            let offset = st.next_offset;
            let stamped = batch::stamp(raw, offset, self.leader_epoch, append_time);
            let mut h = *h;
            h.base_offset = offset;
            st.producers.record(&h);
            let len = stamped.len() as u64;
            let age = now - st.projected_created_ms;
            if st.projected_size > 0
                && (st.projected_size + len > config.segment_bytes || age >= config.segment_ms)
            {
                st.pending.push(Pending::Roll(offset));
                st.projected_size = 0;
                st.projected_created_ms = now;
            }
            st.projected_size += len;
            st.next_offset = h.last_offset() + 1;
            messages += i64::from(h.records_count);
            let journaled = journal.is_some_and(|(j, p)| j.record(p, &stamped, st.next_offset));
            if !journaled {
                st.unjournaled_end = st.next_offset;
            }
            self.cache.insert(self.uid, offset, stamped.clone());
            st.pending.push(Pending::Batch(stamped, h));
        }
        st.pending_since.get_or_insert_with(std::time::Instant::now);
        st.unsynced_messages += messages;
        let was_visible = st.high_watermark;
        st.high_watermark = st.visible_end(self.visible_on_append);
        let now_visible = st.high_watermark > was_visible;
        let done = if acks == 0 {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            st.waiters.push(Waiter { sync: acks == -1, reply: tx });
            Some(rx)
        };
        drop(st);
        self.flush_wakeup.notify(1);
        if now_visible {
            self.data_event.notify(usize::MAX);
        }
        Ok(AppendOutcome { base_offset, log_append_time: append_time.unwrap_or(-1), done })
    }

    /// Waits on `event` until `ready` holds, and returns the log then; `None` once the log is
    /// dropped or failed. The log is held only while there is work, so a dropped partition's
    /// background tasks end.
    async fn wait_for_work(
        log: &Weak<Self>,
        event: fn(&Self) -> &event_listener::Event,
        ready: fn(&LogState) -> bool,
    ) -> Option<Rc<Self>> {
        loop {
            let this = log.upgrade()?;
            let listener = event(&this).listen();
            {
                let st = this.state.borrow();
                if st.failed {
                    return None;
                }
                if ready(&st) {
                    drop(st);
                    return Some(this);
                }
            }
            drop(this);
            listener.await;
        }
    }

    /// Writes what `append` queues, one O_DIRECT write at a time.
    async fn flusher(log: Weak<Self>) {
        let has_work = |st: &LogState| !st.pending.is_empty() || !st.waiters.is_empty();
        while let Some(this) = Self::wait_for_work(&log, |l| &l.flush_wakeup, has_work).await {
            this.flush_once().await;
        }
    }

    /// fdatasyncs for the `acks=all` waiters (and the flush policy), one sync at a time. It runs
    /// beside the flusher, so a write never waits for a sync: a slow fdatasync delays the
    /// acknowledgements it covers, not the high watermark that consumers read up to. Under load
    /// it waits for the shard's next sync round ([`SyncRounds`]), so fewer device flushes stall
    /// those writes; a sync after a quiet spell starts at once.
    async fn syncer(log: Weak<Self>) {
        while let Some(this) = Self::wait_for_work(&log, |l| &l.sync_wakeup, |st| st.sync_requested).await {
            let linger = this.sync_rounds.wait();
            if !linger.is_zero() {
                // Not holding the log while asleep: a dropped partition's task ends.
                drop(this);
                glommio::timer::sleep(linger).await;
                continue;
            }
            // Every waiter taken here has its write complete, so this sync covers it. A batch in
            // an older segment was synced by the roll that closed that segment.
            let (waiters, file) = {
                let mut st = this.state.borrow_mut();
                st.sync_requested = false;
                let file = st.segments.values().next_back().map(|s| Rc::clone(&s.file));
                (std::mem::take(&mut st.sync_waiters), file)
            };
            let result = this.sync_file(file).await;
            this.sync_rounds.ended();
            if let Err(e) = &result {
                this.fail(e);
            }
            reply_all(waiters, &result);
        }
        if let Some(this) = log.upgrade() {
            let waiters = std::mem::take(&mut this.state.borrow_mut().sync_waiters);
            reply_all(waiters, &Err(StorageError::Closed));
        }
    }

    /// Writes everything queued, acknowledges `acks=1` waiters, and hands `acks=all` waiters to
    /// the syncer (which also syncs when the flush policy says so).
    async fn flush_once(&self) {
        // The flusher task and `close` both flush: two at once would both write at the old end.
        let Ok(_one_at_a_time) = self.flush_lock.acquire_permit(1).await else { return };
        let (items, waiters, queued_at) = {
            let mut st = self.state.borrow_mut();
            (std::mem::take(&mut st.pending), std::mem::take(&mut st.waiters), st.pending_since.take())
        };
        let (need_sync, written): (Vec<Waiter>, Vec<Waiter>) = waiters.into_iter().partition(|w| w.sync);
        match self.write_items(items).await {
            Ok(()) => {
                if let Some(at) = queued_at {
                    self.cache.metrics.append_visible_latency.record(at.elapsed());
                }
                reply_all(written, &Ok(()));
                let config = self.config.borrow().clone();
                let mut st = self.state.borrow_mut();
                let policy_sync = st.unsynced_messages >= config.flush_messages || st.flush_ms_passed(config.flush_ms);
                if !need_sync.is_empty() || policy_sync {
                    st.sync_waiters.extend(need_sync);
                    st.sync_requested = true;
                    drop(st);
                    self.sync_wakeup.notify(1);
                }
            }
            Err(e) => {
                self.fail(&e);
                let result = Err(e);
                reply_all(written, &result);
                reply_all(need_sync, &result);
            }
        }
    }

    fn fail(&self, e: &StorageError) {
        tracing::error!(partition = %self.tp, error = %e, "log write failed; partition taken offline");
        self.state.borrow_mut().failed = true;
        if let Some((_, p)) = &self.journal {
            // Its entries leave the ring, but a replay at the next start may still write them.
            p.abandon();
        }
        self.sync_wakeup.notify(1);
    }

    /// fdatasyncs the active segment.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let file = self.state.borrow().segments.values().next_back().map(|s| Rc::clone(&s.file));
        self.sync_file(file).await
    }

    /// fdatasyncs `file`, the active segment.
    async fn sync_file(&self, file: Option<Rc<DmaFile>>) -> Result<(), StorageError> {
        let covered = self.state.borrow().unsynced_messages;
        if let Some(file) = file {
            let started = std::time::Instant::now();
            file.fdatasync().await?;
            self.cache.metrics.fsync_latency.record(started.elapsed());
        }
        let mut st = self.state.borrow_mut();
        st.unsynced_messages = (st.unsynced_messages - covered).max(0);
        st.last_sync_ms = now_ms();
        Ok(())
    }

    /// Asks the syncer for an fdatasync when `flush.ms` has passed with unsynced data (the
    /// periodic flush policy). Every policy sync goes through the syncer, one at a time and
    /// within its linger, as the syncs that writes ask for do.
    pub fn request_timed_sync(&self) {
        let flush_ms = self.config.borrow().flush_ms;
        let mut st = self.state.borrow_mut();
        if st.unsynced_messages > 0 && st.flush_ms_passed(flush_ms) && !st.sync_requested {
            st.sync_requested = true;
            drop(st);
            self.sync_wakeup.notify(1);
        }
    }

    async fn write_items(&self, items: Vec<Pending>) -> Result<(), StorageError> {
        let mut run: Vec<(StampedBatch, BatchHeader)> = Vec::new();
        for item in items {
            match item {
                Pending::Batch(b, h) => run.push((b, h)),
                Pending::Roll(base) => {
                    self.write_run(std::mem::take(&mut run)).await?;
                    self.roll(base).await?;
                }
            }
        }
        self.write_run(run).await
    }

    /// Writes batches at the end of the active segment: the tail page plus the batches, padded to
    /// whole pages, in one O_DIRECT write.
    ///
    /// The file grows with each write; nothing is fallocated ahead. On ext4, writes into
    /// fallocated (unwritten) extents must convert them, and without an fdatasync to commit that
    /// metadata steadily (acks=1) appends stalled for up to 250 ms. Zeros written ahead instead
    /// cost 17% of acks=all throughput, since every fdatasync must also flush them, and even
    /// written only behind small runs they raised e2e p99 from 3.6 to 5.4 ms: data writes and
    /// flushes queue behind them (`perf/RESULTS.md`, sessions 3 and 7).
    async fn write_run(&self, run: Vec<(StampedBatch, BatchHeader)>) -> Result<(), StorageError> {
        if run.is_empty() {
            return Ok(());
        }
        let (file, size, tail) = {
            let st = self.state.borrow();
            let seg = st.segments.values().next_back().ok_or(StorageError::Closed)?;
            (Rc::clone(&seg.file), seg.size, st.tail.clone())
        };
        let start = size - tail.len() as u64;
        let data_len: usize = run.iter().map(|(b, _)| b.len()).sum();
        let used = tail.len() + data_len;
        let buf_len = (used as u64).div_ceil(PAGE) * PAGE;
        let mut buf = file.alloc_dma_buffer(buf_len as usize);
        {
            let dst = buf.as_bytes_mut();
            dst[..tail.len()].copy_from_slice(&tail);
            let mut at = tail.len();
            for part in run.iter().flat_map(|(b, _)| b.parts()) {
                dst[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            dst[at..].fill(0);
        }
        let new_tail_start = (start + used as u64) / PAGE * PAGE;
        let new_tail = buf.as_bytes()[(new_tail_start - start) as usize..used].to_vec();
        if !self.write_delay.is_zero() {
            glommio::timer::sleep(self.write_delay).await;
        }
        let written = file.write_at(buf, start).await?;
        if (written as u64) < buf_len {
            return Err(StorageError::Io(format!("short write: {written} of {buf_len} bytes")));
        }
        let interval = self.config.borrow().index_interval_bytes;
        let mut st = self.state.borrow_mut();
        let mut pos = size;
        let mut written_end = st.written_end;
        if let Some(seg) = st.segments.values_mut().next_back() {
            for (b, h) in &run {
                seg.track_batch(h, pos, interval);
                pos += b.len() as u64;
                written_end = h.last_offset() + 1;
            }
        }
        st.tail = new_tail;
        st.written_end = st.written_end.max(written_end);
        st.high_watermark = st.high_watermark.max(st.visible_end(self.visible_on_append));
        drop(st);
        if let Some((_, p)) = &self.journal {
            p.written(written_end);
        }
        self.data_event.notify(usize::MAX);
        Ok(())
    }

    /// Closes the active segment (trimmed to its logical size, index files written) and starts a
    /// new one at `base`.
    async fn roll(&self, base: i64) -> Result<(), StorageError> {
        let (file, size) = {
            let st = self.state.borrow();
            let seg = st.segments.values().next_back().ok_or(StorageError::Closed)?;
            seg.write_index_files()?;
            (Rc::clone(&seg.file), seg.size)
        };
        file.fdatasync().await?;
        file.truncate(size).await?;
        let log_path = self.dir.join(format!("{}.log", segment::file_stem(base)));
        let new_file = Rc::new(open_dma(&log_path).await?);
        let mut st = self.state.borrow_mut();
        st.segments.insert(base, Segment::new(base, new_file, log_path, now_ms()));
        st.tail.clear();
        tracing::info!(partition = %self.tp, base_offset = base, "rolled to a new segment");
        Ok(())
    }

    /// Finds the batches starting with the one that holds `offset`, up to `max_bytes` (at least
    /// one batch), never past the high watermark: in the batch cache, or as a [`DiskRange`] for
    /// the connection's shard to read without copying.
    pub fn locate(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome<Located>, StorageError> {
        let st = self.state.borrow();
        let (hw, start) = (st.high_watermark, st.log_start_offset);
        if offset < start || offset > hw {
            return Err(StorageError::OffsetOutOfRange { offset, start, end: hw });
        }
        let outcome = |records| ReadOutcome { records, high_watermark: hw, log_start_offset: start };
        if offset == hw {
            self.tailed_at.set(Some(std::time::Instant::now()));
            return Ok(outcome(Located::default()));
        }
        if let Some(records) = self.cache.read(self.uid, offset, max_bytes, hw) {
            return Ok(outcome(Located::Cached(records)));
        }
        // The segment holding `offset`, or the next one when it lies past a segment's end.
        let holding = st.segments.range(..=offset).next_back().map(|(_, s)| s).filter(|s| s.last_offset >= offset);
        let Some(seg) = holding.or_else(|| st.segments.range(offset + 1..).next().map(|(_, s)| s)) else {
            return Ok(outcome(Located::default()));
        };
        let position = seg.lookup(offset).0;
        let mut range = DiskRange {
            segment_id: seg.id,
            path: seg.log_path.clone(),
            position,
            end: seg.size,
            offset,
            max_bytes,
            boundaries: Vec::new(),
        };
        if range.splices() {
            range.boundaries = seg.batch_starts(position, position + max_bytes as u64);
        }
        Ok(outcome(Located::OnDisk(range)))
    }

    /// Like [`PartitionLog::locate`], then reads the bytes on this shard into one `Bytes` per
    /// batch (a copy: for recovery and replay, not for fetches).
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome<Vec<Bytes>>, StorageError> {
        let found = self.locate(offset, max_bytes)?;
        let records = match &found.records {
            Located::Cached(batches) => batches.iter().map(StampedBatch::to_bytes).collect(),
            Located::OnDisk(range) => {
                let file = self.state.borrow().segments.values().find(|s| s.id == range.segment_id).map(|s| Rc::clone(&s.file));
                let Some(file) = file else { return Err(StorageError::Closed) };
                let mut batches = Vec::new();
                for view in reader::read_range(&file, range, None).await?.views {
                    batches.extend(batch::split_batches(&Bytes::copy_from_slice(&view))?);
                }
                batches
            }
        };
        Ok(ReadOutcome { records, high_watermark: found.high_watermark, log_start_offset: found.log_start_offset })
    }

    /// The first record whose timestamp is at least `ts`, as (offset, its timestamp), or `None`
    /// when every record is older.
    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let candidates: Vec<_> = {
            let st = self.state.borrow();
            st.segments
                .values()
                .filter(|s| s.max_timestamp >= ts && s.last_offset >= st.log_start_offset)
                .filter_map(|s| s.lookup_time(ts).map(|p| (Rc::clone(&s.file), p.0, s.size)))
                .collect()
        };
        for (file, pos, size) in candidates {
            let mut at = pos;
            while at + HEADER_LEN as u64 <= size {
                let head = file.read_at(at, HEADER_LEN).await?;
                let Some(h) = BatchHeader::parse(&head) else { break };
                if h.max_timestamp >= ts {
                    let whole = file.read_at(at, h.total_len()).await?;
                    let start = self.state.borrow().log_start_offset;
                    return Ok(batch::first_offset_at_or_after(&whole, ts).map(|(o, t)| (o.max(start), t)));
                }
                at += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// The offset and timestamp of the record with the largest timestamp (batch granularity for
    /// compressed batches), for ListOffsets MAX_TIMESTAMP.
    pub async fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let best = {
            let st = self.state.borrow();
            st.segments
                .values()
                .filter(|s| s.max_timestamp >= 0)
                .max_by_key(|s| s.max_timestamp)
                .map(|s| s.max_timestamp)
        };
        let Some(ts) = best else { return Ok(None) };
        self.offset_for_timestamp(ts).await
    }

    /// The end offset of `epoch` (OffsetForLeaderEpoch): the log end when it is the current epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        if epoch > self.leader_epoch {
            return None;
        }
        let st = self.state.borrow();
        Some((self.leader_epoch.min(epoch.max(0)), st.high_watermark))
    }

    /// Moves the log start offset forward (DeleteRecords) and drops whole segments below it.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        let target = {
            let st = self.state.borrow();
            let target = if offset == -1 { st.high_watermark } else { offset };
            if target < 0 || target > st.high_watermark {
                return Err(StorageError::OffsetOutOfRange {
                    offset: target,
                    start: st.log_start_offset,
                    end: st.high_watermark,
                });
            }
            target
        };
        self.advance_start(target)?;
        Ok(self.state.borrow().log_start_offset)
    }

    fn advance_start(&self, target: i64) -> Result<(), StorageError> {
        let removed = {
            let mut st = self.state.borrow_mut();
            if target <= st.log_start_offset {
                return Ok(());
            }
            st.log_start_offset = target;
            let mut removed = Vec::new();
            // Drop every segment whose successor starts at or below the new start.
            loop {
                let mut keys = st.segments.keys();
                let (Some(&first), Some(&second)) = (keys.next(), keys.next()) else { break };
                if second > target {
                    break;
                }
                if let Some(seg) = st.segments.remove(&first) {
                    removed.push(seg.log_path);
                }
            }
            removed
        };
        std::fs::write(self.dir.join("log-start-offset"), target.to_string())?;
        self.cache.drop_below(self.uid, target);
        for path in removed {
            for ext in ["log", "index", "timeindex"] {
                let _ = std::fs::remove_file(path.with_extension(ext));
            }
            tracing::info!(partition = %self.tp, segment = %path.display(), "deleted segment");
        }
        Ok(())
    }

    /// Applies `retention.ms` and `retention.bytes` to closed segments.
    pub fn enforce_retention(&self) -> Result<(), StorageError> {
        let config = self.config.borrow().clone();
        if !config.delete_retention {
            return Ok(());
        }
        let now = now_ms();
        let new_start = {
            let st = self.state.borrow();
            let total: u64 = st.segments.values().map(|s| s.size).sum();
            let mut remaining = total;
            let mut new_start = None;
            let closed: Vec<_> = st.segments.values().collect();
            for (seg, next) in closed.iter().zip(closed.iter().skip(1)) {
                let too_big = config.retention_bytes >= 0 && remaining - seg.size >= config.retention_bytes as u64;
                let too_old = config.retention_ms >= 0 && seg.max_timestamp >= 0 && now - seg.max_timestamp > config.retention_ms;
                if !(too_big || too_old) {
                    break;
                }
                remaining -= seg.size;
                new_start = Some(next.base_offset);
            }
            new_start
        };
        match new_start {
            Some(start) => self.advance_start(start),
            None => Ok(()),
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
            }
            st.producers.write_snapshot(&self.dir.join(PRODUCER_SNAPSHOT), st.next_offset)?;
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
    /// Wakes the flusher and syncer, which hold only a weak reference while idle, so they end.
    fn drop(&mut self) {
        self.flush_wakeup.notify(usize::MAX);
        self.sync_wakeup.notify(usize::MAX);
    }
}

/// Answers waiters with `result` (an error is re-created for each: storage errors do not clone).
fn reply_all(waiters: Vec<Waiter>, result: &Result<(), StorageError>) {
    for w in waiters {
        let _ = w.reply.send(match result {
            Ok(()) => Ok(()),
            Err(e) => Err(StorageError::Io(e.to_string())),
        });
    }
}

fn read_number(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Writes Kafka's `leader-epoch-checkpoint` (version 0, one entry) when it is missing.
fn write_epoch_checkpoint(dir: &Path, epoch: i32) -> Result<(), StorageError> {
    let path = dir.join("leader-epoch-checkpoint");
    if !path.exists() {
        std::fs::write(path, format!("0\n1\n{epoch} 0\n"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::testing::make_batch;
    use crate::storage::testing::run;

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
        let cache = Rc::new(BatchCache::new(cache_bytes, Arc::new(crate::metrics::ShardMetrics::new())));
        let shard = ShardLogContext { cache, data_event: Arc::new(event_listener::Event::new()), sync_rounds, visible_on_append, journal, write_delay: std::time::Duration::ZERO };
        PartitionLog::open(TopicPartition::new("t", partition), partition as u64, dir, 0, cfg, shard)
            .await
            .unwrap()
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
            let (start, hw, leo) = log.offsets();
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
            assert_eq!(log.offsets(), (0, 120, 120));
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
            assert_eq!(log.offsets(), (0, 120, 120));
            append_n(&log, 1, 5_000).await;
            let r = log.read(120, 1).await.unwrap();
            assert_eq!(BatchHeader::parse(&r.records[0]).unwrap().base_offset, 120);

            // retention.bytes drops whole closed segments from the front.
            let mut cfg = config(8192);
            cfg.retention_bytes = 10_000;
            log.set_config(cfg);
            log.enforce_retention().unwrap();
            let (start, _, _) = log.offsets();
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
                    Rc::new(AppendJournal::create(&dir, &dir, 0, 4096 + super::super::journal::MIN_BYTES, Arc::clone(&metrics)).unwrap())
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
                        assert_eq!((log.offsets(), before.records.available()), ((0, 0, 2), 0), "visible once written")
                    }
                    (_, 1) => {
                        assert_eq!(log.offsets(), (0, 2, 2), "visible from the append");
                        assert_eq!(before.records.available(), 0, "not cached and not written: nothing to read yet");
                    }
                    _ => {
                        assert_eq!(log.offsets(), (0, 2, 2), "visible from the append");
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
                assert_eq!(log.offsets(), (0, 2, 2));
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
            assert_eq!(log.offsets().2, 2);
            log.close().await.unwrap();
            drop(log);
            // Producer state is rebuilt from the log at recovery.
            let log = open(&dir, config(1 << 20)).await;
            assert_eq!(log.append(&b0, -1).unwrap().base_offset, 0);
            assert_eq!(log.offsets().2, 2);
        });
    }
}
