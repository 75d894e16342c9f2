//! Reads: locating a fetch, reading batches back, time and leader-epoch lookups.

use std::rc::Rc;

use bytes::Bytes;

use super::{PartitionLog, ReadOutcome};
use crate::storage::StorageError;
use crate::storage::batch::{self, BatchHeader, HEADER_LEN, StampedBatch};
use crate::storage::reader::{self, DiskRange, Located};

impl PartitionLog {
    /// Finds the batches starting with the one that holds `offset`, up to `max_bytes` (at least
    /// one batch), never past the high watermark: in the batch cache, or as a [`DiskRange`] for
    /// the connection's shard to read without copying.
    pub fn locate(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome<Located>, StorageError> {
        self.locate_below(offset, max_bytes, |st| st.high_watermark)
    }

    /// [`PartitionLog::locate`] for a follower replica's fetch: up to the locally visible end,
    /// past the high watermark (the follower's copy is what moves the high watermark on).
    pub fn locate_for_replica(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome<Located>, StorageError> {
        self.locate_below(offset, max_bytes, |st| st.visible_end)
    }

    pub(super) fn locate_below(&self, offset: i64, max_bytes: usize, end: fn(&super::LogState) -> i64) -> Result<ReadOutcome<Located>, StorageError> {
        let st = self.state.borrow();
        let (hw, start, end) = (st.high_watermark, st.log_start_offset, end(&st));
        // Out of range only past the log end, as in Kafka: between the high watermark and the
        // log end a fetch finds nothing yet (a new leader's high watermark may trail what its
        // consumers read from the old one; they must wait, not reset their position).
        if offset < start || offset > st.log_end {
            return Err(StorageError::OffsetOutOfRange { offset, start, end: st.log_end });
        }
        let lso = st.producers.last_stable_offset(hw);
        let outcome = |records| ReadOutcome { records, high_watermark: hw, log_start_offset: start, last_stable_offset: lso };
        if offset >= end {
            self.tailed_at.set(Some(std::time::Instant::now()));
            return Ok(outcome(Located::default()));
        }
        if let Some(records) = self.cache.read(self.uid, offset, max_bytes, end) {
            return Ok(outcome(Located::Cached(records)));
        }
        // The segment holding `offset`, or the next one with a batch when it lies past a
        // segment's end (or in a hole the cleaner left: a cleaned segment may be empty).
        let holding = st.segments.range(..=offset).next_back().map(|(_, s)| s).filter(|s| s.last_offset >= offset);
        let next_with_batches = || st.segments.range(offset + 1..).map(|(_, s)| s).find(|s| s.size > 0);
        let Some(seg) = holding.or_else(next_with_batches) else {
            return Ok(outcome(Located::default()));
        };
        let position = seg.lookup(offset).0;
        let mut range = DiskRange {
            segment_id: seg.id,
            path: seg.log_path.clone(),
            inode: seg.inode,
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
        Ok(ReadOutcome { records, last_stable_offset: found.last_stable_offset, high_watermark: found.high_watermark, log_start_offset: found.log_start_offset })
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

    /// OffsetForLeaderEpoch: (the largest epoch at or below `epoch`, where the next epoch
    /// starts); for the current epoch the log end offset, as Kafka's leader answers (a follower
    /// truncates to it; a consumer's position is never past it); `None` past the current epoch.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let st = self.state.borrow();
        st.epochs.end_offset_for(epoch, st.log_end)
    }
}
