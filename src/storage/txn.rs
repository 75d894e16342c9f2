//! Transactions in a partition's log: the control batches that end them (Kafka's
//! `EndTransactionMarker`) and the aborted transactions each segment lists in its `.txnindex`
//! (Kafka's `TransactionIndex` layout), which read_committed fetches hand to consumers.

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};

use super::StorageError;
use super::batch::{self, BatchHeader, HEADER_LEN};

/// Attribute bits of a marker batch: control | transactional, as Kafka writes them.
const MARKER_ATTRIBUTES: i16 = 0x20 | 0x10;
/// Control record type of an abort marker (a commit is 1).
const ABORT_TYPE: i16 = 0;
/// Control record type of a commit marker.
const COMMIT_TYPE: i16 = 1;
/// Bytes of one `.txnindex` entry: version i16, producer id i64, first, last and last stable offset i64.
pub const TXN_INDEX_ENTRY_LEN: usize = 34;

/// What a transaction marker's control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMarker {
    /// Commit (true) or abort (false).
    pub commit: bool,
    /// The coordinator epoch that wrote it.
    pub coordinator_epoch: i32,
}

impl ControlMarker {
    /// The marker in a control batch (whole, uncompressed), or `None` when the batch is not a
    /// transaction marker (another control record type, or malformed).
    pub fn parse(whole_batch: &[u8]) -> Option<ControlMarker> {
        let h = BatchHeader::parse(whole_batch)?;
        if !h.is_control() {
            return None;
        }
        let record = batch::records(whole_batch)?.into_iter().next()?;
        let key = record.key?;
        let kind = i16::from_be_bytes([*key.get(2)?, *key.get(3)?]);
        let commit = match kind {
            ABORT_TYPE => false,
            COMMIT_TYPE => true,
            _ => return None,
        };
        // Kafka reads the coordinator epoch after the value's version.
        let coordinator_epoch = record.value.as_deref().and_then(|v| v.get(2..6)).map_or(-1, |e| i32::from_be_bytes([e[0], e[1], e[2], e[3]]));
        Some(ControlMarker { commit, coordinator_epoch })
    }

    /// A marker batch as Kafka's coordinator has it written: one control record (key: version 0,
    /// type; value: version 0, coordinator epoch), attributes control|transactional, base
    /// sequence -1, at base offset 0 (the log stamps the offset).
    pub fn build(&self, producer_id: i64, producer_epoch: i16, timestamp: i64) -> Bytes {
        let mut key = BytesMut::with_capacity(4);
        key.put_i16(0);
        key.put_i16(if self.commit { COMMIT_TYPE } else { ABORT_TYPE });
        let mut value = BytesMut::with_capacity(6);
        value.put_i16(0);
        value.put_i32(self.coordinator_epoch);
        let plain = batch::build(&[(Some(&key[..]), Some(&value[..]))], timestamp, producer_id, -1);
        let mut b = BytesMut::from(&plain[..]);
        b[21..23].copy_from_slice(&MARKER_ATTRIBUTES.to_be_bytes());
        b[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        debug_assert!(b.len() > HEADER_LEN);
        b.freeze()
    }
}

/// One aborted transaction of a partition, as a `.txnindex` entry holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// The transaction's first offset in this partition.
    pub first_offset: i64,
    /// The offset of its abort marker.
    pub last_offset: i64,
    /// The last stable offset once the abort was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    fn decode(e: &[u8]) -> Option<AbortedTxn> {
        let long = |at: usize| e.get(at..at + 8).map(|b| i64::from_be_bytes(b.try_into().unwrap_or_default()));
        if i16::from_be_bytes([*e.first()?, *e.get(1)?]) != 0 {
            return None;
        }
        Some(AbortedTxn { producer_id: long(2)?, first_offset: long(10)?, last_offset: long(18)?, last_stable_offset: long(26)? })
    }
}

/// The `.txnindex` path of the segment whose `.log` is at `log_path`.
pub fn txn_index_path(log_path: &Path) -> std::path::PathBuf {
    log_path.with_extension("txnindex")
}

/// Writes the `.txnindex` of the segment at `log_path`: the entries of `aborted` (sorted by
/// marker offset) whose marker lies in `[base, last]`. Always written, empty too, so that a
/// missing file means a lost one, which start-up rebuilds from the log.
pub fn write_txn_index(log_path: &Path, aborted: &[AbortedTxn], base: i64, last: i64) -> Result<(), StorageError> {
    let from = aborted.partition_point(|a| a.last_offset < base);
    let to = aborted.partition_point(|a| a.last_offset <= last);
    let mut out = Vec::with_capacity((to.saturating_sub(from)) * TXN_INDEX_ENTRY_LEN);
    for a in &aborted[from..to.max(from)] {
        a.encode(&mut out);
    }
    std::fs::write(txn_index_path(log_path), out)?;
    Ok(())
}

/// Reads a segment's `.txnindex`: `None` when it is missing or not whole entries of version 0.
pub fn read_txn_index(log_path: &Path) -> Option<Vec<AbortedTxn>> {
    let data = std::fs::read(txn_index_path(log_path)).ok()?;
    if data.len() % TXN_INDEX_ENTRY_LEN != 0 {
        return None;
    }
    data.chunks(TXN_INDEX_ENTRY_LEN).map(AbortedTxn::decode).collect()
}

/// Aborted transactions as a read_committed fetch response lists them: (producer id, first offset).
pub type AbortedList = Vec<(i64, i64)>;

/// The aborted transactions a read_committed fetch from `from` must know of, as (producer id,
/// first offset): those whose marker is at or after `from` and that began before `upper` (the
/// end of what the fetch may return), as Kafka's `collectAbortedTransactions` picks them.
pub fn aborted_overlapping(aborted: &[AbortedTxn], from: i64, upper: i64) -> AbortedList {
    let start = aborted.partition_point(|a| a.last_offset < from);
    aborted[start..].iter().filter(|a| a.first_offset < upper).map(|a| (a.producer_id, a.first_offset)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_marker_parses_back_and_is_a_valid_control_batch() {
        let m = ControlMarker { commit: false, coordinator_epoch: 7 };
        let b = m.build(42, 3, 1000);
        let h = batch::validate(&b).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.records_count), (42, 3, -1, 1));
        assert_eq!(ControlMarker::parse(&b), Some(m));
        let c = ControlMarker { commit: true, coordinator_epoch: 0 };
        assert_eq!(ControlMarker::parse(&c.build(1, 0, 0)), Some(c));
        assert_eq!(ControlMarker::parse(&batch::testing::make_batch(&[b"x"], 0, 1, 0)), None, "a data batch is no marker");
    }

    #[test]
    fn txn_index_files_hold_their_segments_entries_in_kafkas_layout() {
        let dir = std::env::temp_dir().join(format!("ringlog-txnindex-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("00000000000000000010.log");
        let a = |pid, first, last| AbortedTxn { producer_id: pid, first_offset: first, last_offset: last, last_stable_offset: last + 1 };
        let all = [a(1, 2, 5), a(2, 8, 12), a(3, 11, 15), a(4, 16, 30)];
        write_txn_index(&log, &all, 10, 20).unwrap();
        let bytes = std::fs::read(txn_index_path(&log)).unwrap();
        assert_eq!(bytes.len(), 2 * TXN_INDEX_ENTRY_LEN);
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &2i64.to_be_bytes());
        assert_eq!(read_txn_index(&log).unwrap(), vec![all[1], all[2]]);
        std::fs::write(txn_index_path(&log), &bytes[..40]).unwrap();
        assert!(read_txn_index(&log).is_none(), "a torn file is not trusted");
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(aborted_overlapping(&all, 12, 16), vec![(2, 8), (3, 11)]);
        assert_eq!(aborted_overlapping(&all, 13, 100), vec![(3, 11), (4, 16)]);
        assert_eq!(aborted_overlapping(&all, 0, 3), vec![(1, 2)]);
    }
}

/// Test helpers that build transactional batches.
#[cfg(test)]
pub mod testing {
    use bytes::{Bytes, BytesMut};

    /// An uncompressed transactional batch of `values` from `producer_id` at `epoch`, starting
    /// at sequence `seq`.
    pub fn txn_batch(values: &[&[u8]], producer_id: i64, epoch: i16, seq: i32) -> Bytes {
        let records: Vec<crate::storage::batch::RecordRef<'_>> = values.iter().map(|v| (None, Some(*v))).collect();
        txn_records(&records, producer_id, epoch, seq)
    }

    /// [`txn_batch`] of keyed (or keyless) records.
    pub fn txn_records(records: &[crate::storage::batch::RecordRef<'_>], producer_id: i64, epoch: i16, seq: i32) -> Bytes {
        let plain = crate::storage::batch::build(records, crate::types::now_ms(), producer_id, seq);
        let mut b = BytesMut::from(&plain[..]);
        let attrs = i16::from_be_bytes([b[21], b[22]]) | 0x10;
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    }
}
