//! An in-memory [`FollowerLog`]: whole batches in a `Vec`, the epoch cache built from the
//! batches' leader epochs as a follower's log builds it. The fetcher's tests use it, in the crate
//! and against a real broker (`tests/replica_fetcher.rs`).

use std::cell::{Cell, RefCell};

use bytes::Bytes;
use futures::future::LocalBoxFuture;

use super::FollowerLog;
use crate::storage::StorageError;
use crate::storage::batch::{BatchHeader, split_batches};

/// A follower log held in memory.
#[derive(Default)]
pub struct MemoryLog {
    log_start: Cell<i64>,
    batches: RefCell<Vec<(BatchHeader, Bytes)>>,
    /// (epoch, start offset), ascending in both.
    epochs: RefCell<Vec<(i32, i64)>>,
    high_watermark: Cell<i64>,
    /// Offsets each truncation or reset cut to, in order (tests check what the fetcher did).
    truncations: RefCell<Vec<i64>>,
}

impl MemoryLog {
    /// An empty log starting at offset 0.
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// A log that already holds `records` (whole batches), as if fetched earlier.
    pub fn with_batches(records: &[Bytes]) -> Result<MemoryLog, StorageError> {
        let log = MemoryLog::new();
        for r in records {
            log.append(r)?;
        }
        Ok(log)
    }

    /// The batches held, in order.
    pub fn batches(&self) -> Vec<Bytes> {
        self.batches.borrow().iter().map(|(_, b)| b.clone()).collect()
    }

    /// The (base offset, last offset) of each batch held.
    pub fn batch_offsets(&self) -> Vec<(i64, i64)> {
        self.batches.borrow().iter().map(|(h, _)| (h.base_offset, h.last_offset())).collect()
    }

    /// The epoch cache: (epoch, start offset).
    pub fn epochs(&self) -> Vec<(i32, i64)> {
        self.epochs.borrow().clone()
    }

    /// The offsets of every truncation and reset so far.
    pub fn truncations(&self) -> Vec<i64> {
        self.truncations.borrow().clone()
    }

    fn append(&self, records: &Bytes) -> Result<(), StorageError> {
        for batch in split_batches(records)? {
            let header = crate::storage::batch::validate(&batch)?;
            let end = self.log_end();
            if header.base_offset != end {
                return Err(StorageError::OffsetOutOfRange { offset: header.base_offset, start: self.log_start.get(), end });
            }
            let mut epochs = self.epochs.borrow_mut();
            if epochs.last().is_none_or(|&(e, _)| header.leader_epoch > e) {
                epochs.push((header.leader_epoch, header.base_offset));
            }
            self.batches.borrow_mut().push((header, batch));
        }
        Ok(())
    }

    fn cut(&self, offset: i64) {
        // As Kafka's segments do, the batch holding `offset` goes too.
        self.batches.borrow_mut().retain(|(h, _)| h.last_offset() < offset);
        self.epochs.borrow_mut().retain(|&(_, start)| start < offset);
        self.high_watermark.set(self.high_watermark.get().min(offset));
        self.truncations.borrow_mut().push(offset);
    }
}

impl FollowerLog for MemoryLog {
    fn log_end(&self) -> i64 {
        self.batches.borrow().last().map_or(self.log_start.get(), |(h, _)| h.last_offset() + 1)
    }

    fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    fn latest_epoch(&self) -> i32 {
        self.epochs.borrow().last().map_or(-1, |&(e, _)| e)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let epochs = self.epochs.borrow();
        let &(latest, _) = epochs.last()?;
        if epoch == latest {
            return Some((latest, self.log_end()));
        }
        let next = epochs.iter().position(|&(e, _)| e > epoch)?;
        let end = epochs[next].1;
        Some(match next.checked_sub(1) {
            Some(floor) => (epochs[floor].0, end),
            None => (epoch, end),
        })
    }

    fn set_high_watermark(&self, hw: i64) {
        self.high_watermark.set(hw.min(self.log_end()));
    }

    fn append_fetched(&self, records: &Bytes) -> LocalBoxFuture<'_, Result<(), StorageError>> {
        let result = self.append(records);
        Box::pin(async move { result })
    }

    fn truncate_to(&self, offset: i64) -> LocalBoxFuture<'_, Result<(), StorageError>> {
        self.cut(offset);
        Box::pin(async { Ok(()) })
    }

    fn reset_to(&self, offset: i64) -> LocalBoxFuture<'_, Result<(), StorageError>> {
        self.cut(i64::MIN);
        self.truncations.borrow_mut().pop();
        self.truncations.borrow_mut().push(offset);
        self.log_start.set(offset);
        self.high_watermark.set(offset);
        Box::pin(async { Ok(()) })
    }
}
