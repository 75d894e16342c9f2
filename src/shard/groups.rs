//! The group coordinator's side of the core: group calls routed to the coordinator's core, the
//! coordinator's log (the `__consumer_offsets` partitions this core owns and leads), and the
//! replay that loads a partition's groups into the coordinator.
//!
//! ```text
//!  single node:  start-up ─► load_groups ─► replay_partition (every owned partition) ─► served
//!  cluster:      Created(leader = me) / BecameLeader ─► begin_load ─► high watermark ≥ log end
//!                    ─► replay_partition ─► finish_load ─► served
//!                BecameFollower / Removed ─► unload (state dropped; NOT_COORDINATOR)
//! ```
//!
//! A group write (offsets, group metadata) is answered once the ISR holds it, as Kafka's
//! coordinator appends with acks=all: a committed offset outlives its coordinator.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::coordinator_log::{CoordinatorLoad, NO_PRODUCER, load_at_start, load_led_partition};
use super::messages::ShardRequest;
use super::{Router, Shard};
use crate::codes::ErrorCode;
use crate::group::{GroupCall, GroupCoordinator, GroupLog, GroupReply, LoadId, TxnProducer, OFFSETS_TOPIC};
use crate::metadata::PartitionChange;
use crate::storage::StorageError;
use crate::storage::batch::{BatchHeader, BatchProducer};
use crate::storage::txn::ControlMarker;
use crate::types::{ShardId, TopicPartition};

/// Kafka's `offsets.commit.timeout.ms` default: how long a group write waits for the ISR.
const GROUP_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a partition change means for the groups this core coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinationMove {
    /// This broker now leads `__consumer_offsets` partition N: load its groups.
    Load(i32),
    /// This broker no longer leads partition N (or holds no replica): drop its groups.
    Unload(i32),
}

/// The coordination move a partition change calls for, if any (only `__consumer_offsets`
/// leadership matters; ISR and config changes keep the leader where it is).
pub fn coordination_move(change: &PartitionChange, node_id: i32) -> Option<CoordinationMove> {
    let (tp, leads) = match change {
        PartitionChange::Created { tp, leader, .. } => (tp, *leader == node_id),
        PartitionChange::BecameLeader { tp, .. } => (tp, true),
        PartitionChange::BecameFollower { tp, .. } | PartitionChange::Removed { tp, .. } => (tp, false),
        PartitionChange::IsrChanged { .. } | PartitionChange::ConfigChanged { .. } => return None,
    };
    (tp.topic == OFFSETS_TOPIC).then_some(if leads { CoordinationMove::Load(tp.partition) } else { CoordinationMove::Unload(tp.partition) })
}

impl Router {
    /// Runs a group operation on the group's coordinator: the owner of its
    /// `__consumer_offsets` partition.
    pub async fn group_call(&self, group: &str, call: GroupCall) -> GroupReply {
        let partition = crate::group::partition_for(group, self.shard.config.group.offsets_topic_partitions);
        let Some(owner) = self.shard.metadata.load().owner(OFFSETS_TOPIC, partition) else {
            return GroupReply::Unavailable;
        };
        self.call(owner, ShardRequest::Group(Box::new(call))).await.into_group().unwrap_or(GroupReply::Unavailable)
    }

    /// Runs `make()` on every shard's coordinator and collects the answers (ListGroups).
    pub async fn group_call_all(&self, make: fn() -> GroupCall) -> Vec<GroupReply> {
        let answers = self.broadcast((0..self.nr_shards).map(ShardId), || ShardRequest::Group(Box::new(make()))).await;
        answers.into_iter().map(|a| a.into_group().unwrap_or(GroupReply::Unavailable)).collect()
    }
}

impl Shard {
    /// Single node (start-up): replays the `__consumer_offsets` partitions this core owns into
    /// the group coordinator, which then serves them. On a cluster nothing is loaded here: a
    /// partition's groups load when this broker is told it leads it.
    pub(super) async fn load_groups(&self) -> Result<(), StorageError> {
        if self.config.cluster.is_multi_node(self.config.node_id) {
            return Ok(());
        }
        let logs: Vec<_> = self.all_logs().into_iter().filter(|l| l.tp.topic == OFFSETS_TOPIC).collect();
        for log in logs {
            let Some(id) = self.groups.begin_load(log.tp.partition) else { continue };
            load_at_start(&log, &GroupLoad { groups: Rc::clone(&self.groups), id }).await?;
        }
        Ok(())
    }

    /// Moves group coordination after a partition change was applied (the log is open, the
    /// leadership taken or given up): a load runs in its own task, so the metadata that lets
    /// the high watermark move on keeps flowing meanwhile.
    pub(super) fn move_group_coordination(&self, change: CoordinationMove) {
        match change {
            CoordinationMove::Unload(partition) => {
                self.groups.unload(partition);
            }
            CoordinationMove::Load(partition) => {
                let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
                let Some(log) = self.log(&tp) else {
                    tracing::warn!(partition = %tp, "led partition has no log here; its groups are not served");
                    return;
                };
                let Some(id) = self.groups.begin_load(partition) else { return };
                tracing::info!(partition = %tp, log_end = log.offsets().log_end, "loading groups");
                glommio::spawn_local(load_led_partition(log, GroupLoad { groups: Rc::clone(&self.groups), id })).detach();
            }
        }
    }
}

/// The load of one `__consumer_offsets` partition into the group coordinator.
struct GroupLoad {
    groups: Rc<GroupCoordinator>,
    id: LoadId,
}

impl CoordinatorLoad for GroupLoad {
    const WHAT: &'static str = "groups";

    fn is_current(&self) -> bool {
        self.groups.load_is_current(self.id)
    }

    /// Plain records are group state; a transaction's offsets wait for its marker (a control
    /// batch), which commits or drops them.
    fn replay_batch(&self, header: &BatchHeader, batch: &[u8]) -> usize {
        if header.is_control() {
            if let Some(marker) = ControlMarker::parse(batch) {
                self.groups.complete_txn(self.id.partition, header.producer_id, marker.commit);
            }
            return 1;
        }
        let records = crate::storage::batch::records(batch).unwrap_or_default();
        for r in &records {
            let Some(key) = &r.key else { continue };
            if header.is_transactional() {
                self.groups.replay_txn(header.producer_id, key, r.value.as_deref());
            } else {
                self.groups.replay(key, r.value.as_deref());
            }
        }
        records.len()
    }

    fn finish(&self) -> bool {
        self.groups.finish_load(self.id)
    }

    fn abandon(&self) {
        self.groups.unload(self.id.partition);
    }
}

impl GroupLog for Shard {
    async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        self.append_internal(&TopicPartition::new(OFFSETS_TOPIC, partition), &records, &NO_PRODUCER, GROUP_WRITE_TIMEOUT).await
    }

    async fn append_txn(&self, partition: i32, producer: TxnProducer, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        let producer = BatchProducer { id: producer.producer_id, epoch: producer.producer_epoch, base_sequence: -1, transactional: true };
        self.append_internal(&TopicPartition::new(OFFSETS_TOPIC, partition), &records, &producer, GROUP_WRITE_TIMEOUT).await
    }

    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.metadata.load().owner(topic, partition).is_some()
    }

    fn topics(&self) -> crate::group::consumer::TopicInfo {
        self.metadata
            .load()
            .topics
            .values()
            .filter(|t| !t.name.starts_with("__"))
            .map(|t| (t.name.clone(), (t.id, t.partitions.len() as i32)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn offsets(partition: i32) -> TopicPartition {
        TopicPartition::new(OFFSETS_TOPIC, partition)
    }

    #[test]
    fn offsets_leadership_moves_coordination_and_nothing_else_does() {
        let me = 2;
        let created = |leader| PartitionChange::Created {
            tp: offsets(4),
            topic_id: Uuid::nil(),
            owner: ShardId(0),
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![1, 2, 3],
            replicas: vec![1, 2, 3],
        };
        assert_eq!(coordination_move(&created(me), me), Some(CoordinationMove::Load(4)));
        assert_eq!(coordination_move(&created(1), me), Some(CoordinationMove::Unload(4)));
        let led = PartitionChange::BecameLeader { tp: offsets(5), leader_epoch: 3, partition_epoch: 4, isr: vec![2], replicas: vec![1, 2] };
        assert_eq!(coordination_move(&led, me), Some(CoordinationMove::Load(5)));
        let followed = PartitionChange::BecameFollower { tp: offsets(5), leader: 1, leader_epoch: 4 };
        assert_eq!(coordination_move(&followed, me), Some(CoordinationMove::Unload(5)));
        let removed = PartitionChange::Removed { tp: offsets(6), topic_id: Uuid::nil() };
        assert_eq!(coordination_move(&removed, me), Some(CoordinationMove::Unload(6)));
        let isr = PartitionChange::IsrChanged { tp: offsets(5), isr: vec![2], replicas: vec![1, 2], partition_epoch: 5 };
        assert_eq!(coordination_move(&isr, me), None);
        let other = PartitionChange::BecameLeader { tp: TopicPartition::new("orders", 5), leader_epoch: 1, partition_epoch: 1, isr: vec![2], replicas: vec![2] };
        assert_eq!(coordination_move(&other, me), None, "only __consumer_offsets carries groups");
    }
}
