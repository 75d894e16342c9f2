//! One transactional id and the transitions of its transaction, as pure functions: each returns
//! the metadata to write (the coordinator applies it once `__transaction_state` holds it) or the
//! error to answer. Kafka's rules, from TransactionCoordinator and TransactionMetadata.
//!
//! Producer epochs: InitProducerId bumps the epoch (so an older producer of the same id is
//! fenced); when the epoch is exhausted the id gets a new producer id at epoch 0. With
//! transaction version 2 (KIP-890) EndTxn bumps the epoch too, so every transaction has its own.

use std::collections::{BTreeMap, BTreeSet};

use super::error::TxnError;
use super::records::TxnValue;
use crate::types::{TopicPartition, TxnMarker};

/// Kafka's TransactionState, with its stored id and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// No transaction yet since the last InitProducerId.
    Empty,
    /// Partitions were added; records may be written.
    Ongoing,
    /// Commit decided and durable; markers being written.
    PrepareCommit,
    /// Abort decided and durable; markers being written.
    PrepareAbort,
    /// Every commit marker is written.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
    /// The id expired and is being removed.
    Dead,
    /// A newer producer fences an ongoing transaction (the abort follows).
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, in id order.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The id stored in `__transaction_state` (TransactionState.id).
    pub fn id(self) -> i8 {
        TxnState::ALL.iter().position(|s| *s == self).unwrap_or(0) as i8
    }

    /// The state of a stored id.
    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.get(usize::try_from(id).ok()?).copied()
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions report it.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state of a name (ListTransactions filters).
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the transaction is between its decision and its last marker.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence)
    }
}

/// An epoch at or past this one is exhausted: the id moves to a new producer id (Kafka's
/// `Short.MaxValue - 1`).
const EXHAUSTED_EPOCH: i16 = i16::MAX - 1;

/// A transactional id's state on its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    /// The transactional id.
    pub transactional_id: String,
    /// Producer id in use.
    pub producer_id: i64,
    /// Producer id before the last rotation (-1: none).
    pub prev_producer_id: i64,
    /// Producer id the transaction ends on (TV2 epoch exhaustion; -1: none).
    pub next_producer_id: i64,
    /// Current epoch (-1 before the first InitProducerId).
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1: none); not stored, as in Kafka.
    pub last_producer_epoch: i16,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// The transaction's state.
    pub state: TxnState,
    /// Partitions in the transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the transaction started (ms; -1 when none runs).
    pub start_ms: i64,
    /// When the state last changed (ms).
    pub last_update_ms: i64,
    /// The client's transaction version (2: KIP-890 epoch bump per transaction).
    pub client_txn_version: i16,
    /// A write of this id is in flight: other requests wait (CONCURRENT_TRANSACTIONS).
    pub pending: bool,
}

/// What an InitProducerId does to an existing id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Write this (epoch bumped or a new producer id) and answer its producer id and epoch.
    Bump(TxnMetadata),
    /// A retry of an InitProducerId already done: answer the current id and epoch, writing nothing.
    Retry,
    /// An ongoing transaction is fenced: write this abort (epoch bumped), answer
    /// CONCURRENT_TRANSACTIONS; the producer retries once the abort completes.
    FenceOngoing(TxnMetadata),
}

/// What an EndTxn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// Write this PrepareCommit/PrepareAbort, answer, then write the markers.
    Prepare(TxnMetadata),
    /// A retry of an EndTxn already completed: answer success, writing nothing.
    AlreadyDone,
}

impl TxnMetadata {
    /// A new id holding `producer_id`, before its first epoch.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            prev_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            client_txn_version: 0,
            pending: false,
        }
    }

    /// The stored form.
    pub fn to_value(&self) -> TxnValue {
        let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for tp in &self.partitions {
            partitions.entry(tp.topic.clone()).or_default().push(tp.partition);
        }
        TxnValue {
            producer_id: self.producer_id,
            prev_producer_id: self.prev_producer_id,
            next_producer_id: self.next_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions,
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
            client_txn_version: self.client_txn_version,
        }
    }

    /// The state a stored value describes (replay).
    pub fn from_value(transactional_id: &str, v: TxnValue) -> Self {
        let partitions = v.partitions.iter().flat_map(|(t, ids)| ids.iter().map(move |p| TopicPartition::new(t.clone(), *p))).collect();
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            prev_producer_id: v.prev_producer_id,
            next_producer_id: v.next_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: -1,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions,
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            client_txn_version: v.client_txn_version,
            pending: false,
        }
    }

    fn concurrent(&self) -> TxnError {
        TxnError::ConcurrentTransactions { transactional_id: self.transactional_id.clone() }
    }

    fn wrong_producer(&self, producer_id: i64) -> TxnError {
        TxnError::InvalidProducerIdMapping { transactional_id: self.transactional_id.clone(), producer_id }
    }

    fn invalid(&self, operation: &'static str) -> TxnError {
        TxnError::InvalidTxnState { operation, state: self.state.name() }
    }

    /// Whether the next InitProducerId must move to a new producer id.
    pub fn epoch_exhausted(&self) -> bool {
        self.producer_epoch >= EXHAUSTED_EPOCH
    }

    /// Whether a TV2 EndTxn must end on a new producer id (its bumped epoch is exhausted).
    pub fn end_exhausts_epoch(&self) -> bool {
        self.producer_epoch.saturating_add(1) >= EXHAUSTED_EPOCH
    }

    /// InitProducerId on an existing id. `expected` is the producer's current id and epoch
    /// (KIP-360 recovery; `None` for a new producer); `new_producer_id` is set when
    /// [`Self::epoch_exhausted`].
    pub fn init(&self, timeout_ms: i32, expected: Option<(i64, i16)>, new_producer_id: Option<i64>, now_ms: i64) -> Result<InitStep, TxnError> {
        if self.pending || self.state.is_preparing() {
            return Err(self.concurrent());
        }
        if let Some((pid, epoch)) = expected {
            if pid != self.producer_id {
                // A retry after a rotation names the producer id it had.
                return if pid == self.prev_producer_id { Ok(InitStep::Retry) } else { Err(TxnError::ProducerFenced { epoch, current: self.producer_epoch }) };
            }
            if self.producer_epoch != -1 && epoch != self.producer_epoch {
                return if epoch == self.last_producer_epoch && self.state != TxnState::Ongoing {
                    Ok(InitStep::Retry)
                } else {
                    Err(TxnError::ProducerFenced { epoch, current: self.producer_epoch })
                };
            }
        }
        let mut next = self.clone();
        next.last_update_ms = now_ms;
        if self.state == TxnState::Ongoing {
            // Fenced: the abort is written with a higher epoch, so the old producer's writes stop.
            next.last_producer_epoch = self.producer_epoch;
            next.producer_epoch = self.producer_epoch.saturating_add(1);
            next.state = TxnState::PrepareAbort;
            return Ok(InitStep::FenceOngoing(next));
        }
        match new_producer_id {
            Some(pid) => {
                next.prev_producer_id = self.producer_id;
                next.producer_id = pid;
                next.producer_epoch = 0;
                next.last_producer_epoch = -1;
            }
            None => {
                next.last_producer_epoch = self.producer_epoch;
                next.producer_epoch = self.producer_epoch + 1;
            }
        }
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        Ok(InitStep::Bump(next))
    }

    /// Checks that a request comes from the id's current producer.
    fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(self.wrong_producer(producer_id));
        }
        if producer_epoch != self.producer_epoch {
            return Err(TxnError::ProducerFenced { epoch: producer_epoch, current: self.producer_epoch });
        }
        Ok(())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, and a TV2 produce's implicit add): `None` when
    /// every partition is already in the ongoing transaction (nothing to write).
    pub fn add_partitions(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        parts: &[TopicPartition],
        client_txn_version: i16,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.pending || self.state.is_preparing() {
            return Err(self.concurrent());
        }
        if self.state == TxnState::Dead {
            return Err(self.wrong_producer(producer_id));
        }
        if self.state == TxnState::Ongoing && parts.iter().all(|p| self.partitions.contains(p)) {
            return Ok(None);
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.start_ms = now_ms;
            next.partitions.clear();
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(parts.iter().cloned());
        next.client_txn_version = client_txn_version.max(self.client_txn_version);
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// AddPartitionsToTxn with `verify_only` (KIP-890 part 1): whether each partition is in the
    /// ongoing transaction of this producer (INVALID_TXN_STATE when it is not).
    pub fn verify(&self, producer_id: i64, producer_epoch: i16, part: &TopicPartition) -> Result<(), TxnError> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.state == TxnState::Ongoing && self.partitions.contains(part) {
            Ok(())
        } else {
            Err(self.invalid("produce to a partition not in the transaction"))
        }
    }

    /// EndTxn. `tv2`: the client speaks transaction version 2 (EndTxn v5+), so the epoch is
    /// bumped; `new_producer_id` is set when [`Self::end_exhausts_epoch`] under TV2.
    pub fn end(&self, producer_id: i64, producer_epoch: i16, commit: bool, tv2: bool, new_producer_id: Option<i64>, now_ms: i64) -> Result<EndStep, TxnError> {
        let completed = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        let completed_state = matches!(self.state, TxnState::CompleteCommit | TxnState::CompleteAbort);
        if producer_id != self.producer_id {
            // TV2: a retry after the transaction ended on a new producer id.
            if tv2 && producer_id == self.prev_producer_id && self.state == completed {
                return Ok(EndStep::AlreadyDone);
            }
            return Err(self.wrong_producer(producer_id));
        }
        // TV2 bumped the epoch when it prepared: a retry carries the one before.
        let retry = tv2 && producer_epoch == self.producer_epoch.wrapping_sub(1) && (self.state.is_preparing() || completed_state);
        if producer_epoch != self.producer_epoch && !retry {
            return Err(TxnError::ProducerFenced { epoch: producer_epoch, current: self.producer_epoch });
        }
        if self.pending {
            return Err(self.concurrent());
        }
        let operation = if commit { "commit" } else { "abort" };
        match self.state {
            TxnState::Ongoing => Ok(EndStep::Prepare(self.prepare(commit, tv2, new_producer_id, now_ms))),
            TxnState::PrepareCommit if commit => Err(self.concurrent()),
            TxnState::PrepareAbort if !commit => Err(self.concurrent()),
            TxnState::PrepareEpochFence => Err(self.concurrent()),
            s if s == completed && (retry || !tv2) => Ok(EndStep::AlreadyDone),
            // TV2: aborting with no transaction open still bumps the epoch (KIP-890).
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort if tv2 && !commit && !retry => {
                Ok(EndStep::Prepare(self.prepare(false, true, new_producer_id, now_ms)))
            }
            _ => Err(self.invalid(operation)),
        }
    }

    fn prepare(&self, commit: bool, bump: bool, new_producer_id: Option<i64>, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        if bump {
            next.last_producer_epoch = self.producer_epoch;
            next.producer_epoch = self.producer_epoch.saturating_add(1);
            next.next_producer_id = new_producer_id.unwrap_or(-1);
            next.client_txn_version = next.client_txn_version.max(2);
        }
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.last_update_ms = now_ms;
        next
    }

    /// The proactive abort of a transaction past its timeout: the epoch is bumped so the
    /// producer that let it run out is fenced.
    pub fn abort_timed_out(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.prepare(false, false, None, now_ms);
        if self.producer_epoch < i16::MAX {
            next.last_producer_epoch = self.producer_epoch;
            next.producer_epoch = self.producer_epoch + 1;
        }
        next
    }

    /// Whether an ongoing transaction has outlived its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && !self.pending && self.start_ms + i64::from(self.timeout_ms) < now_ms
    }

    /// The producer id and epoch the producer uses next (EndTxn v5's answer).
    pub fn next_producer(&self) -> (i64, i16) {
        if self.next_producer_id != -1 { (self.next_producer_id, 0) } else { (self.producer_id, self.producer_epoch) }
    }

    /// The markers that end a prepared transaction in each of its partitions.
    pub fn markers(&self, coordinator_epoch: i32) -> Vec<(TopicPartition, TxnMarker)> {
        let commit = self.state == TxnState::PrepareCommit;
        let marker = TxnMarker { producer_id: self.producer_id, producer_epoch: self.producer_epoch, coordinator_epoch, commit };
        self.partitions.iter().map(|tp| (tp.clone(), marker)).collect()
    }

    /// The Complete state after every marker landed; a TV2 rotation takes its new producer id.
    pub fn complete(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = if self.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        next.partitions.clear();
        if self.next_producer_id != -1 {
            next.prev_producer_id = self.producer_id;
            next.producer_id = self.next_producer_id;
            next.next_producer_id = -1;
            next.producer_epoch = 0;
            next.last_producer_epoch = -1;
        }
        next.last_update_ms = now_ms;
        next
    }
}
