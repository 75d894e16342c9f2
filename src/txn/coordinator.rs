//! The transaction coordinator of one shard: its transactional ids, the `__transaction_state`
//! partitions it serves, replay, the durable write every change goes through, and the dispatch
//! of each [`TxnCall`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::channel::mpsc;

use super::api::{TxnCall, TxnReply};
use super::error::{outcome_code, TxnError};
use super::records::{decode_key, encode_key, TxnValue};
use super::serving::{ServedPartitions, TxnLoadId};
use super::state::TxnMetadata;
use super::partition_for;
use crate::codes::ErrorCode;
use crate::config::TxnConfig;
use crate::types::{TopicPartition, TxnMarker};

/// What the coordinator needs from its shard.
pub trait TxnLog {
    /// Appends records to a `__transaction_state` partition with acks=all; the log's Kafka error
    /// code on failure.
    fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> impl std::future::Future<Output = Result<(), ErrorCode>>;
    /// Reserves a new producer id (the metadata quorum's `AllocateProducerId`).
    fn allocate_producer_id(&self) -> impl std::future::Future<Output = Result<i64, ErrorCode>>;
    /// Writes commit/abort markers (acks=all) and answers each partition's outcome.
    fn write_markers(&self, markers: Vec<(TopicPartition, TxnMarker)>) -> impl std::future::Future<Output = Vec<(TopicPartition, ErrorCode)>>;
    /// Whether a topic partition exists (partitions of a missing topic are refused).
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
    /// Waits until `change` fires or `at_most` passes (the runtime's timer).
    fn pause(&self, change: event_listener::EventListener, at_most: std::time::Duration) -> impl std::future::Future<Output = ()>;
}

/// The transaction coordinator of one shard. `!Send`.
pub struct TxnCoordinator {
    pub(super) config: TxnConfig,
    pub(super) txns: RefCell<HashMap<String, TxnMetadata>>,
    pub(super) served: RefCell<ServedPartitions>,
    /// Ids whose markers a task is writing now (one task per id).
    pub(super) marking: RefCell<HashSet<String>>,
    wake: mpsc::UnboundedSender<()>,
    wake_rx: RefCell<Option<mpsc::UnboundedReceiver<()>>>,
    /// Fires after every state write, done or failed (a request that met one in flight waits).
    pub(super) state_written: event_listener::Event,
}

impl TxnCoordinator {
    /// An empty coordinator that serves no id until a partition's load finishes.
    pub fn new(config: TxnConfig) -> Self {
        let (wake, wake_rx) = mpsc::unbounded();
        TxnCoordinator {
            config,
            txns: RefCell::new(HashMap::new()),
            served: RefCell::new(ServedPartitions::default()),
            marking: RefCell::new(HashSet::new()),
            wake,
            wake_rx: RefCell::new(Some(wake_rx)),
            state_written: event_listener::Event::new(),
        }
    }

    /// The `__transaction_state` partition that stores `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.state_log_partitions)
    }

    /// The settings the coordinator runs with.
    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The receiver that is woken whenever markers are due (taken once, by the shard's driver).
    pub fn take_wake_receiver(&self) -> Option<mpsc::UnboundedReceiver<()>> {
        self.wake_rx.borrow_mut().take()
    }

    /// Tells the driver that markers are due.
    pub(super) fn wake(&self) {
        // The driver may be gone (shutdown); nothing is lost, the next load resends.
        let _ = self.wake.unbounded_send(());
    }

    /// Replays one record of `__transaction_state` (a load).
    pub fn replay(&self, key: &[u8], value: Option<&[u8]>) {
        let Some(id) = decode_key(key) else { return };
        let mut txns = self.txns.borrow_mut();
        match value.map(TxnValue::decode) {
            Some(Some(v)) => {
                txns.insert(id.clone(), TxnMetadata::from_value(&id, v));
            }
            Some(None) => tracing::warn!(transactional_id = %id, "undecodable __transaction_state value skipped"),
            None => {
                txns.remove(&id);
            }
        }
    }

    /// Starts loading `partition`, led here at `coordinator_epoch`: its ids answer
    /// COORDINATOR_LOAD_IN_PROGRESS until [`Self::finish_load`]. `None` when it is already here.
    pub fn begin_load(&self, partition: i32, coordinator_epoch: i32) -> Option<TxnLoadId> {
        let load = self.served.borrow_mut().begin(partition, coordinator_epoch)?;
        self.drop_ids_of(partition);
        Some(load)
    }

    /// Whether `load` is still wanted: false once the partition was unloaded.
    pub fn load_is_current(&self, load: TxnLoadId) -> bool {
        self.served.borrow().is_current(load)
    }

    /// Ends `load`: the partition's ids are served from now on, and the markers of every
    /// transaction it left prepared are due. False when it was overtaken.
    pub fn finish_load(&self, load: TxnLoadId) -> bool {
        let done = self.served.borrow_mut().finish(load);
        if done {
            self.wake();
        }
        done
    }

    /// Stops serving `partition` (leadership lost): its ids are dropped. The number dropped.
    pub fn unload(&self, partition: i32) -> usize {
        let was_here = self.served.borrow_mut().stop(partition);
        let dropped = self.drop_ids_of(partition);
        if was_here || dropped > 0 {
            tracing::info!(partition, transactional_ids = dropped, "transaction coordination of partition given up");
        }
        dropped
    }

    fn drop_ids_of(&self, partition: i32) -> usize {
        let mut txns = self.txns.borrow_mut();
        let before = txns.len();
        txns.retain(|id, _| self.partition_of(id) != partition);
        before - txns.len()
    }

    /// The coordinator epoch of `transactional_id`'s partition, or why it is not served here.
    pub(super) fn check_serving(&self, transactional_id: &str) -> Result<i32, TxnError> {
        self.served.borrow().check(self.partition_of(transactional_id))
    }

    /// Writes `next` (acks=all) and applies it once `__transaction_state` holds it. While the
    /// write is in flight the id is `pending`; if it fails, the state before stays. Either way
    /// [`TxnCoordinator::state_written`] fires.
    pub(super) async fn write(&self, next: TxnMetadata, log: &impl TxnLog) -> Result<TxnMetadata, TxnError> {
        let written = self.write_state(next, log).await;
        self.state_written.notify(usize::MAX);
        written
    }

    async fn write_state(&self, next: TxnMetadata, log: &impl TxnLog) -> Result<TxnMetadata, TxnError> {
        let id = next.transactional_id.clone();
        let partition = self.partition_of(&id);
        let epoch = self.check_serving(&id)?;
        let existed = {
            let mut txns = self.txns.borrow_mut();
            match txns.get_mut(&id) {
                Some(m) => {
                    m.pending = true;
                    true
                }
                None => {
                    txns.insert(id.clone(), TxnMetadata { pending: true, ..next.clone() });
                    false
                }
            }
        };
        let record = (encode_key(&id), Some(next.to_value().encode()));
        let written = log.append(partition, vec![record]).await;
        // The write awaited: the partition may have moved, and this state is not ours then.
        if self.served.borrow().check(partition) != Ok(epoch) {
            return Err(TxnError::NotCoordinator { partition });
        }
        let mut txns = self.txns.borrow_mut();
        match written {
            Ok(()) => {
                let applied = TxnMetadata { pending: false, ..next };
                tracing::debug!(transactional_id = %id, state = applied.state.name(), producer_id = applied.producer_id,
                    producer_epoch = applied.producer_epoch, "transaction state written");
                txns.insert(id, applied.clone());
                Ok(applied)
            }
            Err(code) => {
                tracing::warn!(transactional_id = %id, partition, error = ?code, "transaction state write failed");
                if existed {
                    if let Some(m) = txns.get_mut(&id) {
                        m.pending = false;
                    }
                } else {
                    txns.remove(&id);
                }
                Err(TxnError::StateWrite(code))
            }
        }
    }

    /// Serves one transaction request. An id whose `__transaction_state` partition is not served
    /// here is refused first (NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while it loads).
    pub async fn handle(&self, call: TxnCall, log: &impl TxnLog) -> TxnReply {
        if let Some(Err(e)) = call.transactional_id().filter(|id| !id.is_empty()).map(|id| self.check_serving(id)) {
            tracing::debug!(error = %e, "transaction request refused");
            return TxnReply::Refused(ErrorCode::from(&e));
        }
        match call {
            TxnCall::InitProducerId { transactional_id, timeout_ms, expected } => {
                let outcome = self.init_producer_id(&transactional_id, timeout_ms, expected, log).await;
                let (producer_id, producer_epoch) = outcome.as_ref().map_or((-1, -1), |p| *p);
                TxnReply::Producer { code: outcome_code(&outcome), producer_id, producer_epoch }
            }
            TxnCall::AddPartitions { transactional_id, producer_id, producer_epoch, partitions, verify_only, client_txn_version } => {
                TxnReply::Partitions(
                    self.add_partitions(&transactional_id, producer_id, producer_epoch, partitions, verify_only, client_txn_version, log).await,
                )
            }
            TxnCall::EndTxn { transactional_id, producer_id, producer_epoch, commit, tv2 } => {
                let outcome = self.end_txn(&transactional_id, producer_id, producer_epoch, commit, tv2, log).await;
                let (producer_id, producer_epoch) = outcome.as_ref().map_or((-1, -1), |p| *p);
                TxnReply::Producer { code: outcome_code(&outcome), producer_id, producer_epoch }
            }
            TxnCall::Describe { transactional_id } => {
                TxnReply::Described(self.describe(&transactional_id).map(Box::new).map_err(|e| ErrorCode::from(&e)))
            }
            TxnCall::List { states, producer_ids, min_duration_ms } => TxnReply::Listed(self.list(&states, &producer_ids, min_duration_ms)),
        }
    }
}
