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
    fn unknown_producer_must_start_at_zero() {
        let s = ProducerStates::default();
        assert!(s.check(&header(9, 1, 0)).is_err());
    }
}
