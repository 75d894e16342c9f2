//! DescribeLogDirs: the broker's one log directory (the data directory), each partition's log
//! size, and (v4+) the volume's total and usable bytes.
//!
//! The sizes live on the partitions' owner shards: one data-plane request per owner
//! ([`ShardRequest::LogSizes`]) reads them. As Kafka, a partition this broker holds no log for
//! is left out, and so is a topic left with no partitions.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::ClusterSnapshot;
use crate::protocol::RequestContext;
use crate::shard::messages::{LogSize, ShardRequest, ShardResponse};
use crate::storage::volume::volume_space;
use crate::types::{ShardId, TopicPartition};

/// Versions served (Kafka 4.0 dropped v0).
pub const VERSIONS: (i16, i16) = (1, 4);

/// Handles DescribeLogDirs.
pub async fn handle(ctx: &RequestContext<'_>, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let router = ctx.router;
    let data_dir = &router.shard.config.data_dir;
    let log_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.clone()).to_string_lossy().into_owned();
    let mut result = DescribeLogDirsResult::default().with_log_dir(str_bytes(log_dir.clone()));
    match volume_space(data_dir) {
        // Java's FileStore reports a volume past i64::MAX as i64::MAX, as Kafka does.
        Ok(space) => {
            result.total_bytes = i64::try_from(space.total_bytes).unwrap_or(i64::MAX);
            result.usable_bytes = i64::try_from(space.usable_bytes).unwrap_or(i64::MAX);
        }
        // A data directory that cannot be read is offline: Kafka answers it with no topics.
        Err(e) => {
            tracing::warn!(log_dir = %log_dir, error = %e, "describe log dirs: cannot stat the data directory");
            let result = result.with_error_code(ErrorCode::KAFKA_STORAGE_ERROR.code()).with_total_bytes(-1).with_usable_bytes(-1);
            return DescribeLogDirsResponse::default().with_results(vec![result]);
        }
    }

    let wanted = wanted_partitions(&router.shard.metadata.load(), req.topics.as_deref());
    let items: Vec<(ShardId, TopicPartition)> = wanted.iter().map(|(owner, tp)| (*owner, tp.clone())).collect();
    let sizes = router.split_join(items, ShardRequest::LogSizes, ShardResponse::into_log_sizes, LogSize::failed).await;

    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    let mut dir_error = ErrorCode::NONE;
    for ((_, tp), size) in wanted.into_iter().zip(sizes) {
        match size.error_code {
            ErrorCode::NONE => topics.entry(tp.topic).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_partition_size(i64::try_from(size.size_bytes).unwrap_or(i64::MAX))
                    // A single replica is its own high watermark; no future (moving) logs.
                    .with_offset_lag(0)
                    .with_is_future_key(false),
            ),
            // No log here (being created or deleted): not in this directory, as Kafka.
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => {}
            // The owner did not answer: the directory's answer is incomplete, and says so.
            code => {
                tracing::warn!(partition = %tp, error = ?code, "describe log dirs: no size from the owner shard");
                if dir_error.is_none() {
                    dir_error = code;
                }
            }
        }
    }
    tracing::debug!(log_dir = %log_dir, topics = topics.len(), version = ctx.version, "describe log dirs");
    result.error_code = dir_error.code();
    result.topics = topics
        .into_iter()
        .map(|(name, partitions)| DescribeLogDirsTopic::default().with_name(TopicName(str_bytes(name))).with_partitions(partitions))
        .collect();
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The partitions asked about that exist, with their owners, sorted and once each: every
/// partition when `topics` is null, as Kafka.
fn wanted_partitions(
    snapshot: &ClusterSnapshot,
    topics: Option<&[kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic]>,
) -> Vec<(ShardId, TopicPartition)> {
    let asked: BTreeSet<(String, i32)> = match topics {
        None => snapshot
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len()).filter_map(|i| Some((t.name.clone(), i32::try_from(i).ok()?))))
            .collect(),
        Some(topics) => topics.iter().flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p))).collect(),
    };
    asked
        .into_iter()
        .filter_map(|(topic, partition)| Some((snapshot.owner(&topic, partition)?, TopicPartition::new(topic, partition))))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use uuid::Uuid;

    use super::*;
    use crate::metadata::{PartitionMeta, TopicMeta};

    fn snapshot() -> ClusterSnapshot {
        let mut s = ClusterSnapshot::empty("test");
        for (name, count) in [("b", 2), ("a", 1)] {
            let partitions = (0..count)
                .map(|i| PartitionMeta { owner: ShardId(i), leader_epoch: 0, replicas: vec![1], isr: vec![1], leader: 1, partition_epoch: 0, adding_replicas: Vec::new(), removing_replicas: Vec::new() })
                .collect();
            let meta = TopicMeta { name: name.into(), id: Uuid::new_v4(), partitions, configs: BTreeMap::new() };
            s.topics.insert(name.into(), Arc::new(meta));
        }
        s
    }

    fn names(wanted: &[(ShardId, TopicPartition)]) -> Vec<(usize, String, i32)> {
        wanted.iter().map(|(o, tp)| (o.0, tp.topic.clone(), tp.partition)).collect()
    }

    #[test]
    fn null_topics_means_every_partition_with_its_owner() {
        let got = wanted_partitions(&snapshot(), None);
        assert_eq!(names(&got), vec![(0, "a".into(), 0), (0, "b".into(), 0), (1, "b".into(), 1)]);
    }

    #[test]
    fn named_partitions_that_do_not_exist_are_left_out_and_repeats_answered_once() {
        let asked = vec![
            DescribableLogDirTopic::default().with_topic(TopicName(str_bytes("b"))).with_partitions(vec![1, 7, 1, -1]),
            DescribableLogDirTopic::default().with_topic(TopicName(str_bytes("nope"))).with_partitions(vec![0]),
        ];
        let got = wanted_partitions(&snapshot(), Some(&asked));
        assert_eq!(names(&got), vec![(1, "b".into(), 1)]);
        assert!(wanted_partitions(&snapshot(), Some(&[])).is_empty());
    }
}
