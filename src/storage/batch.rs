//! Kafka record batch v2: header parsing, validation and in-place offset assignment.
//!
//! ```text
//! baseOffset:8 batchLength:4 partitionLeaderEpoch:4 magic:1 crc:4 | attributes:2 lastOffsetDelta:4
//! baseTimestamp:8 maxTimestamp:8 producerId:8 producerEpoch:2 baseSequence:4 recordsCount:4 records...
//! ```
//! The CRC32C covers everything from `attributes` on, so assigning `baseOffset` and
//! `partitionLeaderEpoch` never needs a new CRC.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::StorageError;
use super::compression::{self, Codec};

/// Length of the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` ends: a batch occupies `LOG_OVERHEAD + batchLength` bytes.
pub const LOG_OVERHEAD: usize = 12;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
/// Attribute bits 0..2: the records' compression codec.
const COMPRESSION_MASK: i16 = 0x07;
const MAX_TIMESTAMP_OFFSET: usize = 35;
/// Attribute bit: the batch timestamps are LogAppendTime.
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Attribute bit: the batch is transactional.
const TRANSACTIONAL_BIT: i16 = 0x10;
/// Attribute bit: the batch is a control batch.
const CONTROL_BIT: i16 = 0x20;

/// The fixed header of a record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch that appended the batch.
    pub leader_epoch: i32,
    /// Format version (2).
    pub magic: i8,
    /// CRC32C of attributes..end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf`, or `None` when fewer than [`HEADER_LEN`] bytes are there.
    pub fn parse(mut buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: buf.get_i64(),
            batch_length: buf.get_i32(),
            leader_epoch: buf.get_i32(),
            magic: buf.get_i8(),
            crc: buf.get_u32(),
            attributes: buf.get_i16(),
            last_offset_delta: buf.get_i32(),
            base_timestamp: buf.get_i64(),
            max_timestamp: buf.get_i64(),
            producer_id: buf.get_i64(),
            producer_epoch: buf.get_i16(),
            base_sequence: buf.get_i32(),
            records_count: buf.get_i32(),
        })
    }

    /// Total bytes the batch occupies in the log.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Whether this header can begin a batch stored at `pos` in a log whose valid bytes end at
    /// `end`: magic 2, a length that covers the header, and the whole batch before `end`. A
    /// header read from disk that fails this is a torn write, padding or garbage.
    pub fn stored_within(&self, pos: u64, end: u64) -> bool {
        self.magic == 2 && self.batch_length >= (HEADER_LEN - LOG_OVERHEAD) as i32 && pos + self.total_len() as u64 <= end
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Sequence of the last record.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        // Sequences wrap at i32::MAX, as in Kafka.
        ((i64::from(self.base_sequence) + i64::from(self.last_offset_delta)) % (i64::from(i32::MAX) + 1)) as i32
    }

    /// Whether the batch is transactional.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch is a control batch.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }
}

/// Whether the first batch of `records` (a produce part) is transactional: read from its
/// attributes without parsing the header, for the produce path's one branch (KIP-890).
pub fn starts_transactional(records: &[u8]) -> bool {
    records.get(ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2).is_some_and(|a| i16::from_be_bytes([a[0], a[1]]) & TRANSACTIONAL_BIT != 0)
}

/// Checks one whole batch: length, magic and CRC.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, StorageError> {
    let header = BatchHeader::parse(batch)
        .ok_or_else(|| StorageError::CorruptBatch(format!("batch of {} bytes is shorter than a header", batch.len())))?;
    if header.magic != 2 {
        return Err(StorageError::UnsupportedMagic(header.magic));
    }
    if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 || header.total_len() != batch.len() {
        return Err(StorageError::CorruptBatch(format!(
            "batch length {} does not match {} bytes",
            header.batch_length,
            batch.len()
        )));
    }
    let computed = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    if computed != header.crc {
        return Err(StorageError::CorruptBatch(format!("crc mismatch: stored {:#x}, computed {computed:#x}", header.crc)));
    }
    if header.records_count < 0 || header.last_offset_delta < 0 {
        return Err(StorageError::CorruptBatch("negative record count or offset delta".into()));
    }
    Ok(header)
}

/// Splits a produce request's records region into whole batches, without copying.
pub fn split_batches(records: &Bytes) -> Result<Vec<Bytes>, StorageError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(StorageError::CorruptBatch("trailing bytes shorter than a batch header".into()));
        }
        let len = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if len < 0 || LOG_OVERHEAD + len as usize > rest.len() {
            return Err(StorageError::CorruptBatch(format!("batch length {len} runs past the request")));
        }
        let total = LOG_OVERHEAD + len as usize;
        out.push(records.slice(pos..pos + total));
        pos += total;
    }
    Ok(out)
}

/// A batch with its offset assigned, as the log holds it until it is written and while it is
/// cached: a stamped copy of the fixed header, and the producer's bytes after it, still shared
/// with the request frame. Stamping so costs a 61-byte copy instead of one of the whole batch.
#[derive(Debug, Clone)]
pub struct StampedBatch {
    head: Bytes,
    body: Bytes,
}

impl StampedBatch {
    /// Bytes the batch occupies in the log.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Whether the batch is empty (never, for a validated batch).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stamped fixed header, for [`BatchHeader::parse`].
    pub fn header(&self) -> &[u8] {
        &self.head
    }

    /// The batch as two pieces, header then the rest, to send or copy in order.
    pub fn parts(&self) -> [&Bytes; 2] {
        [&self.head, &self.body]
    }

    /// A batch that already has its offsets (a follower's copy of its leader's batch): stored
    /// exactly as it came, split like a stamped one without copying its body.
    pub fn as_stored(batch: &Bytes) -> StampedBatch {
        let at = HEADER_LEN.min(batch.len());
        StampedBatch { head: batch.slice(..at), body: batch.slice(at..) }
    }

    /// The batch in one buffer (a copy).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.body);
        out.freeze()
    }
}

/// Stamps a validated batch's base offset and leader epoch into a copy of its header. With
/// `append_time` (LogAppendTime topics) it also sets the timestamp type and max timestamp, and
/// recomputes the CRC, which covers the header from `attributes` on as well as the records.
pub fn stamp(batch: &Bytes, base_offset: i64, leader_epoch: i32, append_time: Option<i64>) -> StampedBatch {
    let mut head = BytesMut::from(&batch[..HEADER_LEN]);
    let body = batch.slice(HEADER_LEN..);
    head[0..8].copy_from_slice(&base_offset.to_be_bytes());
    head[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(now) = append_time {
        let attrs = i16::from_be_bytes([head[ATTRIBUTES_OFFSET], head[ATTRIBUTES_OFFSET + 1]]) | TIMESTAMP_TYPE_BIT;
        head[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
        head[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now.to_be_bytes());
        let mut crc = crc32c::crc32c(&head[ATTRIBUTES_OFFSET..]);
        crc = crc32c::crc32c_append(crc, &body);
        head[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
    StampedBatch { head: head.freeze(), body }
}

/// Reads a zig-zag varint (Kafka record fields) and advances `buf`.
pub(crate) fn read_varint(buf: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// One record of an uncompressed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp.
    pub timestamp: i64,
    /// Key, or `None` for a null key.
    pub key: Option<Bytes>,
    /// Value, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

fn read_bytes(buf: &mut &[u8]) -> Option<Option<Bytes>> {
    let len = read_varint(buf)?;
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if len > buf.len() {
        return None;
    }
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Some(Some(Bytes::copy_from_slice(head)))
}

/// The records of an uncompressed batch, or `None` when the batch is compressed or malformed.
pub fn records(batch: &[u8]) -> Option<Vec<Record>> {
    let header = BatchHeader::parse(batch)?;
    if header.compression() != 0 {
        return None;
    }
    let mut buf = batch.get(HEADER_LEN..)?;
    let mut out = Vec::with_capacity(header.records_count.max(0) as usize);
    for _ in 0..header.records_count {
        let len = read_varint(&mut buf)? as usize;
        if len > buf.len() {
            return None;
        }
        let mut rec = &buf[..len];
        buf = &buf[len..];
        rec = rec.get(1..)?; // attributes
        let ts_delta = read_varint(&mut rec)?;
        let offset_delta = read_varint(&mut rec)?;
        let key = read_bytes(&mut rec)?;
        let value = read_bytes(&mut rec)?;
        out.push(Record {
            offset: header.base_offset + offset_delta,
            timestamp: header.base_timestamp + ts_delta,
            key,
            value,
        });
    }
    Some(out)
}

/// For an uncompressed batch, the offset of the first record whose timestamp is at least `target`.
/// Compressed and LogAppendTime batches answer with the base offset, since Ringlog never
/// decompresses and their records carry no per-record time.
/// Returns (offset, that record's timestamp); compressed batches give the batch's max timestamp.
pub fn first_offset_at_or_after(batch: &[u8], target: i64) -> Option<(i64, i64)> {
    let header = BatchHeader::parse(batch)?;
    if header.max_timestamp < target {
        return None;
    }
    if header.compression() != 0 || header.attributes & TIMESTAMP_TYPE_BIT != 0 {
        return Some((header.base_offset, header.max_timestamp));
    }
    let found = records(batch)?.into_iter().find(|r| r.timestamp >= target).map(|r| (r.offset, r.timestamp));
    Some(found.unwrap_or((header.last_offset(), header.max_timestamp)))
}

/// Writes a zigzag varint, as record fields are encoded.
pub(crate) fn put_varint(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            buf.put_u8(z as u8);
            return;
        }
        buf.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

fn put_nullable(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.put_slice(b);
        }
    }
}

/// The records section of a whole batch, decompressed when the batch is compressed.
pub fn plain_records(batch: &[u8]) -> Result<Bytes, StorageError> {
    let attributes = batch.get(ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2).map(|a| i16::from_be_bytes([a[0], a[1]]));
    let section = batch.get(HEADER_LEN..).zip(attributes).ok_or_else(|| StorageError::CorruptBatch("short batch".into()))?;
    let (section, attributes) = section;
    let codec = Codec::from_attributes(attributes).map_err(|e| StorageError::CorruptBatch(e.to_string()))?;
    compression::decompress(codec, section).map_err(|e| StorageError::CorruptBatch(e.to_string()))
}

/// `batch` with its records compressed by `target` at `level` instead (a topic's
/// `compression.type` and its level): every other field is kept; the length, the codec bits
/// and the CRC are rewritten.
pub fn with_codec(batch: &[u8], target: Codec, level: Option<i32>) -> Result<Bytes, StorageError> {
    let plain = plain_records(batch)?;
    let packed = compression::compress_at(target, &plain, level).map_err(|e| StorageError::CorruptBatch(e.to_string()))?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + packed.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&packed);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[ATTRIBUTES_OFFSET], out[ATTRIBUTES_OFFSET + 1]]);
    out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&((attributes & !COMPRESSION_MASK) | target.id()).to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

/// A record to build: (key, value), either may be null.
pub type RecordRef<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds an uncompressed v2 batch at base offset 0, timestamps `ts0, ts0+1, ...`, with the given
/// idempotent producer id and base sequence (-1 for none). Used for the broker's own records
/// (`__consumer_offsets`) and by tests.
pub fn build(records: &[RecordRef<'_>], ts0: i64, producer_id: i64, base_sequence: i32) -> Bytes {
    build_for(records, ts0, &BatchProducer { id: producer_id, epoch: 0, base_sequence, transactional: false })
}

/// The producer fields of a batch the broker builds itself.
#[derive(Debug, Clone, Copy)]
pub struct BatchProducer {
    /// Producer id, or -1.
    pub id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// Base sequence, or -1.
    pub base_sequence: i32,
    /// Whether the batch belongs to a transaction (attribute bit 0x10).
    pub transactional: bool,
}

/// Builds an uncompressed v2 batch at base offset 0, timestamps `ts0, ts0+1, ...`, written by
/// `producer` (a coordinator's transactional offsets carry the transaction's producer).
pub fn build_for(records: &[RecordRef<'_>], ts0: i64, producer: &BatchProducer) -> Bytes {
    let mut body = BytesMut::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = BytesMut::new();
        rec.put_u8(0);
        put_varint(&mut rec, i as i64);
        put_varint(&mut rec, i as i64);
        put_nullable(&mut rec, *key);
        put_nullable(&mut rec, *value);
        put_varint(&mut rec, 0); // no headers
        put_varint(&mut body, rec.len() as i64);
        body.put_slice(&rec);
    }
    let n = records.len() as i32;
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
    b.put_i64(0);
    b.put_i32((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32);
    b.put_i32(0);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(if producer.transactional { TRANSACTIONAL_BIT } else { 0 });
    b.put_i32(n - 1);
    b.put_i64(ts0);
    b.put_i64(ts0 + i64::from(n.max(1)) - 1);
    b.put_i64(producer.id);
    b.put_i16(producer.epoch);
    b.put_i32(producer.base_sequence);
    b.put_i32(n);
    b.put_slice(&body);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
    b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// Test helpers that build real batches.
#[cfg(test)]
pub mod testing {
    use bytes::Bytes;

    /// Builds an uncompressed batch of `values` (null keys), with timestamps `ts0, ts0+1, ...`.
    pub fn make_batch(values: &[&[u8]], ts0: i64, producer_id: i64, base_sequence: i32) -> Bytes {
        let records: Vec<_> = values.iter().map(|v| (None, Some(*v))).collect();
        super::build(&records, ts0, producer_id, base_sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::make_batch;
    use super::*;

    #[test]
    fn valid_batch_passes_and_bad_crc_fails() {
        let batch = make_batch(&[b"a", b"bb"], 1000, -1, -1);
        let h = validate(&batch).unwrap();
        assert_eq!(h.records_count, 2);
        assert_eq!(h.last_offset_delta, 1);
        let mut bad = BytesMut::from(&batch[..]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(validate(&bad), Err(StorageError::CorruptBatch(_))));
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let batch = make_batch(&[b"x"], 5, -1, -1);
        let stamped = stamp(&batch, 42, 3, None);
        assert_eq!(stamped.len(), batch.len());
        let h = validate(&stamped.to_bytes()).unwrap();
        assert_eq!((h.base_offset, h.leader_epoch), (42, 3));
        assert_eq!(stamped.to_bytes()[HEADER_LEN..], batch[HEADER_LEN..], "records untouched");
        let appended = stamp(&batch, 42, 3, Some(999));
        let h = validate(&appended.to_bytes()).unwrap();
        assert_eq!(h.max_timestamp, 999);
    }

    #[test]
    fn split_finds_every_batch_and_rejects_truncation() {
        let a = make_batch(&[b"1"], 0, -1, -1);
        let b = make_batch(&[b"2", b"3"], 0, -1, -1);
        let joined = Bytes::from([a.as_ref(), b.as_ref()].concat());
        assert_eq!(split_batches(&joined).unwrap().len(), 2);
        assert!(split_batches(&joined.slice(..joined.len() - 1)).is_err());
    }

    #[test]
    fn built_records_read_back() {
        let b = stamp(&build(&[(Some(b"k"), Some(b"v")), (Some(b"k2"), None)], 7, -1, -1), 5, 0, None).to_bytes();
        let recs = records(&b).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].offset, recs[0].timestamp), (5, 7));
        assert_eq!(recs[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(recs[1].value, None, "tombstone");
    }

    #[test]
    fn timestamp_search_finds_the_record() {
        let batch = stamp(&make_batch(&[b"a", b"b", b"c"], 100, -1, -1), 10, 0, None).to_bytes();
        assert_eq!(first_offset_at_or_after(&batch, 101), Some((11, 101)));
        assert_eq!(first_offset_at_or_after(&batch, 50), Some((10, 100)));
        assert_eq!(first_offset_at_or_after(&batch, 103), None);
    }
}
