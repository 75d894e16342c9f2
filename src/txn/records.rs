//! The records of `__transaction_state`, in Kafka's key and value schemas (TransactionLogKey.json,
//! TransactionLogValue.json), so Kafka's tools can read them:
//!
//! ```text
//! key   v0  transactionalId:string
//! value v0  producerId:int64 producerEpoch:int16 timeoutMs:int32 status:int8
//!           partitions:[topic:string partitionIds:[int32]]? lastUpdateMs:int64 startMs:int64
//! value v1  the same fields, flexible (compact strings and arrays, tagged fields), with tags
//!           0 previousProducerId:int64 (-1)  1 nextProducerId:int64 (-1)  2 clientTransactionVersion:int16 (0)
//! ```
//! Each record starts with its int16 schema version. A null value is a tombstone (the id expired).
//! Ringlog writes value v1 and reads both.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::TxnState;

/// What `__transaction_state` stores for one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    /// Producer id in use.
    pub producer_id: i64,
    /// Producer id of the last committed transaction (-1: none).
    pub prev_producer_id: i64,
    /// Producer id handed out for the next transaction (epoch exhaustion; -1: none).
    pub next_producer_id: i64,
    /// Epoch of the producer id.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i32,
    /// The transaction's state.
    pub state: TxnState,
    /// Partitions in the transaction, by topic.
    pub partitions: BTreeMap<String, Vec<i32>>,
    /// When the state last changed (ms).
    pub last_update_ms: i64,
    /// When the transaction started (ms; -1 when none runs).
    pub start_ms: i64,
    /// The client's transaction version (2: KIP-890 epoch bump per transaction).
    pub client_txn_version: i16,
}

/// The key of a transactional id's record.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    b.put_i16(transactional_id.len() as i16);
    b.put_slice(transactional_id.as_bytes());
    b.freeze()
}

/// The transactional id of a key; `None` when it is not a v0 TransactionLogKey.
pub fn decode_key(mut buf: &[u8]) -> Option<String> {
    if buf.remaining() < 4 || buf.get_i16() != 0 {
        return None;
    }
    let len = buf.get_i16();
    take_str(&mut buf, usize::try_from(len).ok()?)
}

fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn get_uvarint(buf: &mut &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for shift in (0..35).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let byte = buf.get_u8();
        v |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn take_str(buf: &mut &[u8], len: usize) -> Option<String> {
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(s)
}

/// Reads `n` bytes as a fixed-width number source, or `None` when the buffer is short.
fn need(buf: &[u8], n: usize) -> Option<()> {
    (buf.remaining() >= n).then_some(())
}

impl TxnValue {
    /// The value as Ringlog writes it (v1, flexible; tagged fields only when not default).
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_i16(1);
        b.put_i64(self.producer_id);
        b.put_i16(self.producer_epoch);
        b.put_i32(self.timeout_ms);
        b.put_i8(self.state.id());
        put_uvarint(&mut b, self.partitions.len() as u32 + 1);
        for (topic, ids) in &self.partitions {
            put_uvarint(&mut b, topic.len() as u32 + 1);
            b.put_slice(topic.as_bytes());
            put_uvarint(&mut b, ids.len() as u32 + 1);
            for id in ids {
                b.put_i32(*id);
            }
            put_uvarint(&mut b, 0);
        }
        b.put_i64(self.last_update_ms);
        b.put_i64(self.start_ms);
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        if self.prev_producer_id != -1 {
            tags.push((0, self.prev_producer_id.to_be_bytes().to_vec()));
        }
        if self.next_producer_id != -1 {
            tags.push((1, self.next_producer_id.to_be_bytes().to_vec()));
        }
        if self.client_txn_version != 0 {
            tags.push((2, self.client_txn_version.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut b, tags.len() as u32);
        for (tag, data) in tags {
            put_uvarint(&mut b, tag);
            put_uvarint(&mut b, data.len() as u32);
            b.put_slice(&data);
        }
        b.freeze()
    }

    /// Decodes a v0 or v1 value; `None` when it is malformed or of another version.
    pub fn decode(mut buf: &[u8]) -> Option<TxnValue> {
        need(buf, 2)?;
        let version = buf.get_i16();
        let flexible = match version {
            0 => false,
            1 => true,
            _ => return None,
        };
        need(buf, 15)?;
        let producer_id = buf.get_i64();
        let producer_epoch = buf.get_i16();
        let timeout_ms = buf.get_i32();
        let state = TxnState::from_id(buf.get_i8())?;
        let count = if flexible {
            (get_uvarint(&mut buf)? as usize).checked_sub(1)
        } else {
            need(buf, 4)?;
            usize::try_from(buf.get_i32()).ok()
        };
        let mut partitions = BTreeMap::new();
        for _ in 0..count.unwrap_or(0) {
            let topic_len = if flexible {
                (get_uvarint(&mut buf)? as usize).checked_sub(1)?
            } else {
                need(buf, 2)?;
                usize::try_from(buf.get_i16()).ok()?
            };
            let topic = take_str(&mut buf, topic_len)?;
            let ids_len = if flexible {
                (get_uvarint(&mut buf)? as usize).checked_sub(1)?
            } else {
                need(buf, 4)?;
                usize::try_from(buf.get_i32()).ok()?
            };
            need(buf, ids_len.checked_mul(4)?)?;
            let ids: Vec<i32> = (0..ids_len).map(|_| buf.get_i32()).collect();
            if flexible {
                skip_tags(&mut buf)?;
            }
            partitions.insert(topic, ids);
        }
        need(buf, 16)?;
        let last_update_ms = buf.get_i64();
        let start_ms = buf.get_i64();
        let mut value = TxnValue {
            producer_id,
            prev_producer_id: -1,
            next_producer_id: -1,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
            client_txn_version: 0,
        };
        if flexible {
            let tags = get_uvarint(&mut buf)?;
            for _ in 0..tags {
                let tag = get_uvarint(&mut buf)?;
                let size = get_uvarint(&mut buf)? as usize;
                need(buf, size)?;
                let mut data = &buf[..size];
                match (tag, size) {
                    (0, 8) => value.prev_producer_id = data.get_i64(),
                    (1, 8) => value.next_producer_id = data.get_i64(),
                    (2, 2) => value.client_txn_version = data.get_i16(),
                    // A tag from a newer Kafka: kept compatible by skipping it (KIP-915).
                    _ => {}
                }
                buf.advance(size);
            }
        }
        Some(value)
    }
}

fn skip_tags(buf: &mut &[u8]) -> Option<()> {
    for _ in 0..get_uvarint(buf)? {
        get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        need(buf, size)?;
        buf.advance(size);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TxnValue {
        TxnValue {
            producer_id: 4001,
            prev_producer_id: 4000,
            next_producer_id: -1,
            producer_epoch: 7,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: BTreeMap::from([("orders".to_string(), vec![0, 3]), ("__consumer_offsets".to_string(), vec![12])]),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
            client_txn_version: 2,
        }
    }

    #[test]
    fn key_is_kafkas_v0_layout() {
        let key = encode_key("tx-1");
        assert_eq!(&key[..], &[0, 0, 0, 4, b't', b'x', b'-', b'1']);
        assert_eq!(decode_key(&key).as_deref(), Some("tx-1"));
        assert_eq!(decode_key(&[0, 1, 0, 0]), None, "another key version is not ours");
    }

    #[test]
    fn value_v1_round_trips_with_its_tagged_fields() {
        let v = sample();
        let bytes = v.encode();
        // version, producer id, epoch, timeout, status, as Kafka lays them out.
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(&bytes[2..10], &4001i64.to_be_bytes());
        assert_eq!(&bytes[10..12], &7i16.to_be_bytes());
        assert_eq!(bytes[16], TxnState::PrepareCommit.id() as u8);
        assert_eq!(TxnValue::decode(&bytes), Some(v));
        let plain = TxnValue { prev_producer_id: -1, client_txn_version: 0, partitions: BTreeMap::new(), ..sample() };
        let bytes = plain.encode();
        assert_eq!(*bytes.last().unwrap(), 0, "no tagged fields when every one is its default");
        assert_eq!(TxnValue::decode(&bytes), Some(plain));
        assert_eq!(TxnValue::decode(&bytes[..bytes.len() - 3]), None, "a cut value is refused");
    }

    #[test]
    fn value_v0_as_older_kafka_wrote_it_decodes() {
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i64(9);
        b.put_i16(2);
        b.put_i32(30_000);
        b.put_i8(TxnState::Ongoing.id());
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(1);
        b.put_i64(50);
        b.put_i64(40);
        let v = TxnValue::decode(&b).unwrap();
        assert_eq!((v.producer_id, v.producer_epoch, v.state), (9, 2, TxnState::Ongoing));
        assert_eq!(v.partitions, BTreeMap::from([("t".to_string(), vec![0, 1])]));
        assert_eq!((v.last_update_ms, v.start_ms, v.prev_producer_id), (50, 40, -1));
    }
}
