//! One file per Kafka API. Each declares `VERSIONS` (the range Ringlog serves, at least Apache
//! Kafka 4.0's) and `handle`: decode → log → (authorize, later) → work → respond.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod txn_offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod write_txn_markers;

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;

use crate::codes::ErrorCode;
use crate::metadata::{BrokerEndpoint, ClusterSnapshot, MetadataError, MetadataMutation, MutationOutcome, TopicMeta, valid_topic_name};
use crate::shard::Router;
use crate::shard::messages::{OffsetAnswer, ShardRequest};
use crate::types::TopicPartition;

/// Turns a `String` into the codec's string type.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A transaction coordinator's code as a client of `version` knows it: PRODUCER_FENCED is
/// INVALID_PRODUCER_EPOCH before `first_fenced_version`, as Kafka answers older clients.
pub fn txn_code(code: ErrorCode, version: i16, first_fenced_version: i16) -> ErrorCode {
    if code == ErrorCode::PRODUCER_FENCED && version < first_fenced_version { ErrorCode::INVALID_PRODUCER_EPOCH } else { code }
}

/// The registered brokers' endpoints on `listener`, as `(broker id, endpoint, rack)`: Kafka lists
/// a broker in Metadata and DescribeCluster only at the listener the request arrived on.
pub fn broker_endpoints<'a>(
    snapshot: &'a ClusterSnapshot,
    listener: &'a str,
) -> impl Iterator<Item = (i32, &'a BrokerEndpoint, Option<&'a String>)> + 'a {
    // Fenced brokers are left out, as Kafka leaves them out: clients must not be sent there.
    snapshot.brokers.values().filter(|b| !snapshot.fenced.contains(&b.broker_id)).filter_map(move |b| {
        let endpoint = b.endpoints.iter().find(|e| e.listener == listener)?;
        Some((b.broker_id, endpoint, b.rack.as_ref()))
    })
}

/// The replication factor of a new topic: the requested one, or `default.replication.factor`
/// for -1. Refused, as in Kafka, when fewer brokers are registered.
pub fn replication_factor(router: &Router, requested: i16) -> Result<i16, MetadataError> {
    let factor = if requested == -1 { router.shard.config.cluster.default_replication_factor } else { requested };
    let brokers = router.shard.metadata.load().unfenced_brokers().len().max(1);
    if factor < 1 || factor as usize > brokers {
        return Err(MetadataError::InvalidReplicationFactor { factor, brokers });
    }
    Ok(factor)
}

/// Finds a topic, creating it with `num.partitions` when auto-creation is on and `allow`.
/// Returns the Kafka error code when it neither exists nor can be created.
pub async fn topic_or_create(router: &Router, name: &str, allow: bool) -> Result<Arc<TopicMeta>, ErrorCode> {
    if let Some(t) = router.shard.metadata.load().topics.get(name) {
        return Ok(Arc::clone(t));
    }
    if !valid_topic_name(name) {
        return Err(ErrorCode::INVALID_TOPIC_EXCEPTION);
    }
    if !(allow && router.shard.config.auto_create_topics) {
        return Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    }
    if name == crate::group::OFFSETS_TOPIC || name == crate::txn::TXN_STATE_TOPIC {
        // Internal: the controller creates it with offsets.topic.* settings once enough brokers
        // are up; created here it would get num.partitions and the default replication factor.
        return Err(ErrorCode::LEADER_NOT_AVAILABLE);
    }
    let factor = match replication_factor(router, -1) {
        Ok(factor) => factor,
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "topic not auto-created");
            return Err(ErrorCode::from(&e));
        }
    };
    let result = router
        .mutate(MetadataMutation::CreateTopic {
            name: name.to_string(),
            partitions: router.shard.config.num_partitions,
            configs: BTreeMap::new(),
            validate_only: false,
            assignment: None,
            replication_factor: factor,
        })
        .await;
    match result {
        Ok(MutationOutcome { topic: Some(t), .. }) => {
            tracing::info!(topic = name, partitions = t.partitions.len(), "auto-created topic");
            Ok(t)
        }
        // Another connection created it first.
        Err(MetadataError::TopicAlreadyExists { .. }) => router
            .shard.metadata
            .load()
            .topics
            .get(name)
            .cloned()
            .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        Ok(_) => Err(ErrorCode::UNKNOWN_SERVER_ERROR),
        Err(e) => Err(ErrorCode::from(&e)),
    }
}

/// Runs a per-partition query on the owner shards, concurrently. Takes and returns
/// `(topic, [(partition, item)])` in request order; unknown partitions get
/// UNKNOWN_TOPIC_OR_PARTITION. ListOffsets, OffsetForLeaderEpoch and DeleteRecords share it.
pub async fn query_partitions<T>(
    router: &Router,
    topics: Vec<(String, Vec<(i32, T)>)>,
    make: fn(Vec<(TopicPartition, T)>) -> ShardRequest,
) -> Vec<(String, Vec<(i32, OffsetAnswer)>)> {
    let snapshot = router.shard.metadata.load();
    let mut shape = Vec::with_capacity(topics.len());
    let mut items = Vec::new();
    for (name, parts) in topics {
        let mut answered = Vec::with_capacity(parts.len());
        for (p, item) in parts {
            // Known partitions are answered by their owner, in order; the rest here.
            let owner = snapshot.owner(&name, p);
            answered.push((p, owner.is_none()));
            if let Some(owner) = owner {
                items.push((owner, (TopicPartition::new(name.clone(), p), item)));
            }
        }
        shape.push((name, answered));
    }
    let mut answers = router
        .split_join(items, make, |response| response.into_offsets(), OffsetAnswer::failed)
        .await
        .into_iter();
    shape
        .into_iter()
        .map(|(name, parts)| {
            let parts = parts
                .into_iter()
                .map(|(p, unknown)| {
                    let answer = if unknown { None } else { answers.next() };
                    (p, answer.unwrap_or(OffsetAnswer::failed(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)))
                })
                .collect();
            (name, parts)
        })
        .collect()
}

/// The error code of a single-code group reply; the refusal's code (or COORDINATOR_NOT_AVAILABLE) otherwise.
pub fn group_code(reply: crate::group::GroupReply) -> crate::codes::ErrorCode {
    match reply {
        crate::group::GroupReply::Code(c) => c,
        other => other.refusal_code(),
    }
}
