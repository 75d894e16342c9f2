//! Produce-side record checks, as Kafka's `LogValidator` makes them (KIP-467 per-record errors):
//! a compacted topic refuses records without a key (INVALID_RECORD), and a `CreateTime` topic
//! refuses timestamps outside `[now - message.timestamp.before.max.ms, now +
//! message.timestamp.after.max.ms]` (INVALID_TIMESTAMP). One bad record refuses its whole request
//! for the partition, and the error names every bad record's index in its batch.
//!
//! The produce path is hot, so records are walked only when they must be: keys only on compacted
//! topics, timestamps only when the batch header (first and max timestamp) does not show the
//! batch inside the window. A compressed batch that must be walked is decompressed first.

use super::StorageError;
use super::batch::{BatchHeader, HEADER_LEN, read_varint};

/// A record's timestamp when the producer set none (Kafka's `RecordBatch.NO_TIMESTAMP`).
const NO_TIMESTAMP: i64 = -1;

/// One refused record (Kafka's `ProduceResponse.RecordError`): its index in its batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record's index within its batch (`batch_index` on the wire).
    pub batch_index: i32,
    /// Why it was refused (`batch_index_error_message`).
    pub message: String,
}

impl std::fmt::Display for RecordError {
    /// Java's `RecordError.toString`, which Kafka puts in INVALID_RECORD's error message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordError(batchIndex={}, message='{}')", self.batch_index, self.message)
    }
}

/// The topic configs the record checks follow, from the partition's effective config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRules {
    /// `cleanup.policy` contains `compact`: every record needs a key.
    pub compacted: bool,
    /// `message.timestamp.type=CreateTime`: the producer's timestamps are checked.
    pub create_time: bool,
    /// `message.timestamp.before.max.ms`.
    pub before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub after_max_ms: i64,
}

/// What one record's walk needs: its offset and timestamp deltas, and whether it has a key.
struct RecordFacts {
    offset_delta: i64,
    timestamp_delta: i64,
    has_key: bool,
}

/// Reads the fields the checks need from each record of an uncompressed batch, skipping values
/// and headers; `None` when a record is malformed.
fn walk(section: &[u8], count: i32) -> Option<Vec<RecordFacts>> {
    let mut buf = section;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let len = usize::try_from(read_varint(&mut buf)?).ok()?;
        let mut rec = buf.get(..len)?;
        buf = &buf[len..];
        rec = rec.get(1..)?; // attributes
        let timestamp_delta = read_varint(&mut rec)?;
        let offset_delta = read_varint(&mut rec)?;
        let has_key = read_varint(&mut rec)? >= 0;
        out.push(RecordFacts { offset_delta, timestamp_delta, has_key });
    }
    Some(out)
}

/// Checks one batch of a produce request for `partition` (named in messages, formatted only then) against
/// `rules` at time `now` (ms). `Ok` costs two comparisons for a batch inside the window of a
/// topic that is not compacted.
pub fn check_records(batch: &[u8], header: &BatchHeader, rules: &RecordRules, now: i64, partition: &impl std::fmt::Display) -> Result<(), StorageError> {
    let lower = now.saturating_sub(rules.before_max_ms);
    let upper = now.saturating_add(rules.after_max_ms);
    // Kafka's default before.max.ms is Long.MAX_VALUE: no lower bound worth a walk.
    let lower_bounded = rules.before_max_ms != i64::MAX;
    let check_time = rules.create_time && !header.is_control();
    let time_suspect = check_time && (header.max_timestamp > upper || lower_bounded);
    let check_keys = rules.compacted && !header.is_control();
    if !time_suspect && !check_keys {
        return Ok(());
    }
    let out_of_window = |ts: i64| ts != NO_TIMESTAMP && (ts < lower || ts > upper);
    let time_message = |ts: i64, offset: i64| {
        format!("Timestamp {ts} of message with offset {offset} is out of range. The timestamp should be within [{lower}, {upper}]")
    };
    let mut errors = Vec::new();
    let mut timestamp_errors = false;
    // A compressed batch is read decompressed: each record is judged, as Kafka does.
    let plain;
    let section: &[u8] = if header.compression() != 0 {
        plain = crate::storage::batch::plain_records(batch)?;
        &plain
    } else {
        batch.get(HEADER_LEN..).unwrap_or_default()
    };
    let records = walk(section, header.records_count)
        .ok_or_else(|| StorageError::CorruptBatch(format!("a record of the batch in {partition} is malformed")))?;
    for (index, record) in records.iter().enumerate() {
        let batch_index = index as i32;
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        // One error per record, the key's first (Kafka's validateRecord).
        if check_keys && !record.has_key {
            let message = format!("Compacted topic cannot accept message without key in topic partition {partition}");
            errors.push(RecordError { batch_index, message });
        } else if check_time && out_of_window(timestamp) {
            timestamp_errors = true;
            errors.push(RecordError { batch_index, message: time_message(timestamp, header.base_offset + record.offset_delta) });
        }
    }
    if timestamp_errors {
        Err(StorageError::InvalidTimestamps(errors))
    } else if !errors.is_empty() {
        Err(StorageError::InvalidRecords(errors))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};

    use super::*;
    use crate::storage::batch::{self, put_varint};
    use crate::storage::compression::Codec;


    /// An uncompressed batch of (key, timestamp) records with a one-byte value each, its
    /// header's max timestamp the records' max, as a producer builds it.
    fn build_batch_with(records: &[(Option<&[u8]>, i64)], base_offset: i64) -> Bytes {
        let base_ts = records[0].1;
        let mut body = BytesMut::new();
        for (i, (key, ts)) in records.iter().enumerate() {
            let mut rec = BytesMut::new();
            rec.put_u8(0);
            put_varint(&mut rec, ts - base_ts);
            put_varint(&mut rec, i as i64);
            match key {
                None => put_varint(&mut rec, -1),
                Some(k) => {
                    put_varint(&mut rec, k.len() as i64);
                    rec.put_slice(k);
                }
            }
            put_varint(&mut rec, 1);
            rec.put_u8(b'v');
            put_varint(&mut rec, 0);
            put_varint(&mut body, rec.len() as i64);
            body.put_slice(&rec);
        }
        let n = records.len() as i32;
        let mut b = BytesMut::new();
        b.put_i64(base_offset);
        b.put_i32((HEADER_LEN - 12 + body.len()) as i32);
        b.put_i32(0);
        b.put_i8(2);
        b.put_u32(0);
        b.put_i16(0);
        b.put_i32(n - 1);
        b.put_i64(base_ts);
        b.put_i64(records.iter().map(|r| r.1).max().unwrap());
        b.put_i64(-1);
        b.put_i16(-1);
        b.put_i32(-1);
        b.put_i32(n);
        b.put_slice(&body);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b.freeze()
    }

    const NOW: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn rules(compacted: bool, before_max_ms: i64) -> RecordRules {
        RecordRules { compacted, create_time: true, before_max_ms, after_max_ms: HOUR }
    }

    fn check(batch: &Bytes, rules: &RecordRules) -> Result<(), StorageError> {
        let header = batch::validate(batch).unwrap();
        check_records(batch, &header, rules, NOW, &"t-0")
    }

    fn indexes(e: &StorageError) -> Vec<i32> {
        e.record_errors().iter().map(|r| r.batch_index).collect()
    }

    #[test]
    fn keyless_records_on_a_compacted_topic_are_named_by_index() {
        let b = build_batch_with(&[(Some(b"k"), NOW), (None, NOW), (Some(b"k"), NOW), (None, NOW)], 0);
        assert!(check(&b, &rules(false, i64::MAX)).is_ok(), "a delete topic takes keyless records");
        let err = check(&b, &rules(true, i64::MAX)).unwrap_err();
        assert!(matches!(err, StorageError::InvalidRecords(_)), "{err:?}");
        assert_eq!(indexes(&err), vec![1, 3]);
        assert_eq!(err.record_errors()[0].message, "Compacted topic cannot accept message without key in topic partition t-0");
        assert!(err.to_string().starts_with("One or more records have been rejected due to 2 record errors in total"), "{err}");
        let keyed = build_batch_with(&[(Some(b"a"), NOW), (Some(b""), NOW)], 0);
        assert!(check(&keyed, &rules(true, i64::MAX)).is_ok(), "an empty key is a key");
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let b = build_batch_with(&[(Some(b"k"), NOW), (Some(b"k"), NOW + 2 * HOUR), (Some(b"k"), NOW + HOUR)], 0);
        let err = check(&b, &rules(false, i64::MAX)).unwrap_err();
        assert!(matches!(err, StorageError::InvalidTimestamps(_)), "{err:?}");
        assert_eq!(indexes(&err), vec![1], "exactly now + after.max.ms is inside");
        assert_eq!(
            err.record_errors()[0].message,
            format!("Timestamp {} of message with offset 1 is out of range. The timestamp should be within [{}, {}]", NOW + 2 * HOUR, NOW - i64::MAX, NOW + HOUR)
        );
        assert_eq!(err.to_string(), "One or more records have been rejected due to invalid timestamp");
        let old = build_batch_with(&[(Some(b"k"), NOW - 2 * HOUR), (Some(b"k"), NOW)], 0);
        assert!(check(&old, &rules(false, i64::MAX)).is_ok(), "no lower bound by default");
        assert_eq!(indexes(&check(&old, &rules(false, HOUR)).unwrap_err()), vec![0]);
        let mut log_append = rules(false, HOUR);
        log_append.create_time = false;
        assert!(check(&old, &log_append).is_ok(), "LogAppendTime topics restamp instead");
    }

    #[test]
    fn a_keyless_record_with_a_bad_timestamp_counts_once_as_timestamp_refusal() {
        // Kafka reports the key error for the record, but any timestamp error makes it INVALID_TIMESTAMP.
        let b = build_batch_with(&[(None, NOW + 2 * HOUR), (Some(b"k"), NOW + 2 * HOUR)], 0);
        let err = check(&b, &rules(true, i64::MAX)).unwrap_err();
        assert!(matches!(err, StorageError::InvalidTimestamps(_)), "{err:?}");
        assert_eq!(indexes(&err), vec![0, 1]);
        assert!(err.record_errors()[0].message.starts_with("Compacted topic"));
    }

    #[test]
    fn compressed_batches_are_read_record_by_record() {
        let plain = build_batch_with(&[(Some(b"k"), NOW), (None, NOW - 2 * HOUR), (Some(b"k"), NOW)], 0);
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let b = batch::with_codec(&plain, codec, None).unwrap();
            assert_eq!(batch::validate(&b).unwrap().compression(), codec.id());
            let err = check(&b, &rules(true, i64::MAX)).unwrap_err();
            assert!(matches!(err, StorageError::InvalidRecords(_)), "{codec:?}: {err:?}");
            assert_eq!(indexes(&err), vec![1], "{codec:?}: only the keyless record");
            assert_eq!(indexes(&check(&b, &rules(false, HOUR)).unwrap_err()), vec![1], "{codec:?}: only the old record");
        }
        let mut broken = BytesMut::from(&batch::with_codec(&plain, Codec::Zstd, None).unwrap()[..]);
        broken[HEADER_LEN] ^= 0xff; // the zstd frame's magic number
        let crc = crc32c::crc32c(&broken[21..]);
        broken[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(check(&broken.freeze(), &rules(true, i64::MAX)), Err(StorageError::CorruptBatch(_))));
    }

    #[test]
    fn a_truncated_record_is_a_corrupt_batch() {
        let b = build_batch_with(&[(None, NOW)], 0);
        let mut raw = BytesMut::from(&b[..HEADER_LEN]);
        raw.put_u8(0x7e); // a record length of 63 with no bytes behind it
        let header = batch::BatchHeader::parse(&raw).unwrap();
        let err = check_records(&raw, &header, &rules(true, i64::MAX), NOW, &"t-0").unwrap_err();
        assert!(matches!(err, StorageError::CorruptBatch(_)), "{err:?}");
    }
}
