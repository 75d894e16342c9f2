//! Start-up recovery of a partition's segments, and the small files beside them.

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use super::{PAGE, PRODUCER_SNAPSHOT, open_dma};
use crate::storage::StorageError;
use crate::storage::producers::ProducerStates;
use crate::storage::segment::{self, Segment};
use crate::storage::txn::{AbortedTxn, read_txn_index};
use crate::types::{TopicPartition, now_ms};

/// What start-up recovered from a partition's segment files.
pub(super) struct Recovered {
    pub(super) segments: BTreeMap<i64, Segment>,
    pub(super) producers: ProducerStates,
    /// The aborted transactions, by marker offset (the segments' `.txnindex` entries).
    pub(super) aborted: Vec<AbortedTxn>,
    /// The active segment's last partial page.
    pub(super) tail: Vec<u8>,
    /// Bytes of `.log` files read to recover.
    pub(super) bytes_read: u64,
}

impl Recovered {
    /// The recovered log end offset.
    pub(super) fn end_offset(&self) -> i64 {
        self.segments.values().next_back().map_or(0, |s| s.last_offset + 1)
    }
}

/// Recovers the segments at `bases` ([`recover_segments`]). After a clean close, the index
/// files and the producer snapshot stand in for reading the segments; a snapshot that does not
/// match the recovered log end is not trusted, nor is one where a segment's `.txnindex` is
/// missing or torn: then every segment is replayed, which rebuilds them.
pub(super) async fn recover(
    tp: &TopicPartition,
    dir: &Path,
    bases: &[i64],
    was_clean: bool,
    interval: u64,
) -> Result<Recovered, StorageError> {
    let mut snapshot = if was_clean { ProducerStates::read_snapshot(&dir.join(PRODUCER_SNAPSHOT)) } else { None };
    let log_path = |base: i64| dir.join(format!("{}.log", segment::file_stem(base)));
    if snapshot.is_some() && bases.iter().any(|&b| log_path(b).exists() && read_txn_index(&log_path(b)).is_none()) {
        tracing::warn!(partition = %tp, "a segment's transaction index is missing or torn; replaying every segment");
        snapshot = None;
    }
    let mut recovered = recover_segments(tp, dir, bases, was_clean, snapshot.is_some(), interval).await?;
    match snapshot {
        Some((states, end)) if end == recovered.end_offset() => recovered.producers = states,
        Some((_, end)) => {
            tracing::warn!(partition = %tp, snapshot_end_offset = end, log_end_offset = recovered.end_offset(),
                "producer snapshot does not match the log; scanning every segment");
            recovered = recover_segments(tp, dir, bases, was_clean, false, interval).await?;
        }
        None => {}
    }
    Ok(recovered)
}

/// Opens the segments at `bases` and recovers their indexes, sizes and producer state. With
/// `use_index_files` (after a clean close, with a producer snapshot to stand in for the producer
/// state), each segment's index files are loaded and only the batches after the last index entry
/// are read; otherwise every batch header is read, and the last segment's CRCs are checked unless
/// the close was clean. A torn or corrupt tail of the last segment is cut off.
pub(super) async fn recover_segments(
    tp: &TopicPartition,
    dir: &Path,
    bases: &[i64],
    was_clean: bool,
    use_index_files: bool,
    interval: u64,
) -> Result<Recovered, StorageError> {
    let mut segments = BTreeMap::new();
    let mut producers = ProducerStates::default();
    let mut aborted = Vec::new();
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
        let scan = segment::scan_log(&log_path, from.unwrap_or(0), is_last && !was_clean, |h, pos, marker| {
            seg.track_batch(h, pos, interval);
            if use_index_files {
                return;
            }
            match marker {
                Some(marker) => super::txn::record_marker(&mut producers, &mut aborted, h, marker),
                None if !h.is_control() => producers.record(h),
                None => {}
            }
        })?;
        if use_index_files {
            aborted.extend(read_txn_index(&log_path).unwrap_or_default());
        }
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
            super::txn::write_txn_index(&seg, &aborted)?;
        }
        segments.insert(base, seg);
    }
    Ok(Recovered { segments, producers, aborted, tail, bytes_read })
}

pub(super) fn read_number(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
