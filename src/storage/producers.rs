//! Producer state of one partition: the last epoch and the last five batches of each producer
//! id, as Kafka keeps them, so retries are acknowledged once and gaps are refused; and each
//! producer's ongoing transaction here, which holds the last stable offset back.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::StorageError;
use super::batch::BatchHeader;
use super::txn::{AbortedTxn, ControlMarker};

/// Kafka keeps the metadata of this many recent batches per producer (the max in-flight of an
/// idempotent producer).
const RETAINED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy)]
struct BatchRecord {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
}

#[derive(Debug)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchRecord>,
    /// First offset of the producer's ongoing transaction in this partition.
    txn_first_offset: Option<i64>,
    /// Coordinator epoch of the last marker (-1: none yet); older coordinators are fenced.
    coordinator_epoch: i32,
    /// Max timestamp of the producer's last batch (DescribeProducers).
    last_timestamp: i64,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry { epoch: 0, batches: VecDeque::new(), txn_first_offset: None, coordinator_epoch: -1, last_timestamp: -1 }
    }
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
    /// First offset → producer id, for every ongoing transaction: the smallest key holds the
    /// last stable offset back.
    ongoing: BTreeMap<i64, i64>,
    /// Marker offset → (producer id, first offset) of ended transactions whose marker may not
    /// be below the high watermark yet: until it is, the transaction still holds the last stable
    /// offset back, as Kafka's `unreplicatedTxns` do.
    unreplicated: BTreeMap<i64, (i64, i64)>,
    /// KIP-890 verification guards: producer id → (epoch, guard) (see [`ProducerStates::verify`]).
    guards: HashMap<i64, (i16, u64)>,
    /// Ended transactions with markers below this were forgotten ([`ProducerStates::prune_decided`]).
    decided_below: i64,
}

/// One producer as DescribeProducers lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub epoch: i16,
    /// Its last sequence, or -1.
    pub last_sequence: i32,
    /// Max timestamp of its last batch, or -1.
    pub last_timestamp: i64,
    /// Coordinator epoch of its last marker, or -1.
    pub coordinator_epoch: i32,
    /// First offset of its ongoing transaction here, or -1.
    pub current_txn_start_offset: i64,
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
        if !h.is_transactional() && entry.txn_first_offset.is_some() {
            return Err(StorageError::InvalidTxnState(format!("producer {} wrote a non-transactional batch in its open transaction", h.producer_id)));
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

    /// Records an appended data batch (live, or replayed during recovery); `h.base_offset` is
    /// assigned. A transactional batch starts the producer's transaction here if none is open.
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        if h.is_transactional() {
            let entry = self.producers.entry(h.producer_id).or_default();
            if entry.txn_first_offset.is_none() {
                entry.txn_first_offset = Some(h.base_offset);
                self.ongoing.insert(h.base_offset, h.producer_id);
            }
            self.guards.remove(&h.producer_id);
        }
        self.restore_batch(h);
    }

    /// Records a data batch's sequence metadata only (what a follower's truncation reads back
    /// from older segments): the transaction state is the caller's.
    pub fn restore_batch(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
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

/// What [`ProducerStates::verify`] decides for a transactional batch (KIP-890).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnVerification {
    /// The producer's transaction is open here, or the guard is current: append.
    Append,
    /// Not verified yet: ask the coordinator, then resend with this guard.
    Verify(u64),
}

/// Source of verification guards: unique in this process, and unlikely to repeat another
/// process's (seeded with the clock), so a guard from an earlier leader never matches.
static NEXT_GUARD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn fresh_guard() -> u64 {
    use std::sync::atomic::Ordering;
    let _ = NEXT_GUARD.compare_exchange(0, (crate::types::now_ms() as u64) << 20, Ordering::Relaxed, Ordering::Relaxed);
    NEXT_GUARD.fetch_add(1, Ordering::Relaxed)
}

impl ProducerStates {
    /// Checks a transaction marker for producer `producer_id` before it is appended: a marker
    /// from an older producer epoch, or from an older coordinator, is refused.
    pub fn check_marker(&self, producer_id: i64, epoch: i16, coordinator_epoch: i32) -> Result<(), StorageError> {
        let Some(entry) = self.producers.get(&producer_id) else { return Ok(()) };
        if epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch { got: epoch, current: entry.epoch });
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(StorageError::CoordinatorFenced { got: coordinator_epoch, current: entry.coordinator_epoch });
        }
        Ok(())
    }

    /// Records an appended marker batch (`h.base_offset` assigned): it ends the producer's
    /// transaction here. An abort answers the `.txnindex` entry it makes (Kafka writes one even
    /// when no transactional batch came before it: first offset = the marker's).
    pub fn record_marker(&mut self, h: &BatchHeader, marker: ControlMarker) -> Option<AbortedTxn> {
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp = entry.last_timestamp.max(h.max_timestamp);
        let first = entry.txn_first_offset.take();
        self.guards.remove(&h.producer_id);
        let marker_offset = h.base_offset;
        if let Some(first) = first {
            self.ongoing.remove(&first);
            self.unreplicated.insert(marker_offset, (h.producer_id, first));
        }
        if marker.commit {
            return None;
        }
        // Kafka's `lastStableOffset(completedTxn)`: the first other undecided offset, else the marker's next.
        let others = self.ongoing.keys().next().copied().into_iter().chain(
            self.unreplicated.iter().filter(|(m, _)| **m != marker_offset).map(|(_, (_, f))| *f),
        );
        let last_stable_offset = others.min().unwrap_or(marker_offset + 1);
        Some(AbortedTxn { producer_id: h.producer_id, first_offset: first.unwrap_or(marker_offset), last_offset: marker_offset, last_stable_offset })
    }

    /// The last stable offset for high watermark `hw`: below the first offset of every ongoing
    /// transaction, and of every ended one whose marker is not below `hw` yet.
    pub fn last_stable_offset(&self, hw: i64) -> i64 {
        let ongoing = self.ongoing.keys().next().copied().unwrap_or(i64::MAX);
        let unreplicated = self.unreplicated.range(hw..).map(|(_, (_, f))| *f).min().unwrap_or(i64::MAX);
        hw.min(ongoing).min(unreplicated)
    }

    /// Forgets the ended transactions whose markers are below `hw` (replicated: decided for good).
    pub fn prune_decided(&mut self, hw: i64) {
        if self.unreplicated.first_key_value().is_some_and(|(m, _)| *m < hw) {
            self.unreplicated = self.unreplicated.split_off(&hw);
            self.decided_below = self.decided_below.max(hw);
        }
    }

    /// Whether a cut at `offset` may remove a marker whose transaction was forgotten: then
    /// [`ProducerStates::truncate_from`] cannot reopen it, and the state must be replayed.
    pub fn cut_needs_replay(&self, offset: i64) -> bool {
        offset < self.decided_below
    }

    /// KIP-890: whether a transactional batch from `h`'s producer may be appended. Appended
    /// directly when its transaction is open here at this epoch; with `guard`, only when that is
    /// still the producer's current guard (a marker or a newer epoch clears it:
    /// INVALID_TXN_STATE); without one, a fresh guard is registered and the batch must be
    /// verified with the coordinator first.
    pub fn verify(&mut self, h: &BatchHeader, guard: Option<u64>) -> Result<TxnVerification, StorageError> {
        let open = self.producers.get(&h.producer_id).is_some_and(|e| e.txn_first_offset.is_some() && e.epoch == h.producer_epoch);
        if open {
            return Ok(TxnVerification::Append);
        }
        match guard {
            Some(g) if self.guards.get(&h.producer_id) == Some(&(h.producer_epoch, g)) => Ok(TxnVerification::Append),
            Some(_) => Err(StorageError::InvalidTxnState(format!("producer {} is not verified in a transaction here", h.producer_id))),
            // A producer pipelines: a second batch before the first's resend shares its guard
            // (one verification in flight per producer, as Kafka's VerificationStateEntry).
            None => match self.guards.get(&h.producer_id) {
                Some(&(epoch, g)) if epoch == h.producer_epoch => Ok(TxnVerification::Verify(g)),
                _ => {
                    let g = fresh_guard();
                    self.guards.insert(h.producer_id, (h.producer_epoch, g));
                    Ok(TxnVerification::Verify(g))
                }
            },
        }
    }

    /// Forgets the producers whose last batch is `max_age_ms` or more before `now_ms` and that
    /// have no transaction open here (Kafka's `producer.id.expiration.ms`); answers how many. A
    /// forgotten producer must start again at sequence 0, as an unknown one does.
    pub fn expire(&mut self, now_ms: i64, max_age_ms: i64) -> usize {
        let expired: Vec<i64> = self
            .producers
            .iter()
            .filter(|(_, e)| e.txn_first_offset.is_none() && now_ms.saturating_sub(e.last_timestamp) >= max_age_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.producers.remove(id);
            self.guards.remove(id);
        }
        expired.len()
    }

    /// Each producer's last data batch (its base offset, `None` when its epoch changed after
    /// it) and epoch: the batches the log cleaner keeps for the producer's state.
    pub fn last_entries(&self) -> HashMap<i64, (Option<i64>, i16)> {
        self.producers.iter().map(|(id, e)| (*id, (e.batches.back().map(|b| b.base_offset), e.epoch))).collect()
    }

    /// Every producer with state here (DescribeProducers).
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<_> = self
            .producers
            .iter()
            .map(|(id, e)| ActiveProducer {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }
}

impl ProducerStates {
    /// Forgets the batches at and above `offset` (a follower's truncation). A producer keeps
    /// the batches it had below the cut; the ids of producers left with none are returned and
    /// removed: the caller reads their older batches back from the log, or they are new there.
    ///
    /// Transactions follow the cut: one that began at or above it is gone; one whose marker was
    /// cut (its marker was above the high watermark, which a truncation never passes) is open
    /// again. Verification guards are dropped.
    pub fn truncate_from(&mut self, offset: i64) -> Vec<i64> {
        self.guards.clear();
        for (first, id) in self.ongoing.split_off(&offset) {
            if let Some(e) = self.producers.get_mut(&id).filter(|e| e.txn_first_offset == Some(first)) {
                e.txn_first_offset = None;
            }
        }
        for (_, (id, first)) in self.unreplicated.split_off(&offset) {
            if first < offset {
                self.producers.entry(id).or_default().txn_first_offset = Some(first);
                self.ongoing.insert(first, id);
            }
        }
        let mut emptied = Vec::new();
        for (id, entry) in &mut self.producers {
            entry.batches.retain(|b| b.base_offset < offset);
            if entry.batches.is_empty() {
                emptied.push(*id);
            }
        }
        // A producer with an open transaction keeps its entry; its batches are read back too.
        self.producers.retain(|id, e| !(e.batches.is_empty() && e.txn_first_offset.is_none() && emptied.contains(id)));
        emptied
    }
}

/// Version of the snapshot layout [`ProducerStates::write_snapshot`] writes. Version 0 (before
/// transactions) is not read: the state is rebuilt by replaying the log.
const SNAPSHOT_VERSION: u16 = 1;

impl ProducerStates {
    /// Writes the state as of log end offset `end_offset` to `path`, for the next start-up after a
    /// clean close (Kafka's `.snapshot` files play this part). Layout, big-endian: version u16,
    /// end offset i64, producer count u32, then per producer its id i64, epoch i16, coordinator
    /// epoch i32, last timestamp i64, open transaction's first offset i64 (-1: none), batch count
    /// u8 and per batch first and last sequence i32 and base offset i64; then the count u32 of
    /// ended transactions whose markers may not be replicated, each as marker offset, producer id
    /// and first offset i64; then a CRC-32C of all that.
    pub fn write_snapshot(&self, path: &std::path::Path, end_offset: i64) -> Result<(), StorageError> {
        let mut out = Vec::with_capacity(22 + self.producers.len() * 71 + self.unreplicated.len() * 24);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&end_offset.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (id, entry) in &self.producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            out.extend_from_slice(&entry.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
            }
        }
        out.extend_from_slice(&(self.unreplicated.len() as u32).to_be_bytes());
        for (marker, (id, first)) in &self.unreplicated {
            out.extend_from_slice(&marker.to_be_bytes());
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&first.to_be_bytes());
        }
        out.extend_from_slice(&crc32c::crc32c(&out).to_be_bytes());
        std::fs::write(path, out)?;
        Ok(())
    }

    /// Reads what [`ProducerStates::write_snapshot`] wrote: the state and its log end offset.
    /// `None` when the file is missing, torn, of another version, or fails its CRC.
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
            let coordinator_epoch = i32::from_be_bytes(r.take()?);
            let last_timestamp = i64::from_be_bytes(r.take()?);
            let first = i64::from_be_bytes(r.take()?);
            let txn_first_offset = (first >= 0).then_some(first);
            let mut entry = ProducerEntry { epoch, batches: VecDeque::new(), txn_first_offset, coordinator_epoch, last_timestamp };
            for _ in 0..u8::from_be_bytes(r.take()?) {
                entry.batches.push_back(BatchRecord {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    base_offset: i64::from_be_bytes(r.take()?),
                });
            }
            if let Some(first) = txn_first_offset {
                states.ongoing.insert(first, id);
            }
            states.producers.insert(id, entry);
        }
        for _ in 0..u32::from_be_bytes(r.take()?) {
            let marker = i64::from_be_bytes(r.take()?);
            let id = i64::from_be_bytes(r.take()?);
            let first = i64::from_be_bytes(r.take()?);
            states.unreplicated.insert(marker, (id, first));
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

    fn txn_header(id: i64, offset: i64, seq: i32) -> BatchHeader {
        let mut h = BatchHeader::parse(&crate::storage::txn::testing::txn_batch(&[b"v"], id, 0, seq)).unwrap();
        h.base_offset = offset;
        h
    }

    fn marker_at(id: i64, offset: i64) -> BatchHeader {
        let mut h = BatchHeader::parse(&ControlMarker { commit: false, coordinator_epoch: 1 }.build(id, 0, 0)).unwrap();
        h.base_offset = offset;
        h
    }

    #[test]
    fn the_last_stable_offset_waits_for_markers_below_the_high_watermark_and_survives_snapshots() {
        let mut s = ProducerStates::default();
        s.record(&txn_header(1, 10, 0));
        s.record(&txn_header(2, 11, 0));
        s.record(&txn_header(1, 12, 1));
        assert_eq!(s.last_stable_offset(13), 10);
        let abort = ControlMarker { commit: false, coordinator_epoch: 1 };
        let entry = s.record_marker(&marker_at(1, 13), abort).unwrap();
        assert_eq!((entry.first_offset, entry.last_offset, entry.last_stable_offset), (10, 13, 11));
        assert_eq!(s.last_stable_offset(13), 10, "the marker is not below the high watermark yet");
        assert_eq!(s.last_stable_offset(14), 11);
        assert!(matches!(s.check_marker(1, 0, 0), Err(StorageError::CoordinatorFenced { .. })));
        assert!(s.check_marker(1, 0, 1).is_ok());

        let path = std::env::temp_dir().join(format!("ringlog-txn-snapshot-{}", std::process::id()));
        s.write_snapshot(&path, 14).unwrap();
        let (mut back, _) = ProducerStates::read_snapshot(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.last_stable_offset(13), 10);
        assert_eq!(back.active(), s.active());

        // A follower cut at 13 reopens producer 1's transaction; one at 11 also drops producer 2's.
        back.truncate_from(13);
        assert_eq!(back.last_stable_offset(100), 10);
        back.truncate_from(11);
        assert_eq!(back.last_stable_offset(100), 10);
        back.truncate_from(10);
        assert_eq!(back.last_stable_offset(100), 100);
        s.prune_decided(14);
        assert_eq!(s.last_stable_offset(100), 11);
    }

    #[test]
    fn idle_producers_expire_unless_a_transaction_is_open() {
        let mut s = ProducerStates::default();
        let mut idle = header(0, 1, 0);
        idle.max_timestamp = 1_000;
        s.record(&idle);
        let mut recent = header(0, 1, 0);
        recent.producer_id = 8;
        recent.max_timestamp = 9_000;
        s.record(&recent);
        assert_eq!(s.expire(10_000, 5_000), 1, "only the producer idle for 9 s of a 5 s limit");
        assert!(s.check(&header(1, 1, 0)).is_err(), "a forgotten producer starts again at 0");
        assert_eq!(s.active().len(), 1);
        assert_eq!(s.expire(100_000, 5_000), 1);
        assert!(s.active().is_empty());
    }

    #[test]
    fn unknown_producer_must_start_at_zero() {
        let s = ProducerStates::default();
        assert!(s.check(&header(9, 1, 0)).is_err());
    }
}
