//! Cluster metadata: brokers, topics (with UUIDs), partitions (owner shard, replicas, leader,
//! ISR, epochs) and configs, kept as a log of typed records.
//!
//! ```text
//!  mutation ──► mutation::plan ──► records ──► log (one frame, fdatasync) ──► image::apply ──► publish
//!                (validate)                      meta/metadata.log                          ArcSwap<ClusterSnapshot>
//! ```
//!
//! Shard 0 is the single writer ([`MetadataStore`]); other shards forward mutations to it through
//! the router. A mutation becomes [`MetadataRecord`]s, which are appended to the record log as one
//! frame and made durable before [`image::apply`] turns the current immutable [`ClusterSnapshot`]
//! into the next one, which is then published: every shard reads the latest snapshot without
//! locking. `image::apply` is the state machine a replicated (Raft) log will drive later.
//! Start-up ([`MetadataBootstrap`]) loads the last checkpoint, replays the log after it, and runs
//! the start-up mutations synchronously before the executors start.

pub mod delta;
pub mod election;
pub mod image;
pub mod log;
pub mod mutation;
pub mod placement;
pub mod reassignment;
pub mod records;
pub mod store;

mod legacy;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_broker_configs;
#[cfg(test)]
mod tests_cluster;
#[cfg(test)]
mod tests_delta;
#[cfg(test)]
mod tests_reassignment;
#[cfg(test)]
mod tests_unclean;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use uuid::Uuid;

use crate::config::dynamic::DynamicLayers;
use crate::types::ShardId;

pub use delta::{PartitionChange, partition_changes};
pub use mutation::{MetadataMutation, MutationOutcome, MutationResult};
pub use records::{
    BrokerEndpoint, BrokerFenceRecord, BrokerRegistration, ConfigRecord, ConfigResource, MetadataRecord, PartitionRecord, ProducerIdsRecord,
    RemoveTopicRecord, TopicRecord,
};
pub use store::{MetadataBootstrap, MetadataStore};

/// Metadata of one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionMeta {
    /// The shard that owns the partition's log.
    pub owner: ShardId,
    /// Current leader epoch.
    pub leader_epoch: i32,
    /// Broker ids holding a replica, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader broker id (-1: none).
    pub leader: i32,
    /// Bumped at every change of the partition's state.
    pub partition_epoch: i32,
    /// KIP-455: replicas a reassignment in progress adds (they are in `replicas` too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// KIP-455: replicas a reassignment in progress removes once the target is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionMeta {
    /// Whether a KIP-455 reassignment of this partition is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas a reassignment in progress ends with (`replicas` without the removing ones).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.removing_replicas.contains(r)).collect()
    }
}

/// Metadata of one topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicMeta {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Partitions by index.
    pub partitions: Vec<PartitionMeta>,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// An immutable view of the cluster's metadata: what the records applied so far describe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// Cluster id (stable across restarts).
    pub cluster_id: String,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// First id of the next producer-id block: every id below it may have been handed out.
    pub next_producer_id_block: i64,
    /// Registered brokers by id (the latest registration of each).
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// The registered brokers that are fenced: a new registration is, until it is unfenced
    /// (KRaft's rule; on a single node the registration unfences at once).
    pub fenced: BTreeSet<i32>,
    /// Dynamic broker config overrides, by broker id.
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// The cluster-wide defaults of the dynamic broker configs (resource name `""`).
    pub broker_default_configs: BTreeMap<String, String>,
    /// Topic names by id, kept by [`image::apply`] beside `topics`.
    topic_names: BTreeMap<Uuid, String>,
}

impl ClusterSnapshot {
    /// An empty snapshot of cluster `cluster_id`.
    pub fn empty(cluster_id: impl Into<String>) -> Self {
        ClusterSnapshot { cluster_id: cluster_id.into(), ..ClusterSnapshot::default() }
    }

    /// The dynamic broker configs broker `broker_id` follows: the cluster default and its own.
    pub fn dynamic_configs(&self, broker_id: i32) -> DynamicLayers<'_> {
        DynamicLayers {
            cluster_default: &self.broker_default_configs,
            broker: self.broker_configs.get(&broker_id).unwrap_or(DynamicLayers::NONE.broker),
        }
    }

    /// Looks a topic up by id.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicMeta>> {
        self.topics.get(self.topic_names.get(&id)?)
    }

    /// A partition's metadata.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionMeta> {
        self.topics.get(topic)?.partitions.get(usize::try_from(partition).ok()?)
    }

    /// The owner shard of a partition.
    pub fn owner(&self, topic: &str, partition: i32) -> Option<ShardId> {
        self.partition(topic, partition).map(|p| p.owner)
    }

    /// Whether `broker_id` is registered and not fenced: it may lead and be in an ISR.
    pub fn is_unfenced(&self, broker_id: i32) -> bool {
        self.brokers.contains_key(&broker_id) && !self.fenced.contains(&broker_id)
    }

    /// The registered, unfenced brokers, by id.
    pub fn unfenced_brokers(&self) -> Vec<i32> {
        self.brokers.keys().copied().filter(|id| !self.fenced.contains(id)).collect()
    }

    /// Partitions over all topics (the rotating start of replica placement).
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// Partitions per shard, over all topics.
    fn load_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0; shards];
        for t in self.topics.values() {
            for p in &t.partitions {
                if p.owner.0 < shards {
                    load[p.owner.0] += 1;
                }
            }
        }
        load
    }
}

/// Why a metadata change was refused or could not be made durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The name breaks Kafka's topic name rule.
    #[error("invalid topic name {name:?}")]
    InvalidTopic {
        /// The name asked for.
        name: String,
    },
    /// A topic of that name exists.
    #[error("topic {name} already exists")]
    TopicAlreadyExists {
        /// Topic name.
        name: String,
    },
    /// No topic of that name.
    #[error("no topic {name}")]
    UnknownTopic {
        /// Topic name.
        name: String,
    },
    /// No topic with that id.
    #[error("no topic with id {id}")]
    UnknownTopicId {
        /// Topic id.
        id: Uuid,
    },
    /// A partition count that cannot be used.
    #[error("{reason}")]
    InvalidPartitions {
        /// Why.
        reason: String,
    },
    /// More replicas than brokers.
    #[error("replication factor {factor} is larger than the {brokers} available broker(s)")]
    InvalidReplicationFactor {
        /// The factor asked for.
        factor: i16,
        /// Brokers that could hold a replica.
        brokers: usize,
    },
    /// A manual replica assignment names no partition, an empty or repeated replica, or a
    /// broker that is not registered.
    #[error("{reason}")]
    InvalidReplicaAssignment {
        /// What is wrong with it.
        reason: String,
    },
    /// A request that asks for two things that exclude each other (Kafka's INVALID_REQUEST).
    #[error("{reason}")]
    InvalidRequest {
        /// What is wrong with it.
        reason: String,
    },
    /// No partition of that index in the topic.
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// The partition asked for.
        partition: i32,
    },
    /// No registered broker of that id.
    #[error("broker {broker_id} is not registered")]
    UnknownBroker {
        /// The broker id.
        broker_id: i32,
    },
    /// An AlterPartition from a leader epoch that is not the partition's current one.
    #[error("leader epoch {requested} is not the partition's current epoch {current}")]
    FencedLeaderEpoch {
        /// The partition's leader epoch.
        current: i32,
        /// The epoch the request carried.
        requested: i32,
    },
    /// An AlterPartition from a broker that does not lead the partition.
    #[error("broker {broker_id} is not the leader of the partition (leader {leader})")]
    NotLeader {
        /// The sender.
        broker_id: i32,
        /// The partition's leader (-1: none).
        leader: i32,
    },
    /// An AlterPartition against a partition state that has changed since (Kafka's
    /// INVALID_UPDATE_VERSION).
    #[error("partition epoch {requested} is not the partition's current epoch {current}")]
    InvalidUpdateVersion {
        /// The partition's epoch.
        current: i32,
        /// The epoch the request carried.
        requested: i32,
    },
    /// A proposed ISR names a broker that is fenced or holds no replica (Kafka's INELIGIBLE_REPLICA).
    #[error("broker {broker_id} may not be in the ISR: {reason}")]
    IneligibleReplica {
        /// The ineligible broker.
        broker_id: i32,
        /// Why.
        reason: String,
    },
    /// ElectLeaders: the partition already has the leader the election would give it.
    #[error("partition {partition} of {topic} needs no election")]
    ElectionNotNeeded {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// ElectLeaders (preferred): the first replica is fenced or out of the ISR.
    #[error("the preferred leader {preferred} of partition {partition} of {topic} is not in the ISR or is fenced")]
    PreferredLeaderNotAvailable {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The preferred replica.
        preferred: i32,
    },
    /// No replica may lead: none in the ISR is unfenced, and no unclean election could pick one
    /// (not allowed, or no replica at all is unfenced).
    #[error("no eligible leader for partition {partition} of {topic}")]
    EligibleLeadersNotAvailable {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// A cancellation of a reassignment that is not in progress.
    #[error("no reassignment of partition {partition} of {topic} is in progress")]
    NoReassignmentInProgress {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// The active controller (another node) refused the mutation: its Kafka code and message.
    #[error("{message}")]
    Remote {
        /// Kafka's error code, as the controller mapped its own error.
        code: i16,
        /// The controller's message.
        message: String,
    },
    /// A config key or value is refused.
    #[error("{reason}")]
    InvalidConfig {
        /// Why.
        reason: String,
    },
    /// A record does not apply to the snapshot (a bug, or a log that does not belong to it).
    #[error("record does not apply: {reason}")]
    InvalidRecord {
        /// Why.
        reason: String,
    },
    /// This shard does not hold the metadata store (mutations run on shard 0).
    #[error("not the metadata's writer: shard 0 of a single node, or the cluster's active controller")]
    NotController,
    /// The controller shard did not answer.
    #[error("controller did not answer")]
    ControllerUnavailable,
    /// Reading or writing the metadata files failed.
    #[error("metadata write failed: {0}")]
    Io(#[from] std::io::Error),
    /// An earlier write or sync of the metadata log failed: the store takes no more changes until
    /// a restart replays what is durable (a failed fdatasync may have dropped the pages).
    #[error("metadata log unusable after an earlier write failure; restart the broker")]
    LogFailed,
    /// A metadata file that cannot be read back (a checkpoint or a legacy file).
    #[error("corrupt metadata file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Kafka's topic name rule: 1–249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The shared, lock-free handle to the latest snapshot.
pub type SnapshotHandle = Arc<ArcSwap<ClusterSnapshot>>;

/// Picks owners for `count` new partitions: each goes to the least-loaded shard, ties broken by
/// rotating from the previous pick, so a topic's partitions spread over all shards.
pub fn place(load: &[usize], count: usize) -> Vec<ShardId> {
    let mut load = load.to_vec();
    let mut out = Vec::with_capacity(count);
    let mut last = load.len().saturating_sub(1);
    for _ in 0..count {
        let n = load.len();
        let pick = (1..=n)
            .map(|i| (last + i) % n)
            .min_by_key(|&s| load[s])
            .unwrap_or(0);
        load[pick] += 1;
        last = pick;
        out.push(ShardId(pick));
    }
    out
}
