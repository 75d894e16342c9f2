//! The replica's side of the log: appending the leader's batches as they are, and KIP-101
//! truncation of a divergent tail.
//!
//! A follower's fetcher drives both, one at a time (it never appends while it truncates):
//!
//! ```text
//!  OffsetForLeaderEpoch ─► truncate_to(end of the last common epoch) ─► Fetch from there
//!  ─► append_as_follower(records) ─► done (fdatasync'd) ─► report the new end as fetch offset
//!  ─► set_high_watermark(min(leader's high watermark, own end))
//! ```

use std::collections::HashSet;
use std::rc::Rc;

use bytes::Bytes;

use super::{AppendOutcome, PAGE, PartitionLog, reply_all};
use crate::storage::StorageError;
use crate::storage::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD, StampedBatch};
use crate::storage::segment::{self, Segment};
use crate::types::now_ms;

/// The whole batches of a fetch response's records, in order. A last batch cut short (the
/// leader stops at the fetch's max_bytes mid-batch) is left out: the next fetch asks for it.
fn whole_batches(records: &Bytes) -> Result<Vec<Bytes>, StorageError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while records.len() - pos >= LOG_OVERHEAD {
        let len = i32::from_be_bytes([records[pos + 8], records[pos + 9], records[pos + 10], records[pos + 11]]);
        if len < 0 {
            return Err(StorageError::CorruptBatch(format!("batch length {len} at byte {pos} of a fetch response")));
        }
        let total = LOG_OVERHEAD + len as usize;
        if pos + total > records.len() {
            break;
        }
        out.push(records.slice(pos..pos + total));
        pos += total;
    }
    Ok(out)
}

impl PartitionLog {
    /// Appends batches fetched from the leader, as the leader stored them: its base offsets,
    /// leader epochs and timestamps stay (no re-stamping); each batch's CRC is checked. Each
    /// batch must start at or past where the log (or the batch before it) ends, else
    /// [`StorageError::OffsetMismatch`]: a leader's log has holes where its cleaner removed
    /// batches, and Kafka's follower refuses only a batch that goes back, whatever the topic's
    /// config (the fetcher's `whole_batches` applies the same rule to what it fetched). A
    /// partial last batch is dropped; with no whole batch there is nothing to append (`done` is
    /// `None`).
    ///
    /// The epoch cache and its checkpoint learn each new epoch at its first offset (Kafka's
    /// `LeaderEpochFileCache.assign`). Producer state is updated from the batches, so a producer
    /// is recognised when this replica leads, but no sequence check refuses them: the leader
    /// checked. Nor is `max.message.bytes`: a batch the leader took must replicate.
    ///
    /// `done` resolves after the fdatasync that covers the batches: a follower reports as its
    /// fetch offset only what is durable, so the leader never counts an acknowledged write on a
    /// replica that a crash could lose. The batches skip the append journal (no consumer reads
    /// a follower past its high watermark, which only the fetcher moves).
    ///
    /// The high watermark does not move: a follower's log is replicated, so this turns off
    /// `hw_follows_visible_end` as [`PartitionLog::set_replicated`] would, and the fetcher sets
    /// it from the leader's answer with [`PartitionLog::set_high_watermark`].
    pub fn append_as_follower(&self, records: &Bytes) -> Result<AppendOutcome, StorageError> {
        let config = self.config.borrow().clone();
        let batches = whole_batches(records)?;
        let headers = batches.iter().map(|b| batch::validate(b)).collect::<Result<Vec<_>, _>>()?;
        let mut st = self.state.borrow_mut();
        if st.failed {
            return Err(StorageError::Closed);
        }
        let base_offset = st.log_end;
        let mut expected = base_offset;
        for h in &headers {
            // A cleaned leader's log has holes: a batch may start past where the last ended,
            // never before (Kafka allows the gap).
            if h.base_offset < expected {
                return Err(StorageError::OffsetMismatch { expected, got: h.base_offset });
            }
            expected = h.last_offset() + 1;
        }
        if headers.is_empty() {
            return Ok(AppendOutcome { base_offset, log_append_time: -1, done: None });
        }
        st.hw_follows_visible_end = false;
        let mut epochs_changed = false;
        for h in &headers {
            if st.epochs.assign_from_batch(h.leader_epoch, h.base_offset) {
                tracing::info!(partition = %self.tp, leader_epoch = h.leader_epoch, start_offset = h.base_offset,
                    "follower learned a leader epoch");
                epochs_changed = true;
            }
        }
        if epochs_changed {
            st.epochs.write(&self.dir)?;
        }
        let stored = batches.iter().map(StampedBatch::as_stored).zip(headers).collect();
        let done = self.enqueue(st, stored, &config, None, -1);
        Ok(AppendOutcome { base_offset, log_append_time: -1, done })
    }

    /// KIP-101: removes every batch at and above `offset`, so a follower's log ends where its
    /// leader's agrees. `offset` comes from OffsetForLeaderEpoch and is a batch boundary; one
    /// inside a batch cuts that whole batch (the log then ends at its base offset, below
    /// `offset`: the fetcher reads the new end from [`PartitionLog::offsets`] and fetches the
    /// batch again whole). Kafka would set its log end to `offset` exactly and leave a gap.
    ///
    /// Pending writes are written first, and no write runs until the cut is made: the active
    /// segment's file is cut (later segments deleted), with its index entries; the epoch cache
    /// (and checkpoint) loses the epochs that start at or after the cut; the batch cache and the
    /// append journal lose the cut batches (so a replay after a crash cannot bring them back);
    /// producer state forgets them, reading older batches back from the segments for a producer
    /// that had none left. The log end, the visible end and (when above) the high watermark
    /// become the cut, and the file is fdatasync'd. An append that raced in during the cut is
    /// answered [`StorageError::Closed`]. At or past the log end nothing changes.
    ///
    /// Below the log start offset, the whole log goes and it starts again at `offset` (Kafka's
    /// `truncateFullyAndStartAt`).
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let _no_writes = self.quiesce().await?;
        let (log_start, log_end, failed) = {
            let st = self.state.borrow();
            (st.log_start_offset, st.log_end, st.failed)
        };
        if failed {
            return Err(StorageError::Closed);
        }
        if offset >= log_end {
            return Ok(());
        }
        if offset < log_start {
            return self.truncate_fully_at(offset).await;
        }
        let (seg_base, cut, pos) = self.find_batch_boundary(offset).await?;
        if cut < log_start {
            // The log start lies inside the cut batch (DeleteRecords): nothing of it may stay.
            return self.truncate_fully_at(cut).await;
        }
        let result = self.cut_at(seg_base, cut, pos).await;
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// Kafka's `truncateFullyAndStartAt`: the whole log goes and it starts again, empty, at
    /// `offset` (a follower that fell behind the leader's log start starts over there).
    pub async fn reset_to(&self, offset: i64) -> Result<(), StorageError> {
        let _no_writes = self.quiesce().await?;
        let result = self.truncate_fully_at(offset).await;
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// Writes every pending batch and holds the flush lock, so no write runs until the permit
    /// is dropped.
    async fn quiesce(&self) -> Result<glommio::sync::Permit<'_>, StorageError> {
        let Ok(permit) = self.flush_lock.acquire_permit(1).await else { return Err(StorageError::Closed) };
        while !self.state.borrow().pending.is_empty() {
            self.flush_locked().await;
        }
        Ok(permit)
    }

    /// The batch holding `offset`, as (its segment's base, its base offset, its position), read
    /// from the batch headers after the segment's last index entry at or before it.
    async fn find_batch_boundary(&self, offset: i64) -> Result<(i64, i64, u64), StorageError> {
        let (seg_base, file, mut pos, size) = {
            let st = self.state.borrow();
            let (&base, seg) = st.segments.range(..=offset).next_back().ok_or(StorageError::Closed)?;
            (base, Rc::clone(&seg.file), seg.lookup(offset).0, seg.size)
        };
        while pos + HEADER_LEN as u64 <= size {
            let head = file.read_at(pos, HEADER_LEN).await?;
            let h = BatchHeader::parse(&head).ok_or_else(|| StorageError::CorruptBatch(format!("no batch header at {pos}")))?;
            if h.last_offset() >= offset {
                return Ok((seg_base, h.base_offset, pos));
            }
            pos += h.total_len() as u64;
        }
        // Past the segment's last batch (its successor starts later): cut at its end.
        let st = self.state.borrow();
        let seg = st.segments.get(&seg_base).ok_or(StorageError::Closed)?;
        Ok((seg_base, seg.last_offset + 1, seg.size))
    }

    /// Cuts the log at `cut`, at position `pos` of the segment at `seg_base`; the caller holds
    /// `flush_lock` and has written every pending batch.
    async fn cut_at(&self, seg_base: i64, cut: i64, pos: u64) -> Result<(), StorageError> {
        let (removed, file, path, emptied, epochs_changed, replay) = {
            let mut st = self.state.borrow_mut();
            let removed: Vec<Segment> = st.segments.split_off(&(seg_base + 1)).into_values().collect();
            let seg = st.segments.get_mut(&seg_base).ok_or(StorageError::Closed)?;
            seg.cut_at(cut, pos);
            let (file, path, created) = (Rc::clone(&seg.file), seg.log_path.clone(), seg.created_ms);
            st.log_end = cut;
            st.written_end = cut;
            st.unjournaled_end = st.unjournaled_end.min(cut);
            st.visible_end = st.visible_end.min(cut);
            st.high_watermark = st.high_watermark.min(cut);
            st.projected_size = pos;
            st.projected_created_ms = created;
            // Appends that raced in while the batches were located: their offsets are gone.
            st.pending.clear();
            st.pending_since = None;
            reply_all(std::mem::take(&mut st.waiters), &Err(StorageError::Closed));
            let epochs_changed = st.epochs.truncate_from_end(cut);
            let replay = st.producers.cut_needs_replay(cut);
            let emptied = st.producers.truncate_from(cut);
            let keep = st.aborted.partition_point(|a| a.last_offset < cut);
            st.aborted.truncate(keep);
            (removed, file, path, emptied, epochs_changed, replay)
        };
        self.cache.drop_from(self.uid, cut);
        if let Some((j, p)) = &self.journal {
            j.forget_from(p, cut);
        }
        let removed_segments = removed.len();
        for seg in removed {
            remove_segment_files(&seg);
        }
        file.truncate(pos).await?;
        let tail = segment::read_tail_page(&path, pos, PAGE)?;
        {
            let mut st = self.state.borrow_mut();
            st.tail = tail;
            if let Some(seg) = st.segments.get(&seg_base) {
                // Stale entries past the cut must not survive in the files of a closed segment.
                seg.write_index_files()?;
                super::txn::write_txn_index(seg, &st.aborted)?;
            }
            if epochs_changed {
                st.epochs.write(&self.dir)?;
            }
        }
        if replay {
            // A cut below the high watermark removed a marker whose transaction was forgotten.
            self.replay_producers()?;
        } else if !emptied.is_empty() {
            self.reload_producers(emptied)?;
        }
        file.fdatasync().await?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        tracing::info!(partition = %self.tp, truncated_to = cut, removed_segments, epoch = self.leader_epoch(), "log truncated");
        self.data_event.notify(usize::MAX);
        Ok(())
    }

    /// Reads back from the segments, newest first, the batches of the producers in `ids` (their
    /// state was all above a cut): each gets its batches from the newest segment that has any,
    /// and any older segment read for another producer. Blocking reads, as recovery's; a
    /// truncation is rare, and usually only the active segment is read.
    fn reload_producers(&self, ids: Vec<i64>) -> Result<(), StorageError> {
        let mut wanted: HashSet<i64> = ids.into_iter().collect();
        let paths: Vec<_> = self.state.borrow().segments.values().rev().map(|s| s.log_path.clone()).collect();
        let mut found: Vec<Vec<BatchHeader>> = Vec::new();
        for path in paths {
            if wanted.is_empty() {
                break;
            }
            let mut here = Vec::new();
            segment::scan_log(&path, 0, false, |h, _, _| {
                if wanted.contains(&h.producer_id) {
                    here.push(*h);
                }
            })?;
            for h in &here {
                wanted.remove(&h.producer_id);
            }
            found.push(here);
        }
        let mut st = self.state.borrow_mut();
        for h in found.iter().rev().flatten() {
            // Sequences only: the transactions' state was cut back above.
            st.producers.restore_batch(h);
        }
        Ok(())
    }

    /// Kafka's `truncateFullyAndStartAt`: every segment, epoch and producer goes, and the log
    /// starts (empty) at `offset`. The caller holds `flush_lock`.
    async fn truncate_fully_at(&self, offset: i64) -> Result<(), StorageError> {
        let removed: Vec<Segment> = {
            let mut st = self.state.borrow_mut();
            let removed = std::mem::take(&mut st.segments).into_values().collect();
            st.log_start_offset = offset;
            st.log_end = offset;
            st.written_end = offset;
            st.unjournaled_end = offset;
            st.visible_end = offset;
            st.high_watermark = offset;
            st.tail.clear();
            st.projected_size = 0;
            st.projected_created_ms = now_ms();
            st.pending.clear();
            st.pending_since = None;
            reply_all(std::mem::take(&mut st.waiters), &Err(StorageError::Closed));
            st.epochs.truncate_from_end(i64::MIN);
            st.producers = Default::default();
            st.aborted.clear();
            removed
        };
        self.cache.drop_partition(self.uid);
        if let Some((j, p)) = &self.journal {
            j.forget_from(p, i64::MIN);
        }
        let result: Result<(), StorageError> = async {
            for seg in &removed {
                remove_segment_files(seg);
            }
            std::fs::write(self.dir.join("log-start-offset"), offset.to_string())?;
            self.state.borrow().epochs.write(&self.dir)?;
            let log_path = self.dir.join(format!("{}.log", segment::file_stem(offset)));
            let file = Rc::new(super::open_dma(&log_path).await?);
            self.state.borrow_mut().segments.insert(offset, Segment::new(offset, file, log_path, now_ms()));
            std::fs::File::open(&self.dir)?.sync_all()?;
            Ok(())
        }
        .await;
        match &result {
            Ok(()) => tracing::info!(partition = %self.tp, log_start_offset = offset, "log truncated fully"),
            Err(e) => self.fail(e),
        }
        self.data_event.notify(usize::MAX);
        result
    }
}

/// Deletes a segment's `.log`, `.index`, `.timeindex` and `.txnindex` files (an open handle keeps reading).
fn remove_segment_files(seg: &Segment) {
    for ext in ["log", "index", "timeindex", "txnindex"] {
        let _ = std::fs::remove_file(seg.log_path.with_extension(ext));
    }
    tracing::info!(segment = %seg.log_path.display(), "deleted segment cut by truncation");
}
