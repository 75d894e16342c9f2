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
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::messages::ShardRequest;
use super::{Router, Shard};
use crate::codes::ErrorCode;
use crate::group::{GroupCall, GroupCoordinator, GroupLog, GroupReply, LoadId, TxnProducer, OFFSETS_TOPIC};
use crate::metadata::PartitionChange;
use crate::storage::batch::{BatchHeader, BatchProducer};
use crate::storage::{AppendOutcome, PartitionLog, StorageError};
use crate::types::{ShardId, TopicPartition};

/// Kafka's `offsets.commit.timeout.ms` default: how long a group write waits for the ISR.
const GROUP_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a new leader's load looks whether its high watermark has caught up.
const HIGH_WATERMARK_POLL: Duration = Duration::from_millis(10);

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
            let Some(load) = self.groups.begin_load(log.tp.partition) else { continue };
            let until = log.offsets().high_watermark;
            let replayed = replay_partition(&self.groups, &log, until, load).await?.unwrap_or(0);
            self.groups.finish_load(load);
            if replayed > 0 {
                tracing::info!(partition = %log.tp, records = replayed, "group state replayed");
            }
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
                let Some(load) = self.groups.begin_load(partition) else { return };
                tracing::info!(partition = %tp, log_end = log.offsets().log_end, "loading groups");
                glommio::spawn_local(load_led_partition(Rc::clone(&self.groups), log, load)).detach();
            }
        }
    }
}

/// A new leader's load: waits until its high watermark covers its log as it was when the
/// leadership came (so whatever an earlier leader acknowledged is committed here too), replays
/// up to it, then serves. Gives up as soon as the leadership goes.
async fn load_led_partition(groups: Rc<GroupCoordinator>, log: Rc<PartitionLog>, load: LoadId) {
    let started = Instant::now();
    let target = log.offsets().log_end;
    while log.offsets().high_watermark < target {
        if !groups.load_is_current(load) {
            tracing::info!(partition = %log.tp, "group load abandoned: leadership moved");
            return;
        }
        glommio::timer::sleep(HIGH_WATERMARK_POLL).await;
    }
    // No group write happens while loading: the high watermark now is the log's end.
    let until = log.offsets().high_watermark;
    match replay_partition(&groups, &log, until, load).await {
        Ok(Some(records)) if groups.finish_load(load) => {
            tracing::info!(partition = %log.tp, records, until, elapsed_ms = started.elapsed().as_millis() as u64, "groups loaded");
        }
        Ok(_) => tracing::info!(partition = %log.tp, "group load abandoned: leadership moved"),
        Err(e) => {
            tracing::error!(partition = %log.tp, error = %e, "group load failed; its groups are not served");
            if groups.load_is_current(load) {
                groups.unload(load.partition);
            }
        }
    }
}

/// Replays one `__consumer_offsets` partition from its start up to `until` into `groups`: the
/// records replayed, or `None` when `load` was overtaken (the rest is not applied).
async fn replay_partition(groups: &GroupCoordinator, log: &PartitionLog, until: i64, load: LoadId) -> Result<Option<usize>, StorageError> {
    let mut offset = log.offsets().log_start;
    let mut replayed = 0usize;
    while offset < until {
        let read = log.read(offset, 1 << 20).await?;
        // The read awaited: the leadership may have moved, and these records are not ours then.
        if !groups.load_is_current(load) {
            return Ok(None);
        }
        let Some(last) = read.records.last().and_then(|b| BatchHeader::parse(b)) else { break };
        for batch in &read.records {
            let Some(header) = BatchHeader::parse(batch) else { continue };
            for r in crate::storage::batch::records(batch).unwrap_or_default() {
                let Some(key) = &r.key else { continue };
                if header.is_control() {
                    // An end-transaction marker's key: version i16, then type i16 (1 commit, 0 abort).
                    if let Some(kind) = key.get(2..4) {
                        groups.complete_txn(log.tp.partition, header.producer_id, kind == [0, 1]);
                    }
                } else if header.is_transactional() {
                    groups.replay_txn(header.producer_id, key, r.value.as_deref());
                } else {
                    groups.replay(key, r.value.as_deref());
                }
                replayed += 1;
            }
        }
        offset = last.last_offset() + 1;
    }
    Ok(Some(replayed))
}

impl Shard {
    /// Appends one batch of `producer` to a `__consumer_offsets` partition as its leader, with
    /// acks=all: answered once the ISR holds the records.
    async fn append_group_records(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>, producer: &BatchProducer) -> Result<(), ErrorCode> {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        // Only the leader writes; a follower's copy comes from its fetcher.
        let log = self.led_log(&tp)?;
        let refs: Vec<crate::storage::batch::RecordRef<'_>> = records.iter().map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
        let batch = crate::storage::batch::build_for(&refs, crate::types::now_ms(), producer);
        let outcome = log.append(&batch, -1).map_err(|e| ErrorCode::from(&e))?;
        // Registered before any await: the log end is this append's end.
        let replicated = self.ack_after_replication(&tp, log.offsets().log_end);
        AppendOutcome::written(outcome.done).await.map_err(|e| ErrorCode::from(&e))?;
        match replicated {
            Some(ack) => self.replicated(&tp, ack, GROUP_WRITE_TIMEOUT).await.map_err(|(code, _)| code),
            None => Ok(()),
        }
    }
}

impl GroupLog for Shard {
    async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        self.append_group_records(partition, records, &BatchProducer { id: -1, epoch: -1, base_sequence: -1, transactional: false }).await
    }

    async fn append_txn(&self, partition: i32, producer: TxnProducer, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        let producer = BatchProducer { id: producer.producer_id, epoch: producer.producer_epoch, base_sequence: -1, transactional: true };
        self.append_group_records(partition, records, &producer).await
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
