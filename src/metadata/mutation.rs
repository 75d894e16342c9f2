//! Mutations (what a client or the start-up asks for) and [`plan`], which validates one against
//! the current snapshot and turns it into the records that make the change.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::election::{
    AlterPartitionRequest, NO_LEADER, alter_partition, fence_broker, fence_partition_changes, unclean_elections_for_topic, unfence_broker,
    unfence_partition_changes,
};
use super::placement::{is_active, place_more_partitions, place_new_topic};
use super::reassignment::{elect_leaders, reassign};
use super::records::{
    BrokerFenceRecord, BrokerRegistration, ConfigRecord, ConfigResource, MetadataRecord, PartitionRecord, ProducerIdsRecord, RemoveTopicRecord,
    TopicRecord,
};
use super::{ClusterSnapshot, MetadataError, TopicMeta, place, valid_topic_name};
use crate::config::{TopicConfig, unclean_leader_election_enabled, validate_topic_config, validate_topic_configs};

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
        /// Replicas per partition when placed by the broker; -1: `default.replication.factor`
        /// (as [`PlanContext::default_replication_factor`] has it). Unused with an assignment.
        replication_factor: i16,
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
        /// Replicas per new partition; -1: as many as the topic's first partition has (Kafka's
        /// CreatePartitions gives new partitions the topic's replication factor).
        replication_factor: i16,
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
    /// Replace (`incremental = false`) or patch the dynamic broker configs of one broker or of
    /// the cluster default (KIP-226). The changes were checked by the broker that took the
    /// request (Kafka's `ConfigAdminManager`); `None` deletes a key.
    AlterBrokerConfigs {
        /// The broker; `None`: the cluster-wide default (resource name `""`).
        broker_id: Option<i32>,
        /// Keys to set or delete.
        changes: Vec<(String, Option<String>)>,
        /// Patch instead of replace.
        incremental: bool,
    },
    /// Reserve a producer id.
    AllocateProducerId,
    /// Register (or re-register) a broker. It is fenced until unfenced (KRaft), except on a
    /// single node ([`PlanContext::single_node`]), where registering also unfences, so a lone
    /// broker serves at once as it always has. Re-registering an unfenced broker of a cluster
    /// fences it and takes it out of ISRs as [`MetadataMutation::FenceBroker`] does (KIP-966's
    /// unclean-shutdown rule: a new incarnation may have lost unflushed records).
    RegisterBroker(BrokerRegistration),
    /// The active controller saw no heartbeat from the broker for `broker.session.timeout.ms`.
    FenceBroker {
        /// The broker.
        broker_id: i32,
    },
    /// The broker has caught up with the metadata log: it may lead and join ISRs again.
    UnfenceBroker {
        /// The broker.
        broker_id: i32,
    },
    /// Kafka's AlterPartition, from a partition's leader: a new ISR. The outcome's topic is the
    /// topic after the change; its partition `partition` is the new state.
    AlterPartition {
        /// The topic's id.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// The sender, which must lead the partition.
        leader_id: i32,
        /// The leader epoch the sender leads in.
        leader_epoch: i32,
        /// The partition epoch the sender last saw.
        partition_epoch: i32,
        /// The proposed ISR: must hold the leader, and only unfenced replicas.
        new_isr: Vec<i32>,
    },
    /// ElectLeaders for one partition: the preferred replica (`preferred`), or, for Kafka's
    /// UNCLEAN election type, a leader for a leaderless partition: from the ISR if one may lead,
    /// else from outside it, whatever the topic's `unclean.leader.election.enable` (as Kafka).
    ElectLeader {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// Kafka's PREFERRED election type (else UNCLEAN).
        preferred: bool,
    },
    /// AlterPartitionReassignments for one partition (KIP-455).
    ReassignPartition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The target replicas; `None` cancels the reassignment in progress.
        target: Option<Vec<i32>>,
    },
}

impl MetadataMutation {
    /// Creates `__consumer_offsets` (compacted, with `offsets.topic.segment.bytes` segments, 100
    /// MiB by default, as Kafka creates it).
    pub fn create_offsets_topic(partitions: i32, replication_factor: i16, segment_bytes: i32) -> MetadataMutation {
        let segment_bytes = segment_bytes.to_string();
        let configs = [("cleanup.policy", "compact"), ("segment.bytes", segment_bytes.as_str())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        MetadataMutation::CreateTopic {
            name: crate::group::OFFSETS_TOPIC.to_string(),
            partitions,
            configs,
            validate_only: false,
            assignment: None,
            replication_factor,
        }
    }

    /// Creates `__transaction_state` (compacted, `transaction.state.log.*`, as Kafka creates it).
    pub fn create_txn_state_topic(partitions: i32, replication_factor: i16, min_isr: i32, segment_bytes: i64) -> MetadataMutation {
        let configs = [
            ("cleanup.policy", "compact".to_string()),
            ("segment.bytes", segment_bytes.to_string()),
            ("min.insync.replicas", min_isr.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        MetadataMutation::CreateTopic {
            name: crate::txn::TXN_STATE_TOPIC.to_string(),
            partitions,
            configs,
            validate_only: false,
            assignment: None,
            replication_factor,
        }
    }
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
    /// Voters of the controller quorum (`controller.quorum.voters`; 1 with none configured).
    pub voters: usize,
    /// `default.replication.factor`, for a CreateTopic that asks for -1.
    pub default_replication_factor: i16,
}

impl PlanContext<'_> {
    /// Whether this is a single-node cluster: one voter (this node) and no broker registered
    /// but this one. There, this broker is every partition's only replica, and it is never
    /// fenced (no other node could lead or unfence it).
    pub fn single_node(&self, current: &ClusterSnapshot) -> bool {
        self.voters <= 1 && current.brokers.keys().all(|id| *id == self.node_id)
    }
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
    /// What to answer once the records are applied (`next` is the snapshot after them; for a
    /// validate-only plan, what it would be). A producer id comes from `producer_ids`, the rest
    /// of the writer's reserved block, refilled from the block the records just reserved.
    pub fn outcome(self, current: &ClusterSnapshot, next: &ClusterSnapshot, producer_ids: &mut std::ops::Range<i64>) -> MutationOutcome {
        let topic = match self.report {
            Report::TopicAfter(name) => next.topics.get(&name).cloned(),
            Report::Topic(t) => Some(t),
            Report::Nothing => None,
        };
        if self.validate_only {
            return MutationOutcome { topic, producer_id: None };
        }
        let producer_id = self.allocates_producer_id.then(|| {
            if producer_ids.is_empty() {
                *producer_ids = current.next_producer_id_block..next.next_producer_id_block;
            }
            let id = producer_ids.start;
            producer_ids.start += 1;
            id
        });
        MutationOutcome { topic, producer_id }
    }

    fn new(records: Vec<MetadataRecord>, report: Report, validate_only: bool) -> Self {
        Plan { records, report, validate_only, allocates_producer_id: false }
    }
}

/// Validates `m` against `current` and returns the records that make it (checks in the order
/// the JSON store made them, so clients see the same error for the same request).
pub fn plan(current: &ClusterSnapshot, m: MetadataMutation, ctx: &PlanContext<'_>) -> Result<Plan, MetadataError> {
    match m {
        MetadataMutation::CreateTopic { name, partitions, configs, validate_only, assignment, replication_factor } => {
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
                None => place_new_topic(current, ctx, partitions as usize, replication_factor)?,
            };
            for (k, v) in &configs {
                validate_topic_config(k, v).map_err(|reason| MetadataError::InvalidConfig { reason })?;
            }
            validate_topic_configs(ctx.defaults, &configs).map_err(|reason| MetadataError::InvalidConfig { reason })?;
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
        MetadataMutation::CreatePartitions { name, count, validate_only, replication_factor } => {
            let topic = current.topics.get(&name).ok_or_else(|| MetadataError::UnknownTopic { name: name.clone() })?;
            let have = topic.partitions.len();
            if count <= 0 || count as usize <= have {
                return Err(MetadataError::InvalidPartitions {
                    reason: format!("topic has {have} partitions; the new count must be larger"),
                });
            }
            let replicas = place_more_partitions(current, ctx, topic, count as usize - have, replication_factor)?;
            let records = partition_records(current, ctx, topic.id, have, replicas).collect();
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
            validate_topic_configs(ctx.defaults, &wanted).map_err(|reason| MetadataError::InvalidConfig { reason })?;
            // Resolving reports nothing today; it is kept so a future check has its place.
            let _ = TopicConfig::resolve(ctx.defaults, &wanted);
            // With unclean elections allowed (typically: just switched on), the topic's leaderless
            // partitions get a leader at once, in the config's frame (Kafka's controller runs
            // these elections for leaderless partitions whose topic allows them).
            let unclean_allowed = unclean_leader_election_enabled(ctx.defaults, &wanted);
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
            if unclean_allowed {
                records.extend(unclean_elections_for_topic(current, topic));
            }
            Ok(Plan::new(records, Report::TopicAfter(name), validate_only))
        }
        MetadataMutation::AlterBrokerConfigs { broker_id, changes, incremental } => {
            let mut records = broker_config_records(current, broker_id, changes, incremental);
            if broker_id.is_none() {
                records.extend(unclean_elections_for_cluster_default(current, ctx.defaults, &records));
            }
            Ok(Plan::new(records, Report::Nothing, false))
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
        MetadataMutation::RegisterBroker(registration) => Ok(Plan::new(register_broker(current, ctx, registration), Report::Nothing, false)),
        MetadataMutation::FenceBroker { broker_id } => Ok(Plan::new(fence_broker(current, broker_id, ctx.defaults)?, Report::Nothing, false)),
        MetadataMutation::UnfenceBroker { broker_id } => Ok(Plan::new(unfence_broker(current, broker_id, ctx.defaults)?, Report::Nothing, false)),
        MetadataMutation::AlterPartition { topic_id, partition, leader_id, leader_epoch, partition_epoch, new_isr } => {
            let request = AlterPartitionRequest { topic_id, partition, leader_id, leader_epoch, partition_epoch, new_isr };
            let (name, record) = alter_partition(current, &request)?;
            Ok(Plan::new(record.into_iter().collect(), Report::TopicAfter(name), false))
        }
        MetadataMutation::ElectLeader { topic, partition, preferred } => {
            let (name, record) = elect_leaders(current, &topic, partition, preferred)?;
            Ok(Plan::new(vec![record], Report::TopicAfter(name), false))
        }
        MetadataMutation::ReassignPartition { topic, partition, target } => {
            let (name, record) = reassign(current, &topic, partition, target, ctx.defaults)?;
            Ok(Plan::new(record.into_iter().collect(), Report::TopicAfter(name), false))
        }
    }
}

/// The records of a registration: the broker is fenced by it, unless this is a single node,
/// where it is unfenced in the same frame. A live (unfenced) broker that registers again leaves
/// the ISRs it was in and its leaderships first.
fn register_broker(current: &ClusterSnapshot, ctx: &PlanContext<'_>, registration: BrokerRegistration) -> Vec<MetadataRecord> {
    let broker_id = registration.broker_id;
    let single_node = ctx.single_node(current) && broker_id == ctx.node_id;
    let mut records = Vec::new();
    if !single_node && current.is_unfenced(broker_id) {
        records.extend(fence_partition_changes(current, broker_id, ctx.defaults));
    }
    records.push(MetadataRecord::RegisterBroker(registration));
    if single_node {
        records.push(MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id, fenced: false }));
        records.extend(unfence_partition_changes(current, broker_id, ctx.defaults));
    }
    records
}

/// The records of new partitions `first..` of a topic, one per entry of `replicas`, each placed
/// on the least-loaded shard: the active (unfenced) replicas in sync, the first of them leader
/// (Kafka's preferred leader). Planning has checked that each partition has one.
fn partition_records(
    current: &ClusterSnapshot,
    ctx: &PlanContext<'_>,
    topic_id: Uuid,
    first: usize,
    replicas: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> {
    let owners = place(&current.load_per_shard(ctx.shards), replicas.len());
    let mut active: Vec<i32> = replicas.iter().flatten().copied().filter(|r| is_active(current, ctx, *r)).collect();
    active.sort_unstable();
    active.dedup();
    owners.into_iter().zip(replicas).enumerate().map(move |(i, (owner_shard, replicas))| {
        let isr: Vec<i32> = replicas.iter().copied().filter(|r| active.contains(r)).collect();
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: (first + i) as i32,
            leader: isr.first().copied().unwrap_or(NO_LEADER),
            isr,
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            owner_shard,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        })
    })
}

/// Kafka's checks of a manual replica assignment: at least one partition, and each partition's
/// replicas non-empty, distinct and registered brokers, at least one of them unfenced (KRaft).
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
        if !replicas.iter().any(|id| is_active(current, ctx, *id)) {
            return invalid(format!("all brokers of the manual partition assignment of partition {partition} are fenced"));
        }
    }
    Ok(())
}

/// The records that turn one broker's dynamic configs (`None`: the cluster default) into the
/// wanted ones: only the difference, deletes first.
fn broker_config_records(
    current: &ClusterSnapshot,
    broker_id: Option<i32>,
    changes: Vec<(String, Option<String>)>,
    incremental: bool,
) -> Vec<MetadataRecord> {
    let resource = broker_id.map_or(ConfigResource::BrokerDefault, |broker_id| ConfigResource::Broker { broker_id });
    let layers = current.dynamic_configs(broker_id.unwrap_or(i32::MIN));
    let existing = if broker_id.is_some() { layers.broker } else { layers.cluster_default };
    let mut wanted = if incremental { existing.clone() } else { BTreeMap::new() };
    for (k, v) in changes {
        match v {
            Some(v) => wanted.insert(k, v),
            None => wanted.remove(&k),
        };
    }
    let record = |name: String, value: Option<String>| MetadataRecord::Config(ConfigRecord { resource: resource.clone(), name, value });
    let mut records: Vec<MetadataRecord> = existing.keys().filter(|k| !wanted.contains_key(*k)).map(|k| record(k.clone(), None)).collect();
    records.extend(wanted.into_iter().filter(|(k, v)| existing.get(k) != Some(v)).map(|(k, v)| record(k, Some(v))));
    records
}

/// When `records` switch the cluster-wide `unclean.leader.election.enable` on, the elections of
/// every leaderless partition whose topic does not override it off, in the same frame (Kafka's
/// controller elects leaderless partitions once unclean elections are allowed; the controller
/// reads the cluster-level default, not one broker's).
fn unclean_elections_for_cluster_default(current: &ClusterSnapshot, defaults: &BTreeMap<String, String>, records: &[MetadataRecord]) -> Vec<MetadataRecord> {
    let key = "unclean.leader.election.enable";
    let set_to = records.iter().find_map(|r| match r {
        MetadataRecord::Config(c) if c.name == key => c.value.clone(),
        _ => None,
    });
    let Some(value) = set_to else { return Vec::new() };
    let mut defaults = defaults.clone();
    defaults.insert(key.to_string(), value);
    if !unclean_leader_election_enabled(&defaults, &BTreeMap::new()) {
        return Vec::new();
    }
    current
        .topics
        .values()
        .filter(|t| unclean_leader_election_enabled(&defaults, &t.configs))
        .flat_map(|t| unclean_elections_for_topic(current, t))
        .collect()
}

fn topic_config(topic: &str, name: String, value: Option<String>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord { resource: ConfigResource::Topic { name: topic.to_string() }, name, value })
}
