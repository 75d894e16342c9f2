//! Idempotent producer state of one partition: the last epoch and the last five batches of each
//! producer id, as Kafka keeps them, so retries are acknowledged once and gaps are refused.

use std::collections::{HashMap, VecDeque};

use super::StorageError;
use super::batch::BatchHeader;

/// Kafka keeps the metadata of this many recent batches per producer (the max in-flight of an
/// idempotent producer).
const RETAINED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy)]
struct BatchRecord {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchRecord>,
}

/// What to do with an incoming batch.
#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next sequence: append it.
    Append,
    /// Already in the log at this base offset: acknowledge without writing.
    Duplicate(i64),
}

/// Producer id → state, for one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX { 0 } else { seq + 1 }
}

impl ProducerStates {
    /// Checks an incoming batch against the producer's history.
    pub fn check(&self, h: &BatchHeader) -> Result<SequenceCheck, StorageError> {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&h.producer_id) else {
            // A producer we have never seen must start at sequence 0.
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(StorageError::OutOfOrderSequence { expected: 0, got: h.base_sequence })
            };
        };
        if h.producer_epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch { got: h.producer_epoch, current: entry.epoch });
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(StorageError::OutOfOrderSequence { expected: 0, got: h.base_sequence })
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
        {
            return Ok(SequenceCheck::Duplicate(dup.base_offset));
        }
        let expected = entry.batches.back().map(|b| next_seq(b.last_seq)).unwrap_or(0);
        if h.base_sequence != expected {
            return Err(StorageError::OutOfOrderSequence { expected, got: h.base_sequence });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended batch (live, or replayed during recovery); `h.base_offset` is assigned.
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchRecord {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
        });
        while entry.batches.len() > RETAINED_BATCHES {
            entry.batches.pop_front();
        }
    }
}

impl ProducerStates {
    /// Forgets the batches at and above `offset` (a follower's truncation). A producer keeps
    /// the batches it had below the cut; the ids of producers left with none are returned and
    /// removed: the caller reads their older batches back from the log, or they are new there.
    pub fn truncate_from(&mut self, offset: i64) -> Vec<i64> {
        let mut emptied = Vec::new();
        for (id, entry) in &mut self.producers {
            entry.batches.retain(|b| b.base_offset < offset);
            if entry.batches.is_empty() {
                emptied.push(*id);
            }
        }
        for id in &emptied {
            self.producers.remove(id);
        }
        emptied
    }
}

/// Version of the snapshot layout [`ProducerStates::write_snapshot`] writes.
const SNAPSHOT_VERSION: u16 = 0;

impl ProducerStates {
    /// Writes the state as of log end offset `end_offset` to `path`, for the next start-up after a
    /// clean close (Kafka's `.snapshot` files play this part). Layout, big-endian: version u16,
    /// end offset i64, producer count u32, then per producer its id i64, epoch i16, batch count
    /// u8 and per batch first and last sequence i32 and base offset i64; then a CRC-32C of all
    /// that.
    pub fn write_snapshot(&self, path: &std::path::Path, end_offset: i64) -> Result<(), StorageError> {
        let mut out = Vec::with_capacity(18 + self.producers.len() * 51);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&end_offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (id, entry) in &self.producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
            }
        }
        out.extend_from_slice(&crc32c::crc32c(&out).to_be_bytes());
        std::fs::write(path, out)?;
        Ok(())
    }

    /// Reads what [`ProducerStates::write_snapshot`] wrote: the state and its log end offset.
    /// `None` when the file is missing, torn, or fails its CRC.
    pub fn read_snapshot(path: &std::path::Path) -> Option<(ProducerStates, i64)> {
        let data = std::fs::read(path).ok()?;
        let (body, crc) = data.split_at_checked(data.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = SnapshotReader(body);
        if u16::from_be_bytes(r.take()?) != SNAPSHOT_VERSION {
            return None;
        }
        let end_offset = i64::from_be_bytes(r.take()?);
        let mut states = ProducerStates::default();
        for _ in 0..u32::from_be_bytes(r.take()?) {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let mut entry = ProducerEntry { epoch, batches: VecDeque::new() };
            for _ in 0..u8::from_be_bytes(r.take()?) {
                entry.batches.push_back(BatchRecord {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    base_offset: i64::from_be_bytes(r.take()?),
                });
            }
            states.producers.insert(id, entry);
        }
        r.0.is_empty().then_some((states, end_offset))
    }
}

/// The unread rest of a snapshot.
struct SnapshotReader<'a>(&'a [u8]);

impl SnapshotReader<'_> {
    /// The next `N` bytes, or `None` past the end.
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{BatchHeader, testing::make_batch};

    fn header(seq: i32, n: usize, epoch: i16) -> BatchHeader {
        let values: Vec<&[u8]> = vec![b"v"; n];
        let mut h = BatchHeader::parse(&make_batch(&values, 0, 7, seq)).unwrap();
        h.producer_epoch = epoch;
        h
    }

    #[test]
    fn duplicates_are_found_and_gaps_refused() {
        let mut s = ProducerStates::default();
        let mut h = header(0, 3, 0);
        assert_eq!(s.check(&h).unwrap(), SequenceCheck::Append);
        h.base_offset = 100;
        s.record(&h);
        assert_eq!(s.check(&header(0, 3, 0)).unwrap(), SequenceCheck::Duplicate(100));
        assert_eq!(s.check(&header(3, 1, 0)).unwrap(), SequenceCheck::Append);
        assert!(matches!(s.check(&header(5, 1, 0)), Err(StorageError::OutOfOrderSequence { expected: 3, got: 5 })));
        assert!(matches!(s.check(&header(3, 1, -1)), Err(StorageError::InvalidProducerEpoch { .. })));
        assert_eq!(s.check(&header(0, 1, 1)).unwrap(), SequenceCheck::Append);
        assert!(s.check(&header(4, 1, 1)).is_err(), "a new epoch starts at 0");
    }

    #[test]
    fn a_snapshot_reads_back_the_same_state_and_a_damaged_one_is_refused() {
        let mut s = ProducerStates::default();
        for (i, seq) in [0, 3, 4, 5, 6, 7, 8].into_iter().enumerate() {
            let mut h = header(seq, 1, 2);
            h.base_offset = 10 * i as i64;
            s.record(&h);
        }
        let mut other = header(0, 2, 0);
        other.producer_id = 99;
        s.record(&other);
        let path = std::env::temp_dir().join(format!("ringlog-snapshot-{}", std::process::id()));
        s.write_snapshot(&path, 1234).unwrap();
        let (back, end) = ProducerStates::read_snapshot(&path).unwrap();
        assert_eq!(end, 1234);
        assert_eq!(back.check(&header(8, 1, 2)).unwrap(), SequenceCheck::Duplicate(60));
        assert_eq!(back.check(&header(9, 1, 2)).unwrap(), SequenceCheck::Append);
        assert!(matches!(back.check(&header(3, 1, 2)), Err(StorageError::OutOfOrderSequence { expected: 9, got: 3 })),
            "only the last five batches are kept");
        let mut h = header(2, 1, 0);
        h.producer_id = 99;
        assert_eq!(back.check(&h).unwrap(), SequenceCheck::Append);

        let mut data = std::fs::read(&path).unwrap();
        data[20] ^= 1;
        std::fs::write(&path, &data).unwrap();
        assert!(ProducerStates::read_snapshot(&path).is_none(), "a flipped bit fails the CRC");
        std::fs::write(&path, &data[..data.len() - 9]).unwrap();
        assert!(ProducerStates::read_snapshot(&path).is_none(), "a torn file is refused");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unknown_producer_must_start_at_zero() {
        let s = ProducerStates::default();
        assert!(s.check(&header(9, 1, 0)).is_err());
    }
}
