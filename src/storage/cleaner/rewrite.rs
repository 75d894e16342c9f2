//! Rewriting one record batch for compaction: which records stay, and the batch that holds them.
//!
//! Kafka's rules (`LogCleaner`, `MemoryRecords.filterTo`), applied to a data batch:
//! - a keyed record stays when no later record of its key is in the offset map;
//! - a keyless record goes (a compacted topic cannot say which one is current);
//! - a tombstone (null value) that stays is kept until the batch's delete horizon (KIP-534): the
//!   first cleaning that keeps it stamps the horizon, now + `delete.retention.ms`, into the batch
//!   (attribute bit 0x40, the base timestamp holding the horizon); a cleaning after the horizon
//!   drops it;
//! - the batch keeps its base offset and last offset delta (so producers' sequences and the next
//!   offset read from it stay right) and its producer fields; an emptied batch that is the last of
//!   its producer is kept empty, so the producer's state survives;
//! - a batch of an aborted transaction loses all its records; a marker stays whole until the
//!   walk ([`super::txns`]) finds its transaction has no batch left, then gets a delete horizon
//!   like a tombstone's and goes after it (unless it holds its producer's epoch).
//!
//! Compressed batches are decompressed to read their keys and, when they change, written back
//! with the same codec.

use bytes::{BufMut, Bytes, BytesMut};

use super::offset_map::OffsetMap;
use crate::storage::StorageError;
use crate::storage::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD, put_varint, read_varint};
use crate::storage::compression::{self, Codec};
use super::txns::TxnVerdict;

/// Attribute bit: the base timestamp is the delete horizon (KIP-534).
pub const DELETE_HORIZON_BIT: i16 = 0x40;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;

/// One record of a batch, with the bytes after its offset delta kept as they are.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Record attributes (unused by Kafka, kept).
    pub attributes: u8,
    /// Absolute timestamp.
    pub timestamp: i64,
    /// Absolute offset.
    pub offset: i64,
    /// The key, or `None` for a null key.
    pub key: Option<Bytes>,
    /// Whether the value is null: a tombstone.
    pub tombstone: bool,
    /// Key, value and headers, as stored.
    pub rest: Bytes,
}

/// The delete horizon of a batch, when one is stamped.
pub fn delete_horizon(h: &BatchHeader) -> Option<i64> {
    (h.attributes & DELETE_HORIZON_BIT != 0).then_some(h.base_timestamp)
}

fn corrupt(what: &str, h: &BatchHeader) -> StorageError {
    StorageError::CorruptBatch(format!("{what} in the batch at offset {}", h.base_offset))
}

/// Reads a nullable varint-length byte string, returning it and advancing `buf`.
fn read_nullable<'a>(buf: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let len = read_varint(buf)?;
    if len < 0 {
        return Some(None);
    }
    let len = usize::try_from(len).ok()?;
    let (head, rest) = (buf.get(..len)?, buf.get(len..)?);
    *buf = rest;
    Some(Some(head))
}

/// The records of a whole batch (`batch` starts at its base offset field), decompressing when
/// the batch is compressed.
pub fn read_records(batch: &[u8]) -> Result<(BatchHeader, Vec<RawRecord>), StorageError> {
    let h = BatchHeader::parse(batch).ok_or_else(|| StorageError::CorruptBatch("short batch".into()))?;
    let body = batch.get(HEADER_LEN..h.total_len()).ok_or_else(|| corrupt("truncated records", &h))?;
    let codec = Codec::from_attributes(h.attributes).map_err(|e| StorageError::CorruptBatch(e.to_string()))?;
    let plain = compression::decompress(codec, body).map_err(|e| StorageError::CorruptBatch(e.to_string()))?;
    let mut buf: &[u8] = &plain;
    let mut out = Vec::with_capacity(h.records_count.max(0) as usize);
    for _ in 0..h.records_count {
        let len = read_varint(&mut buf).and_then(|l| usize::try_from(l).ok()).ok_or_else(|| corrupt("bad record length", &h))?;
        let rec = buf.get(..len).ok_or_else(|| corrupt("truncated record", &h))?;
        buf = &buf[len..];
        let parsed = (|| {
            let (&attributes, mut r) = rec.split_first()?;
            let ts_delta = read_varint(&mut r)?;
            let offset_delta = read_varint(&mut r)?;
            let rest_start = rec.len() - r.len();
            let key = read_nullable(&mut r)?.map(Bytes::copy_from_slice);
            let tombstone = read_nullable(&mut r)?.is_none();
            Some(RawRecord {
                attributes,
                timestamp: h.base_timestamp + ts_delta,
                offset: h.base_offset + offset_delta,
                key,
                tombstone,
                rest: Bytes::copy_from_slice(&rec[rest_start..]),
            })
        })();
        out.push(parsed.ok_or_else(|| corrupt("bad record", &h))?);
    }
    Ok((h, out))
}

/// How a cleaning pass judges records.
pub struct RetainRules<'a> {
    /// Latest offset of each key in the dirty section.
    pub map: &'a OffsetMap,
    /// Wall-clock time of the pass (ms).
    pub now: i64,
    /// `delete.retention.ms` of the topic.
    pub delete_retention_ms: i64,
}

/// What became of one batch.
#[derive(Debug)]
pub enum Rewritten {
    /// Written back unchanged.
    Same,
    /// Rewritten: the new batch bytes (possibly with no record: an empty batch that keeps its
    /// producer's state).
    Changed(Bytes),
    /// Removed from the log.
    Dropped,
}

/// What a rewrite saw in one batch.
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchOutcome {
    /// Records kept.
    pub kept: usize,
    /// Records removed.
    pub removed: usize,
    /// The delete horizon the kept batch carries, when it keeps tombstones.
    pub horizon: Option<i64>,
}

/// Applies the compaction rules to one whole batch, which the transaction walk judged `txn`.
/// `last_of_producer` says whether the batch holds its producer's state (then it survives,
/// empty if need be).
pub fn rewrite_batch(batch: &[u8], rules: &RetainRules<'_>, txn: TxnVerdict, last_of_producer: bool) -> Result<(Rewritten, BatchOutcome), StorageError> {
    let h = BatchHeader::parse(batch).ok_or_else(|| StorageError::CorruptBatch("short batch".into()))?;
    if h.is_control() {
        return rewrite_marker(batch, &h, rules, txn, last_of_producer);
    }
    let aborted = txn == TxnVerdict::Aborted;
    let (h, records) = read_records(batch)?;
    let horizon = delete_horizon(&h);
    let total = records.len();
    let kept: Vec<RawRecord> = records
        .into_iter()
        .filter(|r| {
            if aborted {
                return false;
            }
            let Some(key) = &r.key else { return false };
            if rules.map.get(key).is_some_and(|latest| r.offset < latest) {
                return false;
            }
            // A tombstone goes once its batch's horizon has passed.
            !(r.tombstone && horizon.is_some_and(|at| at <= rules.now))
        })
        .collect();
    let has_tombstones = kept.iter().any(|r| r.tombstone);
    let new_horizon = match horizon {
        Some(at) if has_tombstones => Some(at),
        _ if has_tombstones => Some(rules.now.saturating_add(rules.delete_retention_ms)),
        _ => None,
    };
    let outcome = BatchOutcome { kept: kept.len(), removed: total - kept.len(), horizon: new_horizon };
    if kept.len() == total && new_horizon == horizon {
        return Ok((Rewritten::Same, outcome));
    }
    if kept.is_empty() && !(last_of_producer && h.producer_id >= 0) {
        return Ok((Rewritten::Dropped, outcome));
    }
    Ok((Rewritten::Changed(build_batch(&h, &kept, new_horizon)?), outcome))
}

/// A marker stays whole while its transaction has batches in the log (a read_committed consumer
/// needs it to end them). With none left it gets a delete horizon, as a tombstone does, and
/// goes once that has passed, unless it holds its producer's epoch.
fn rewrite_marker(batch: &[u8], h: &BatchHeader, rules: &RetainRules<'_>, txn: TxnVerdict, last_of_producer: bool) -> Result<(Rewritten, BatchOutcome), StorageError> {
    let whole = BatchOutcome { kept: h.records_count.max(0) as usize, ..Default::default() };
    if txn != TxnVerdict::EmptyTxnMarker {
        return Ok((Rewritten::Same, whole));
    }
    match delete_horizon(h) {
        Some(at) if at <= rules.now && !last_of_producer => Ok((Rewritten::Dropped, BatchOutcome { kept: 0, removed: whole.kept, horizon: None })),
        // Kept for its producer: nothing more to wait for.
        Some(at) if at <= rules.now => Ok((Rewritten::Same, whole)),
        Some(at) => Ok((Rewritten::Same, BatchOutcome { horizon: Some(at), ..whole })),
        None => {
            let at = rules.now.saturating_add(rules.delete_retention_ms);
            let (h, records) = read_records(batch)?;
            Ok((Rewritten::Changed(build_batch(&h, &records, Some(at))?), BatchOutcome { horizon: Some(at), ..whole }))
        }
    }
}

/// A v2 batch with `h`'s offsets and producer fields holding `records`, compressed with `h`'s
/// codec; with `horizon`, the delete-horizon bit is set and the base timestamp is the horizon.
pub fn build_batch(h: &BatchHeader, records: &[RawRecord], horizon: Option<i64>) -> Result<Bytes, StorageError> {
    let log_append_time = h.attributes & TIMESTAMP_TYPE_BIT != 0;
    let first_ts = records.first().map_or(h.base_timestamp, |r| r.timestamp);
    let base_ts = match (horizon, delete_horizon(h)) {
        (Some(at), _) => at,
        // A horizon that no longer applies (its tombstones are gone): back to a real timestamp.
        (None, Some(_)) => first_ts,
        (None, None) => h.base_timestamp,
    };
    let mut body = BytesMut::new();
    let mut rec = BytesMut::new();
    for r in records {
        rec.clear();
        rec.put_u8(r.attributes);
        put_varint(&mut rec, r.timestamp - base_ts);
        put_varint(&mut rec, r.offset - h.base_offset);
        rec.put_slice(&r.rest);
        put_varint(&mut body, rec.len() as i64);
        body.put_slice(&rec);
    }
    let codec = if records.is_empty() { Codec::None } else { Codec::from_attributes(h.attributes).map_err(|e| StorageError::CorruptBatch(e.to_string()))? };
    let body = compression::compress(codec, &body).map_err(|e| StorageError::CorruptBatch(e.to_string()))?;
    let mut attributes = (h.attributes & !0x07 & !DELETE_HORIZON_BIT) | codec.id();
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    // LogAppendTime batches carry the append time as their max timestamp; CreateTime ones the
    // largest record timestamp kept (the original when none is kept).
    let max_ts = if log_append_time { h.max_timestamp } else { records.iter().map(|r| r.timestamp).max().unwrap_or(h.max_timestamp) };
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
    b.put_i64(h.base_offset);
    b.put_i32((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32);
    b.put_i32(h.leader_epoch);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(attributes);
    b.put_i32(h.last_offset_delta);
    b.put_i64(base_ts);
    b.put_i64(max_ts);
    b.put_i64(h.producer_id);
    b.put_i16(h.producer_epoch);
    b.put_i32(h.base_sequence);
    b.put_i32(records.len() as i32);
    b.put_slice(&body);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(b.freeze())
}

#[cfg(test)]
mod tests;
