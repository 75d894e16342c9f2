//! What a cleaning pass knows of transactions as it walks the log in offset order: which data
//! batches belong to aborted transactions (they go), and which markers may go, as Kafka's
//! `CleanedTransactionMetadata` decides it:
//! - an abort marker stays while any batch of its transaction is still in the log (the pass
//!   that removes the last of them still sees them), so a read_committed consumer that meets
//!   one of those batches also meets the marker that ends it; with its `.txnindex` entry;
//! - a commit marker stays while any batch of its transaction is in the log;
//! - a marker with no batch left may go once its delete horizon (KIP-534, stamped by the first
//!   pass that finds it so) has passed; its abort entry leaves the `.txnindex` at once, since no
//!   batch is left for a consumer to skip.
//!
//! Which batch of a producer keeps its state (and so stays, empty if need be) is decided from
//! the partition's producer state ([`LastOfProducers`]), as Kafka's active producers decide it.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::storage::batch::BatchHeader;
use crate::storage::txn::{AbortedTxn, ControlMarker};

/// An aborted transaction the walk is inside of, and whether it saw a batch of it.
struct OngoingAbort {
    txn: AbortedTxn,
    saw_batch: bool,
}

/// Transaction state of one walk over a log, from a start offset upward.
pub struct CleanedTxns {
    /// Aborted transactions not begun yet at the walk's position, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producer id → the aborted transaction the walk is in.
    aborting: HashMap<i64, OngoingAbort>,
    /// Producers whose committed transaction the walk saw a batch of, marker not reached.
    committing: HashSet<i64>,
    /// Abort entries whose marker the walk passed with no batch of the transaction left.
    emptied: Vec<AbortedTxn>,
}

/// What the walk says of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnVerdict {
    /// Data outside any aborted transaction, or a marker that must stay.
    Keep,
    /// A data batch of an aborted transaction: its records go.
    Aborted,
    /// A marker whose transaction has no batch left: it may go after its delete horizon.
    EmptyTxnMarker,
}

impl CleanedTxns {
    /// A walk from `from` over a log with `aborted` transactions (any order): those whose
    /// marker is below `from` are behind the walk and play no part.
    pub fn new(aborted: &[AbortedTxn], from: i64) -> Self {
        let mut pending: Vec<AbortedTxn> = aborted.iter().filter(|a| a.last_offset >= from).copied().collect();
        pending.sort_by_key(|a| a.first_offset);
        CleanedTxns { pending: pending.into(), aborting: HashMap::new(), committing: HashSet::new(), emptied: Vec::new() }
    }

    fn begin_up_to(&mut self, offset: i64) {
        while self.pending.front().is_some_and(|a| a.first_offset <= offset) {
            if let Some(txn) = self.pending.pop_front() {
                self.aborting.entry(txn.producer_id).or_insert(OngoingAbort { txn, saw_batch: false });
            }
        }
    }

    /// The next batch of the walk (`batch` whole, for a marker's type).
    pub fn next(&mut self, h: &BatchHeader, batch: &[u8]) -> TxnVerdict {
        self.begin_up_to(h.last_offset());
        if !h.is_transactional() || h.producer_id < 0 {
            return TxnVerdict::Keep;
        }
        if !h.is_control() {
            return match self.aborting.get_mut(&h.producer_id) {
                Some(ongoing) => {
                    ongoing.saw_batch = true;
                    TxnVerdict::Aborted
                }
                None => {
                    self.committing.insert(h.producer_id);
                    TxnVerdict::Keep
                }
            };
        }
        // A control batch emptied by an earlier cleaning ends nothing.
        let Some(marker) = ControlMarker::parse(batch) else { return TxnVerdict::EmptyTxnMarker };
        let had_batches = if marker.commit {
            self.committing.remove(&h.producer_id)
        } else {
            match self.aborting.remove(&h.producer_id) {
                Some(ongoing) if !ongoing.saw_batch => {
                    self.emptied.push(ongoing.txn);
                    false
                }
                Some(_) => true,
                None => false,
            }
        };
        if had_batches { TxnVerdict::Keep } else { TxnVerdict::EmptyTxnMarker }
    }

    /// The abort entries whose marker was passed with no batch left since the last call: they
    /// leave the aborted-transaction index.
    pub fn take_emptied(&mut self) -> Vec<AbortedTxn> {
        std::mem::take(&mut self.emptied)
    }
}

/// Each producer's batch that holds its state, from the partition's producer state: the batch
/// with its last sequence, or, when its last entry is a marker that changed its epoch (a
/// transaction of version 2 ends so), that marker. These batches stay, emptied if need be.
#[derive(Debug, Default, Clone)]
pub struct LastOfProducers {
    /// Producer id → (base offset of its last data batch, or `None`; its epoch).
    pub last: HashMap<i64, (Option<i64>, i16)>,
}

impl LastOfProducers {
    /// Whether `h` holds its producer's state.
    pub fn holds_state(&self, h: &BatchHeader) -> bool {
        match self.last.get(&h.producer_id) {
            Some((Some(base), _)) => !h.is_control() && h.base_offset == *base,
            Some((None, epoch)) => h.is_control() && h.producer_epoch == *epoch,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch;
    use crate::storage::txn::testing::txn_records;

    fn data(base: i64, count: usize, producer_id: i64) -> bytes::Bytes {
        let records: Vec<batch::RecordRef<'_>> = (0..count).map(|_| (Some(&b"k"[..]), Some(&b"v"[..]))).collect();
        batch::stamp(&txn_records(&records, producer_id, 0, 0), base, 0, None).to_bytes()
    }

    fn marker(at: i64, producer_id: i64, commit: bool) -> bytes::Bytes {
        batch::stamp(&ControlMarker { commit, coordinator_epoch: 0 }.build(producer_id, 0, 0), at, 0, None).to_bytes()
    }

    fn walk(txns: &mut CleanedTxns, batches: &[bytes::Bytes]) -> Vec<TxnVerdict> {
        batches.iter().map(|b| txns.next(&BatchHeader::parse(b).unwrap(), b)).collect()
    }

    #[test]
    fn markers_stay_while_their_batches_do_and_may_go_after() {
        use TxnVerdict::*;
        let abort = AbortedTxn { producer_id: 7, first_offset: 0, last_offset: 4, last_stable_offset: 5 };
        // Producer 7 aborts [0, 4); producer 8 commits [2, 6).
        let log = [data(0, 2, 7), data(2, 2, 8), data(3, 1, 7), marker(4, 7, false), marker(5, 8, true)];
        let mut first = CleanedTxns::new(&[abort], 0);
        assert_eq!(walk(&mut first, &log), vec![Aborted, Keep, Aborted, Keep, Keep]);
        assert!(first.take_emptied().is_empty(), "the abort still had batches: its entry stays");
        // The next pass: the aborted batches are gone, producer 8's superseded ones too.
        let mut second = CleanedTxns::new(&[abort], 0);
        assert_eq!(walk(&mut second, &[marker(4, 7, false), marker(5, 8, true)]), vec![EmptyTxnMarker, EmptyTxnMarker]);
        assert_eq!(second.take_emptied(), vec![abort]);
        // A walk that starts past a marker knows nothing of its transaction.
        let mut later = CleanedTxns::new(&[abort], 5);
        assert_eq!(walk(&mut later, &[data(6, 1, 7)]), vec![Keep], "producer 7's next transaction is not aborted");
    }

    #[test]
    fn the_batch_with_a_producers_state_is_known() {
        let last = LastOfProducers { last: [(7, (Some(3), 0)), (8, (None, 2))].into_iter().collect() };
        let h = |b: &bytes::Bytes| BatchHeader::parse(b).unwrap();
        assert!(last.holds_state(&h(&data(3, 1, 7))));
        assert!(!last.holds_state(&h(&data(0, 2, 7))));
        assert!(!last.holds_state(&h(&marker(4, 7, false))), "a marker after the last data batch, same epoch");
        let tv2_marker = batch::stamp(&ControlMarker { commit: true, coordinator_epoch: 0 }.build(8, 2, 0), 9, 0, None).to_bytes();
        assert!(last.holds_state(&h(&tv2_marker)), "the marker that set the epoch");
        assert!(!last.holds_state(&h(&data(1, 1, 9))), "an unknown producer holds nothing");
    }
}
