//! Mutations (what a client or the start-up asks for) and [`plan`], which validates one against
//! the current snapshot and turns it into the records that make the change.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::records::{
    BrokerRegistration, ConfigRecord, ConfigResource, MetadataRecord, PartitionRecord, ProducerIdsRecord, RemoveTopicRecord,
    TopicRecord,
};
use super::{ClusterSnapshot, MetadataError, TopicMeta, place, valid_topic_name};
use crate::config::{TopicConfig, validate_topic_config};

/// Producer ids are reserved in blocks, so the log gets one record per block, not per id.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// A metadata mutation, always executed on shard 0 (of the active controller, in a cluster).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum MetadataMutation {
    /// Create a topic.
    CreateTopic {
        /// Name.
        name: String,
        /// Partition count.
        partitions: i32,
        /// Config overrides.
        configs: BTreeMap<String, String>,
        /// Check only; change nothing.
        validate_only: bool,
        /// The replicas of each partition, as the client assigned them (partition `i` is entry
        /// `i`); `None`: the broker places `partitions` partitions itself.
        assignment: Option<Vec<Vec<i32>>>,
    },
    /// Delete a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Grow a topic to `count` partitions.
    CreatePartitions {
        /// Name.
        name: String,
        /// New total.
        count: i32,
        /// Check only.
        validate_only: bool,
    },
    /// Replace (`incremental = false`) or patch a topic's config overrides. `None` deletes a key.
    AlterConfigs {
        /// Topic.
        name: String,
        /// Keys to set or delete.
        changes: Vec<(String, Option<String>)>,
        /// Patch instead of replace.
        incremental: bool,
        /// Check only.
        validate_only: bool,
    },
    /// Reserve a producer id.
    AllocateProducerId,
    /// Register (or re-register) a broker.
    RegisterBroker(BrokerRegistration),
}

/// What a mutation that succeeded changed.
#[derive(Debug, Clone, Default)]
pub struct MutationOutcome {
    /// The topic after the change (the removed topic for DeleteTopic), when there is one.
    pub topic: Option<Arc<TopicMeta>>,
    /// The reserved producer id (AllocateProducerId only).
    pub producer_id: Option<i64>,
}

/// The answer to a mutation, as it crosses cores.
pub type MutationResult = Result<MutationOutcome, MetadataError>;

/// What the planner needs besides the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// Shards of this broker (placement of new partitions).
    pub shards: usize,
    /// This broker's id: on one node, every partition's only replica and leader.
    pub node_id: i32,
    /// Broker-wide topic config defaults.
    pub defaults: &'a BTreeMap<String, String>,
    /// Whether the current producer-id block still has ids to hand out.
    pub producer_ids_left: bool,
}

/// Which topic the outcome reports.
#[derive(Debug)]
pub enum Report {
    /// The named topic as it is after the records.
    TopicAfter(String),
    /// This topic (as it was before a delete).
    Topic(Arc<TopicMeta>),
    /// No topic.
    Nothing,
}

/// A validated mutation: the records that make it, and what to answer.
#[derive(Debug)]
pub struct Plan {
    /// Records to append as one frame (none: nothing changes).
    pub records: Vec<MetadataRecord>,
    /// Which topic the outcome carries.
    pub report: Report,
    /// Compute the outcome, but append and publish nothing.
    pub validate_only: bool,
    /// Hand out a producer id once the records are applied.
    pub allocates_producer_id: bool,
}

impl Plan {
    fn new(records: Vec<MetadataRecord>, report: Report, validate_only: bool) -> Self {
        Plan { records, report, validate_only, allocates_producer_id: false }
    }
}

/// Validates `m` against `current` and returns the records that make it (checks in the order
/// the JSON store made them, so clients see the same error for the same request).
pub fn plan(current: &ClusterSnapshot, m: MetadataMutation, ctx: &PlanContext<'_>) -> Result<Plan, MetadataError> {
    match m {
        MetadataMutation::CreateTopic { name, partitions, configs, validate_only, assignment } => {
            if !valid_topic_name(&name) {
                return Err(MetadataError::InvalidTopic { name });
            }
            if current.topics.contains_key(&name) {
                return Err(MetadataError::TopicAlreadyExists { name });
            }
            let replicas = match assignment {
                Some(assignment) => {
                    check_assignment(current, ctx, &assignment)?;
                    assignment
                }
                None if partitions <= 0 => {
                    return Err(MetadataError::InvalidPartitions { reason: "partition count must be positive".into() });
                }
                None => vec![vec![ctx.node_id]; partitions as usize],
            };
            for (k, v) in &configs {
                validate_topic_config(k, v).map_err(|reason| MetadataError::InvalidConfig { reason })?;
            }
            let topic_id = Uuid::new_v4();
            let mut records = vec![MetadataRecord::Topic(TopicRecord { name: name.clone(), topic_id })];
            records.extend(partition_records(current, ctx, topic_id, 0, replicas));
            records.extend(configs.into_iter().map(|(k, v)| topic_config(&name, k, Some(v))));
            Ok(Plan::new(records, Report::TopicAfter(name), validate_only))
        }
        MetadataMutation::DeleteTopic { name } => {
            let topic = current.topics.get(&name).ok_or(MetadataError::UnknownTopic { name })?;
            let records = vec![MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: topic.id })];
            Ok(Plan::new(records, Report::Topic(Arc::clone(topic)), false))
        }
        MetadataMutation::CreatePartitions { name, count, validate_only } => {
            let topic = current.topics.get(&name).ok_or_else(|| MetadataError::UnknownTopic { name: name.clone() })?;
            let have = topic.partitions.len();
            if count <= 0 || count as usize <= have {
                return Err(MetadataError::InvalidPartitions {
                    reason: format!("topic has {have} partitions; the new count must be larger"),
                });
            }
            let records = partition_records(current, ctx, topic.id, have, vec![vec![ctx.node_id]; count as usize - have]).collect();
            Ok(Plan::new(records, Report::TopicAfter(name), validate_only))
        }
        MetadataMutation::AlterConfigs { name, changes, incremental, validate_only } => {
            let topic = current.topics.get(&name).ok_or_else(|| MetadataError::UnknownTopic { name: name.clone() })?;
            let mut wanted = if incremental { topic.configs.clone() } else { BTreeMap::new() };
            for (k, v) in changes {
                match v {
                    Some(v) => {
                        validate_topic_config(&k, &v).map_err(|reason| MetadataError::InvalidConfig { reason })?;
                        wanted.insert(k, v);
                    }
                    None => {
                        wanted.remove(&k);
                    }
                }
            }
            // Resolving reports nothing today; it is kept so a future check has its place.
            let _ = TopicConfig::resolve(ctx.defaults, &wanted);
            // Only the difference becomes records: deletes for keys that go, sets for the rest.
            let mut records: Vec<MetadataRecord> = topic
                .configs
                .keys()
                .filter(|k| !wanted.contains_key(*k))
                .map(|k| topic_config(&name, k.clone(), None))
                .collect();
            records.extend(
                wanted
                    .into_iter()
                    .filter(|(k, v)| topic.configs.get(k) != Some(v))
                    .map(|(k, v)| topic_config(&name, k, Some(v))),
            );
            Ok(Plan::new(records, Report::TopicAfter(name), validate_only))
        }
        MetadataMutation::AllocateProducerId => {
            let records = if ctx.producer_ids_left {
                Vec::new()
            } else {
                vec![MetadataRecord::ProducerIds(ProducerIdsRecord {
                    broker_id: ctx.node_id,
                    next_producer_id_block: current.next_producer_id_block + PRODUCER_ID_BLOCK,
                })]
            };
            Ok(Plan { records, report: Report::Nothing, validate_only: false, allocates_producer_id: true })
        }
        MetadataMutation::RegisterBroker(registration) => {
            Ok(Plan::new(vec![MetadataRecord::RegisterBroker(registration)], Report::Nothing, false))
        }
    }
}

/// Records for `count` new partitions of a topic, from index `first`, placed on the least-loaded
/// shards. On one node this broker is every partition's only replica, in-sync and leader.
/// The records of new partitions `first..` of a topic, one per entry of `replicas`: every
/// replica in sync, the first one leader (Kafka's preferred leader), each placed on a shard.
fn partition_records(
    current: &ClusterSnapshot,
    ctx: &PlanContext<'_>,
    topic_id: Uuid,
    first: usize,
    replicas: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> {
    let owners = place(&current.load_per_shard(ctx.shards), replicas.len());
    owners.into_iter().zip(replicas).enumerate().map(move |(i, (owner_shard, replicas))| {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: (first + i) as i32,
            isr: replicas.clone(),
            leader: replicas.first().copied().unwrap_or(ctx.node_id),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            owner_shard,
        })
    })
}

/// Kafka's checks of a manual replica assignment: at least one partition, and each partition's
/// replicas non-empty, distinct and registered brokers.
fn check_assignment(current: &ClusterSnapshot, ctx: &PlanContext<'_>, assignment: &[Vec<i32>]) -> Result<(), MetadataError> {
    let invalid = |reason: String| Err(MetadataError::InvalidReplicaAssignment { reason });
    if assignment.is_empty() {
        return invalid("the manual partition assignment names no partition".into());
    }
    let registered = |id: i32| current.brokers.contains_key(&id) || (current.brokers.is_empty() && id == ctx.node_id);
    for (partition, replicas) in assignment.iter().enumerate() {
        if replicas.is_empty() {
            return invalid(format!("the manual partition assignment of partition {partition} is empty"));
        }
        for (i, id) in replicas.iter().enumerate() {
            if replicas[..i].contains(id) {
                return invalid(format!("the manual partition assignment of partition {partition} names broker {id} more than once"));
            }
            if !registered(*id) {
                return invalid(format!("the manual partition assignment of partition {partition} names broker {id}, but no such broker is registered"));
            }
        }
    }
    Ok(())
}

fn topic_config(topic: &str, name: String, value: Option<String>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord { resource: ConfigResource::Topic { name: topic.to_string() }, name, value })
}
