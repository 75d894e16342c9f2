//! The transaction coordinator's side of the core: transaction calls routed to the coordinator's
//! core, the coordinator's log (the `__transaction_state` partitions this core owns and leads),
//! the loads that bring a partition's transactional ids in, and the driver that writes markers.
//!
//! ```text
//!  single node:  start-up ─► load_txns ─► replay (every owned partition) ─► served
//!  cluster:      Created(leader = me) / BecameLeader ─► begin_load ─► high watermark ≥ log end
//!                    ─► replay ─► finish_load ─► served (prepared transactions' markers resent)
//!                BecameFollower / Removed ─► unload (state dropped; NOT_COORDINATOR)
//!  driver:       woken by a decision (or every 100 ms) ─► one task per prepared id:
//!                    write_txn_markers ─► retry with backoff until every partition has its marker
//!                    ─► CompleteCommit/CompleteAbort written
//!                every cleanup interval ─► abort timed-out transactions, expire idle ids
//! ```
//!
//! Every `__transaction_state` write is answered once the ISR holds it (acks=all), as Kafka's
//! coordinator appends: a decision outlives its coordinator.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use super::coordinator_log::{CoordinatorLoad, NO_PRODUCER, load_at_start, load_led_partition};
use super::messages::ShardRequest;
use super::{Router, Shard};
use crate::codes::ErrorCode;
use crate::metadata::{MetadataMutation, PartitionChange};
use crate::storage::batch::BatchHeader;
use crate::storage::StorageError;
use crate::txn::{TxnCall, TxnCoordinator, TxnLoadId, TxnLog, TxnReply, TXN_STATE_TOPIC};
use crate::types::{ShardId, TopicPartition, TxnMarker};

/// How long a `__transaction_state` write waits for the ISR.
const TXN_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the driver looks for due work when nothing wakes it.
const DRIVER_TICK: Duration = Duration::from_millis(100);

/// The first and the longest wait between two tries of a transaction's markers.
const MARKER_RETRY_MIN: Duration = Duration::from_millis(50);
const MARKER_RETRY_MAX: Duration = Duration::from_secs(2);

/// What a partition change means for the transactional ids this core coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnCoordinationMove {
    /// This broker now leads `__transaction_state` partition `partition` at `coordinator_epoch`.
    Load {
        /// The partition.
        partition: i32,
        /// Its leader epoch: the coordinator epoch its markers carry.
        coordinator_epoch: i32,
    },
    /// This broker no longer leads the partition (or holds no replica): drop its ids.
    Unload(i32),
}

/// The coordination move a partition change calls for, if any (only `__transaction_state`
/// leadership matters).
pub fn txn_coordination_move(change: &PartitionChange, node_id: i32) -> Option<TxnCoordinationMove> {
    let (tp, load) = match change {
        PartitionChange::Created { tp, leader, leader_epoch, .. } => (tp, (*leader == node_id).then_some(*leader_epoch)),
        PartitionChange::BecameLeader { tp, leader_epoch, .. } => (tp, Some(*leader_epoch)),
        PartitionChange::BecameFollower { tp, .. } | PartitionChange::Removed { tp, .. } => (tp, None),
        PartitionChange::IsrChanged { .. } | PartitionChange::ConfigChanged { .. } => return None,
    };
    (tp.topic == TXN_STATE_TOPIC).then_some(match load {
        Some(coordinator_epoch) => TxnCoordinationMove::Load { partition: tp.partition, coordinator_epoch },
        None => TxnCoordinationMove::Unload(tp.partition),
    })
}

impl Router {
    /// Runs a transaction operation on the coordinator of `transactional_id`: the owner of its
    /// `__transaction_state` partition.
    pub async fn txn_call(&self, transactional_id: &str, call: TxnCall) -> TxnReply {
        let partition = crate::txn::partition_for(transactional_id, self.shard.config.txn.state_log_partitions);
        let Some(owner) = self.shard.metadata.load().owner(TXN_STATE_TOPIC, partition) else {
            return TxnReply::Unavailable;
        };
        self.call(owner, ShardRequest::Txn(Box::new(call))).await.into_txn().unwrap_or(TxnReply::Unavailable)
    }

    /// Runs `make()` on every shard's coordinator and collects the answers (ListTransactions).
    pub async fn txn_call_all(&self, make: impl Fn() -> TxnCall) -> Vec<TxnReply> {
        let answers = self.broadcast((0..self.nr_shards).map(ShardId), || ShardRequest::Txn(Box::new(make()))).await;
        answers.into_iter().map(|a| a.into_txn().unwrap_or(TxnReply::Unavailable)).collect()
    }

    /// KIP-890 for the produce path: whether each partition is in the ongoing transaction of
    /// this producer (`add`: add those that are not, as a TV2 producer's first write to a
    /// partition does). Answers each partition's code, in the order given. The coordinator is
    /// the leader of the id's `__transaction_state` partition: here, or asked over the wire
    /// (AddPartitionsToTxn v4/v5, as a partition leader sends it).
    pub async fn txn_verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        add: bool,
    ) -> Vec<(TopicPartition, ErrorCode)> {
        let partition = crate::txn::partition_for(transactional_id, self.shard.config.txn.state_log_partitions);
        let coordinator = self.shard.metadata.load().partition(TXN_STATE_TOPIC, partition).map(|p| p.leader);
        match coordinator {
            Some(leader) if leader == self.shard.config.node_id => {}
            Some(leader) if leader >= 0 => {
                return self.verify_remote_txn(leader, transactional_id, producer_id, producer_epoch, partitions, add).await;
            }
            _ => return partitions.into_iter().map(|tp| (tp, ErrorCode::COORDINATOR_NOT_AVAILABLE)).collect(),
        }
        let call = TxnCall::AddPartitions {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch,
            partitions: partitions.clone(),
            verify_only: !add,
            client_txn_version: if add { crate::txn::TRANSACTION_VERSION } else { 0 },
        };
        match self.txn_call(transactional_id, call).await {
            TxnReply::Partitions(answers) => answers,
            other => {
                let code = other.refusal_code();
                partitions.into_iter().map(|tp| (tp, code)).collect()
            }
        }
    }
}

impl TxnLog for Router {
    /// Appends as the partition's leader with acks=all: answered once the ISR holds the records.
    async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        self.shard.append_internal(&TopicPartition::new(TXN_STATE_TOPIC, partition), &records, &NO_PRODUCER, TXN_WRITE_TIMEOUT).await
    }

    async fn allocate_producer_id(&self) -> Result<i64, ErrorCode> {
        // Boxed: a mutation is a call to shard 0, which may be this shard's own `handle`, which
        // serves the transaction call that asks for this id; an unboxed future would contain itself.
        let mutation: std::pin::Pin<Box<dyn std::future::Future<Output = _> + '_>> = Box::pin(self.mutate(MetadataMutation::AllocateProducerId));
        match mutation.await {
            Ok(outcome) => outcome.producer_id.ok_or(ErrorCode::UNKNOWN_SERVER_ERROR),
            Err(e) => Err(ErrorCode::from(&e)),
        }
    }

    async fn write_markers(&self, markers: Vec<(TopicPartition, TxnMarker)>) -> Vec<(TopicPartition, ErrorCode)> {
        // Boxed for the same reason: markers are calls to the partitions' owner shards.
        let written: std::pin::Pin<Box<dyn std::future::Future<Output = _> + '_>> = Box::pin(self.write_txn_markers(markers));
        written.await
    }

    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.shard.metadata.load().owner(topic, partition).is_some()
    }

    async fn pause(&self, change: event_listener::EventListener, at_most: Duration) {
        futures::future::select(change, Box::pin(glommio::timer::sleep(at_most))).await;
    }
}

impl Shard {
    /// Single node (start-up): replays the `__transaction_state` partitions this core owns into
    /// the transaction coordinator, which then serves them (and resends the markers of what was
    /// left prepared). On a cluster a partition loads when this broker is told it leads it.
    pub(super) async fn load_txns(&self) -> Result<(), StorageError> {
        if self.config.cluster.is_multi_node(self.config.node_id) {
            return Ok(());
        }
        let logs: Vec<_> = self.all_logs().into_iter().filter(|l| l.tp.topic == TXN_STATE_TOPIC).collect();
        for log in logs {
            let epoch = self.metadata.load().partition(TXN_STATE_TOPIC, log.tp.partition).map_or(0, |p| p.leader_epoch);
            let Some(id) = self.txns.begin_load(log.tp.partition, epoch) else { continue };
            load_at_start(&log, &TxnLoad { txns: Rc::clone(&self.txns), id }).await?;
        }
        Ok(())
    }

    /// Moves transaction coordination after a partition change was applied; a load runs in its
    /// own task, so the metadata that lets the high watermark move on keeps flowing meanwhile.
    pub(super) fn move_txn_coordination(&self, change: TxnCoordinationMove) {
        match change {
            TxnCoordinationMove::Unload(partition) => {
                self.txns.unload(partition);
            }
            TxnCoordinationMove::Load { partition, coordinator_epoch } => {
                let tp = TopicPartition::new(TXN_STATE_TOPIC, partition);
                let Some(log) = self.log(&tp) else {
                    tracing::warn!(partition = %tp, "led partition has no log here; its transactions are not served");
                    return;
                };
                let Some(id) = self.txns.begin_load(partition, coordinator_epoch) else { return };
                tracing::info!(partition = %tp, coordinator_epoch, log_end = log.offsets().log_end, "loading transactions");
                glommio::spawn_local(load_led_partition(log, TxnLoad { txns: Rc::clone(&self.txns), id })).detach();
            }
        }
    }
}

/// The load of one `__transaction_state` partition into the transaction coordinator.
struct TxnLoad {
    txns: Rc<TxnCoordinator>,
    id: TxnLoadId,
}

impl CoordinatorLoad for TxnLoad {
    const WHAT: &'static str = "transactions";

    fn is_current(&self) -> bool {
        self.txns.load_is_current(self.id)
    }

    fn replay_batch(&self, _header: &BatchHeader, batch: &[u8]) -> usize {
        let records = crate::storage::batch::records(batch).unwrap_or_default();
        for r in &records {
            if let Some(key) = &r.key {
                self.txns.replay(key, r.value.as_deref());
            }
        }
        records.len()
    }

    fn finish(&self) -> bool {
        self.txns.finish_load(self.id)
    }

    fn abandon(&self) {
        self.txns.unload(self.id.partition);
    }
}

/// The driver of one core's transaction coordinator, for the life of the shard: writes the
/// markers of prepared transactions, aborts timed-out ones, expires idle ids.
pub async fn drive_txns(router: Rc<Router>) {
    let txns = Rc::clone(&router.shard.txns);
    let Some(mut wake) = txns.take_wake_receiver() else { return };
    let abort_every = Duration::from_millis(txns.config().abort_timed_out_interval_ms.max(1));
    let expire_every = Duration::from_millis(txns.config().remove_expired_interval_ms.max(1));
    let (mut last_abort, mut last_expire) = (Instant::now(), Instant::now());
    loop {
        let tick = Box::pin(glommio::timer::sleep(DRIVER_TICK));
        futures::future::select(wake.next(), tick).await;
        // One pass serves every wake that came meanwhile.
        while wake.try_recv().is_ok() {}
        for id in txns.claim_marker_work() {
            glommio::spawn_local(write_markers_until_complete(Rc::clone(&router), id)).detach();
        }
        if last_abort.elapsed() >= abort_every {
            last_abort = Instant::now();
            txns.abort_timed_out(&*router).await;
        }
        if last_expire.elapsed() >= expire_every {
            last_expire = Instant::now();
            txns.expire_ids(&*router).await;
        }
    }
}

/// Writes a prepared transaction's markers until each partition has its own (retrying with
/// backoff: a marker must land, whatever the wait), then its Complete record.
async fn write_markers_until_complete(router: Rc<Router>, id: String) {
    let txns = Rc::clone(&router.shard.txns);
    let mut backoff = MARKER_RETRY_MIN;
    let mut attempt = 0u32;
    while let Some(markers) = txns.pending_markers(&id) {
        attempt += 1;
        if !markers.is_empty() {
            let asked = markers.len();
            let answers = router.write_txn_markers(markers).await;
            let landed: Vec<TopicPartition> = answers.iter().filter(|(_, c)| c.is_none()).map(|(tp, _)| tp.clone()).collect();
            txns.markers_landed(&id, &landed);
            if landed.len() < asked {
                // Logged on the 1st, 2nd, 4th, 8th... try: a partition may refuse for a long time.
                if let Some((tp, code)) = answers.iter().find(|(_, c)| c.is_err()).filter(|_| attempt.is_power_of_two()) {
                    tracing::warn!(transactional_id = %id, attempt, missing = asked - landed.len(), partition = %tp, error = %code,
                        "transaction markers not written yet; retrying");
                }
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(MARKER_RETRY_MAX);
                continue;
            }
        }
        match txns.complete(&id, &*router).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(transactional_id = %id, error = %e, "transaction completion not written yet; retrying");
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(MARKER_RETRY_MAX);
            }
        }
    }
    txns.release_markers(&id);
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn txn_state_leadership_moves_coordination_with_its_epoch() {
        let me = 2;
        let tp = TopicPartition::new(TXN_STATE_TOPIC, 4);
        let created = |leader| PartitionChange::Created {
            tp: tp.clone(),
            topic_id: Uuid::nil(),
            owner: ShardId(0),
            leader,
            leader_epoch: 3,
            partition_epoch: 0,
            isr: vec![1, 2, 3],
            replicas: vec![1, 2, 3],
        };
        assert_eq!(txn_coordination_move(&created(me), me), Some(TxnCoordinationMove::Load { partition: 4, coordinator_epoch: 3 }));
        assert_eq!(txn_coordination_move(&created(1), me), Some(TxnCoordinationMove::Unload(4)));
        let led = PartitionChange::BecameLeader { tp: tp.clone(), leader_epoch: 7, partition_epoch: 4, isr: vec![2], replicas: vec![1, 2] };
        assert_eq!(txn_coordination_move(&led, me), Some(TxnCoordinationMove::Load { partition: 4, coordinator_epoch: 7 }));
        let followed = PartitionChange::BecameFollower { tp: tp.clone(), leader: 1, leader_epoch: 8 };
        assert_eq!(txn_coordination_move(&followed, me), Some(TxnCoordinationMove::Unload(4)));
        let isr = PartitionChange::IsrChanged { tp, isr: vec![2], replicas: vec![1, 2], partition_epoch: 5 };
        assert_eq!(txn_coordination_move(&isr, me), None);
        let offsets = PartitionChange::BecameLeader {
            tp: TopicPartition::new(crate::group::OFFSETS_TOPIC, 4),
            leader_epoch: 1,
            partition_epoch: 1,
            isr: vec![2],
            replicas: vec![2],
        };
        assert_eq!(txn_coordination_move(&offsets, me), None, "only __transaction_state carries transactions");
    }
}
