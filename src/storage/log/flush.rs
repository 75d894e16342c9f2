//! The flusher and syncer tasks, sync rounds, O_DIRECT writes and segment rolls.

use std::rc::{Rc, Weak};

use glommio::io::DmaFile;

use super::{LogState, PAGE, PartitionLog, Pending, Waiter, open_dma};
use crate::storage::StorageError;
use crate::storage::batch::{BatchHeader, StampedBatch};
use crate::storage::segment::{self, Segment};
use crate::types::now_ms;

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

    /// Whether a sync of this shard ended within `window`: appends are being made durable here
    /// (the log cleaner paces itself then).
    pub fn synced_within(&self, window: std::time::Duration) -> bool {
        self.last_end.get().is_some_and(|end| end.elapsed() < window)
    }

    /// Records that a sync just ended.
    fn ended(&self) {
        self.last_end.set(Some(std::time::Instant::now()));
    }
}

impl PartitionLog {
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
    pub(super) async fn flusher(log: Weak<Self>) {
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
    pub(super) async fn syncer(log: Weak<Self>) {
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
    pub(super) async fn flush_once(&self) {
        // The flusher task and `close` both flush: two at once would both write at the old end.
        let Ok(_one_at_a_time) = self.flush_lock.acquire_permit(1).await else { return };
        self.flush_locked().await;
    }

    /// [`PartitionLog::flush_once`] for a caller that holds `flush_lock` (a truncation, which
    /// must cut the files with no write in between).
    pub(super) async fn flush_locked(&self) {
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

    pub(super) fn fail(&self, e: &StorageError) {
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
        st.advance_visible_end(self.visible_on_append);
        drop(st);
        if let Some((_, p)) = &self.journal {
            p.written(written_end);
        }
        // Also when the high watermark stayed: a visible batch that left the cache before its
        // write is readable now, and a fetch may wait for it.
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
            super::txn::write_txn_index(seg, &st.aborted)?;
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
}

/// Answers waiters with `result` (an error is re-created for each: storage errors do not clone).
pub(super) fn reply_all(waiters: Vec<Waiter>, result: &Result<(), StorageError>) {
    for w in waiters {
        let _ = w.reply.send(match result {
            Ok(()) => Ok(()),
            Err(e) => Err(StorageError::Io(e.to_string())),
        });
    }
}
