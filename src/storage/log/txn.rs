//! Transactions in a partition log: markers appended as control batches, the last stable
//! offset, read_committed reads and the aborted transactions they return, and each segment's
//! `.txnindex`.

use super::{AppendOutcome, LogState, PartitionLog, ReadOutcome};
use crate::storage::StorageError;
use crate::storage::batch::{self, BatchHeader, StampedBatch};
use crate::storage::producers::{ActiveProducer, TxnVerification};
use crate::storage::reader::Located;
use crate::storage::segment::Segment;
use crate::storage::txn::{self, AbortedTxn, ControlMarker};
use crate::types::{TxnMarker, now_ms};

/// Records a batch that now has its offsets in the producer and transaction state: a data
/// batch's sequences (and the transaction it opens), or a marker's end of a transaction, with
/// the aborted-transaction entry an abort makes. The one path for leader appends, follower
/// appends and recovery.
pub(super) fn record_batch(st: &mut LogState, stamped: &StampedBatch, h: &BatchHeader) {
    if !h.is_control() {
        st.producers.record(h);
        return;
    }
    // Rare (one per transaction and partition): parse the control record from a copy.
    if let Some(marker) = ControlMarker::parse(&stamped.to_bytes()) {
        record_marker(&mut st.producers, &mut st.aborted, h, marker);
    }
}

/// A marker's effect on `producers` and the aborted list (also recovery's, which has no `LogState`).
pub(super) fn record_marker(
    producers: &mut crate::storage::producers::ProducerStates,
    aborted: &mut Vec<AbortedTxn>,
    h: &BatchHeader,
    marker: ControlMarker,
) {
    if let Some(entry) = producers.record_marker(h, marker) {
        aborted.push(entry);
    }
}

/// Writes `seg`'s `.txnindex` from the partition's aborted transactions.
pub(super) fn write_txn_index(seg: &Segment, aborted: &[AbortedTxn]) -> Result<(), StorageError> {
    txn::write_txn_index(&seg.log_path, aborted, seg.base_offset, seg.last_offset)
}

impl PartitionLog {
    /// Appends a transaction marker as a control batch (Kafka's `EndTransactionMarker`) through
    /// the append path, waiting for its fdatasync (acks=all; the caller waits for the ISR). A
    /// marker of an older producer epoch is refused (INVALID_PRODUCER_EPOCH), and one from an
    /// older coordinator (TRANSACTION_COORDINATOR_FENCED).
    pub fn append_marker(&self, m: &TxnMarker) -> Result<AppendOutcome, StorageError> {
        let config = self.config.borrow().clone();
        let st = self.state.borrow_mut();
        if st.failed {
            return Err(StorageError::Closed);
        }
        st.producers.check_marker(m.producer_id, m.producer_epoch, m.coordinator_epoch)?;
        let control = ControlMarker { commit: m.commit, coordinator_epoch: m.coordinator_epoch };
        let raw = control.build(m.producer_id, m.producer_epoch, now_ms());
        let mut h = batch::validate(&raw)?;
        h.base_offset = st.log_end;
        let append_time = config.log_append_time.then(now_ms);
        let stamped = batch::stamp(&raw, h.base_offset, st.epochs.latest(), append_time);
        let base_offset = h.base_offset;
        tracing::info!(partition = %self.tp, producer_id = m.producer_id, producer_epoch = m.producer_epoch,
            commit = m.commit, offset = base_offset, "transaction marker appended");
        let done = self.enqueue(st, vec![(stamped, h)], &config, None, -1);
        Ok(AppendOutcome { base_offset, log_append_time: append_time.unwrap_or(-1), done })
    }

    /// The last stable offset: read_committed consumers read below it.
    pub fn last_stable_offset(&self) -> i64 {
        let st = self.state.borrow();
        st.producers.last_stable_offset(st.high_watermark)
    }

    /// [`PartitionLog::locate`] for a read_committed fetch: up to the last stable offset, with
    /// the aborted transactions (producer id, first offset) that overlap what may be returned.
    /// The read stays zero-copy: only its upper bound differs.
    pub fn locate_committed(&self, offset: i64, max_bytes: usize) -> Result<(ReadOutcome<Located>, txn::AbortedList), StorageError> {
        let found = self.locate_below(offset, max_bytes, |st| st.producers.last_stable_offset(st.high_watermark))?;
        let st = self.state.borrow();
        // The end of what the read can return, as Kafka's `fetchUpperBoundOffset`: after the
        // cached batches, or where the next segment starts (a disk read stays in one segment).
        // Every transaction that began below it may have batches in the read: a superset of
        // what the bytes returned hold, which consumers match by producer id and offset.
        let data_end = match &found.records {
            // Nothing found: nothing to filter.
            Located::Cached(batches) => Some(batches.last().and_then(|b| BatchHeader::parse(b.header())).map_or(offset, |h| h.last_offset() + 1)),
            Located::OnDisk(range) => st
                .segments
                .values()
                .skip_while(|s| s.id != range.segment_id)
                .nth(1)
                .map(|next| next.base_offset),
        };
        let upper = data_end.map_or(found.last_stable_offset, |end| end.min(found.last_stable_offset));
        let aborted = txn::aborted_overlapping(&st.aborted, offset, upper);
        drop(st);
        Ok((found, aborted))
    }

    /// KIP-890: whether the transactional batches of `records` (one produce part) may be
    /// appended now ([`crate::storage::producers::ProducerStates::verify`]). A part with no
    /// transactional batch is always appended.
    pub fn verify_txn(&self, records: &bytes::Bytes, guard: Option<u64>) -> Result<TxnVerification, StorageError> {
        let Some(h) = BatchHeader::parse(records).filter(|h| h.is_transactional() && !h.is_control() && h.producer_id >= 0) else {
            return Ok(TxnVerification::Append);
        };
        self.state.borrow_mut().producers.verify(&h, guard)
    }

    /// The producers with state in this partition (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        self.state.borrow().producers.active()
    }

    /// Every aborted transaction this log knows, by marker offset (tests and recovery checks).
    pub fn aborted_txns(&self) -> Vec<AbortedTxn> {
        self.state.borrow().aborted.clone()
    }
}

impl PartitionLog {
    /// Rebuilds the producer and transaction state by reading every segment (blocking reads, as
    /// recovery's): after a cut that no cheaper repair covers.
    pub(super) fn replay_producers(&self) -> Result<(), StorageError> {
        let paths: Vec<_> = self.state.borrow().segments.values().map(|s| s.log_path.clone()).collect();
        let mut producers = crate::storage::producers::ProducerStates::default();
        let mut aborted = Vec::new();
        for path in paths {
            crate::storage::segment::scan_log(&path, 0, false, |h, _, marker| match marker {
                Some(marker) => record_marker(&mut producers, &mut aborted, h, marker),
                None if !h.is_control() => producers.record(h),
                None => {}
            })?;
        }
        let mut st = self.state.borrow_mut();
        producers.prune_decided(st.high_watermark);
        st.producers = producers;
        st.aborted = aborted;
        tracing::info!(partition = %self.tp, aborted = st.aborted.len(), "producer state replayed after a truncation");
        Ok(())
    }
}
