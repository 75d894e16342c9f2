//! What one broker must do after a metadata change: [`partition_changes`] compares the snapshot
//! before and after and lists, for the partitions this broker holds (or held) a replica of, the
//! role changes it must act on, as KRaft's `TopicsDelta.localChanges` does for Kafka's
//! `ReplicaManager`.
//!
//! Pure: no I/O, no clock. A topic is the same topic only under the same id: a topic deleted and
//! created again under its name is a removal and a creation. Removals come first in the list,
//! so a broker drops an old log before it opens a new one of the same name; then topics by name,
//! each with its config change before its partitions in index order.

use uuid::Uuid;

use super::{ClusterSnapshot, PartitionMeta, TopicMeta};
use crate::types::{ShardId, TopicPartition};

/// One thing a broker must do about one of its partitions (or topics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionChange {
    /// A replica of the partition is new on this broker: open (create) its log, then lead or
    /// follow as `leader` says.
    Created {
        /// The partition.
        tp: TopicPartition,
        /// The topic's id.
        topic_id: Uuid,
        /// The shard that owns the log.
        owner: ShardId,
        /// The leader (-1: none yet).
        leader: i32,
        /// The leader epoch.
        leader_epoch: i32,
        /// The partition epoch (what this broker sends in AlterPartition when it leads).
        partition_epoch: i32,
        /// In-sync replicas.
        isr: Vec<i32>,
        /// All replicas, preferred leader first.
        replicas: Vec<i32>,
    },
    /// This broker leads the partition from `leader_epoch` on (newly, or again in a new epoch).
    BecameLeader {
        /// The partition.
        tp: TopicPartition,
        /// The new leader epoch.
        leader_epoch: i32,
        /// The partition epoch.
        partition_epoch: i32,
        /// In-sync replicas.
        isr: Vec<i32>,
        /// All replicas, preferred leader first.
        replicas: Vec<i32>,
    },
    /// This broker follows `leader` from `leader_epoch` on (-1: no leader; stop fetching).
    BecameFollower {
        /// The partition.
        tp: TopicPartition,
        /// The leader to fetch from.
        leader: i32,
        /// The new leader epoch.
        leader_epoch: i32,
    },
    /// This broker still leads in the same epoch; the ISR or the replicas changed.
    IsrChanged {
        /// The partition.
        tp: TopicPartition,
        /// In-sync replicas.
        isr: Vec<i32>,
        /// All replicas.
        replicas: Vec<i32>,
        /// The partition epoch now.
        partition_epoch: i32,
    },
    /// This broker holds no replica any more (topic deleted, or the replica moved away).
    Removed {
        /// The partition.
        tp: TopicPartition,
        /// The topic's id (of the removed topic).
        topic_id: Uuid,
    },
    /// A topic's config overrides changed, or a dynamic broker config this broker follows did
    /// (cluster default or its own), and this broker holds a replica of the topic.
    ConfigChanged {
        /// Topic name.
        topic: String,
        /// The topic's id.
        topic_id: Uuid,
    },
}

/// The changes broker `node_id` must make to go from `old` to `new`.
pub fn partition_changes(old: &ClusterSnapshot, new: &ClusterSnapshot, node_id: i32) -> Vec<PartitionChange> {
    let mut out = Vec::new();
    for before in old.topics.values() {
        let after = new.topics.get(&before.name).filter(|t| t.id == before.id);
        for (index, p) in before.partitions.iter().enumerate() {
            let kept = after.and_then(|t| t.partitions.get(index)).is_some_and(|q| q.replicas.contains(&node_id));
            if p.replicas.contains(&node_id) && !kept {
                out.push(PartitionChange::Removed { tp: tp(before, index), topic_id: before.id });
            }
        }
    }
    // A dynamic broker config this broker follows changed: every topic it holds re-resolves
    // its config (a topic without an override follows the new `log.*` default).
    let broker_configs_changed = old.broker_default_configs != new.broker_default_configs
        || old.broker_configs.get(&node_id) != new.broker_configs.get(&node_id);
    for after in new.topics.values() {
        let before = old.topics.get(&after.name).filter(|t| t.id == after.id);
        if let Some(before) = before
            && (before.configs != after.configs || broker_configs_changed)
            && after.partitions.iter().any(|p| p.replicas.contains(&node_id))
        {
            out.push(PartitionChange::ConfigChanged { topic: after.name.clone(), topic_id: after.id });
        }
        for (index, p) in after.partitions.iter().enumerate() {
            if !p.replicas.contains(&node_id) {
                continue;
            }
            let was = before.and_then(|t| t.partitions.get(index)).filter(|q| q.replicas.contains(&node_id));
            out.extend(local_change(after, index, was, p, node_id));
        }
    }
    out
}

/// The change of one partition this broker holds a replica of in `now` (`was`: its state
/// before, when the broker held a replica then too).
fn local_change(
    topic: &TopicMeta,
    index: usize,
    was: Option<&PartitionMeta>,
    now: &PartitionMeta,
    node_id: i32,
) -> Option<PartitionChange> {
    let tp = tp(topic, index);
    let Some(was) = was else {
        return Some(PartitionChange::Created {
            tp,
            topic_id: topic.id,
            owner: now.owner,
            leader: now.leader,
            leader_epoch: now.leader_epoch,
            partition_epoch: now.partition_epoch,
            isr: now.isr.clone(),
            replicas: now.replicas.clone(),
        });
    };
    if now.leader != was.leader || now.leader_epoch != was.leader_epoch {
        return Some(if now.leader == node_id {
            PartitionChange::BecameLeader {
                tp,
                leader_epoch: now.leader_epoch,
                partition_epoch: now.partition_epoch,
                isr: now.isr.clone(),
                replicas: now.replicas.clone(),
            }
        } else {
            PartitionChange::BecameFollower { tp, leader: now.leader, leader_epoch: now.leader_epoch }
        });
    }
    // A follower in an unchanged epoch has nothing to do: the ISR is the leader's business.
    let leads = now.leader == node_id;
    let changed = now.isr != was.isr || now.replicas != was.replicas || now.partition_epoch != was.partition_epoch;
    (leads && changed).then(|| PartitionChange::IsrChanged {
        tp,
        isr: now.isr.clone(),
        replicas: now.replicas.clone(),
        partition_epoch: now.partition_epoch,
    })
}

fn tp(topic: &TopicMeta, index: usize) -> TopicPartition {
    TopicPartition::new(topic.name.clone(), index as i32)
}
