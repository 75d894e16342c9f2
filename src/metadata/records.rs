//! The typed metadata records, in the shape of KRaft's (`metadata/src/main/resources/common/metadata/*.json`).
//!
//! Every change to the cluster's metadata is one or more of these records; [`super::image::apply`]
//! turns a snapshot plus a record into the next snapshot. A checkpoint is the snapshot written back
//! out as records, as a KRaft snapshot is. Records are serialized with serde (JSON inside the
//! log's binary frames, see [`super::log`]), internally tagged by `"type"`.
//!
//! Field names follow KRaft's, in snake case. Ringlog adds one fact KRaft does not have: the shard
//! that owns a partition's log on its broker ([`PartitionRecord::owner_shard`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::types::ShardId;

/// One metadata record: the unit the state machine applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum MetadataRecord {
    /// A topic is created (its partitions follow as [`PartitionRecord`]s).
    Topic(TopicRecord),
    /// A partition is created, or its replicas, leader or ISR change.
    Partition(PartitionRecord),
    /// A config key is set or deleted.
    Config(ConfigRecord),
    /// A topic and its partitions and configs are removed.
    RemoveTopic(RemoveTopicRecord),
    /// A block of producer ids is reserved.
    ProducerIds(ProducerIdsRecord),
    /// A broker registers (at each start, with a new incarnation id). It is fenced until a
    /// [`BrokerFenceRecord`] unfences it, as in KRaft.
    RegisterBroker(BrokerRegistration),
    /// A registered broker is fenced or unfenced (KRaft's `BrokerRegistrationChangeRecord` role).
    BrokerFence(BrokerFenceRecord),
}

/// KRaft's `TopicRecord`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub topic_id: Uuid,
}

/// KRaft's `PartitionRecord`, plus the owner shard. A record for the next partition index adds a
/// partition; one for an existing index replaces its state (KRaft's `PartitionChangeRecord` role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// The topic's id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// Broker ids holding a replica, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader broker id (-1: none).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Bumped at every change of the partition's state.
    pub partition_epoch: i32,
    /// The shard that owns the partition's log on its broker (Ringlog's, not in KRaft).
    pub owner_shard: ShardId,
    /// KIP-455: replicas a reassignment in progress adds (already in `replicas`). Empty when
    /// none is in progress; absent from records written before reassignments existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// KIP-455: replicas a reassignment in progress removes once the target is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

/// What a [`ConfigRecord`] configures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "resource_type")]
pub enum ConfigResource {
    /// A topic, by name (as in KRaft).
    Topic {
        /// Topic name.
        name: String,
    },
    /// A broker, by id (a dynamic broker config of that broker, KIP-226).
    Broker {
        /// Broker id.
        broker_id: i32,
    },
    /// The cluster-wide default of the dynamic broker configs (KRaft's BROKER resource with
    /// the empty name): every broker without its own value follows it.
    BrokerDefault,
}

/// KRaft's `ConfigRecord`: one key of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// The resource.
    pub resource: ConfigResource,
    /// Config key.
    pub name: String,
    /// New value; `None` deletes the key (back to the default).
    pub value: Option<String>,
}

/// KRaft's `RemoveTopicRecord`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTopicRecord {
    /// The topic's id.
    pub topic_id: Uuid,
}

/// KRaft's `ProducerIdsRecord`: every id below `next_producer_id_block` may have been handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    /// The broker that reserved the block.
    pub broker_id: i32,
    /// First id of the next block: the end of the block just reserved.
    pub next_producer_id_block: i64,
}

/// KRaft's `RegisterBrokerRecord`, which the snapshot keeps as the broker's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// Broker id (`node.id`).
    pub broker_id: i32,
    /// New at every start of the broker process.
    pub incarnation_id: Uuid,
    /// Where clients reach the broker, one per listener.
    pub endpoints: Vec<BrokerEndpoint>,
    /// `broker.rack`, when set.
    pub rack: Option<String>,
}

/// One advertised listener of a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// Listener name (`PLAINTEXT`).
    pub listener: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// Security protocol name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub security_protocol: String,
}

/// KRaft's `BrokerRegistrationChangeRecord`, in the part Ringlog uses: a fenced broker leads
/// nothing and is never elected or added to an ISR; an unfenced one may be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerFenceRecord {
    /// Broker id (`node.id`); must be registered.
    pub broker_id: i32,
    /// Fenced after this record.
    pub fenced: bool,
}
