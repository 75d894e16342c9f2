//! ListPartitionReassignments (KIP-455): the reassignments in progress, with their adding and
//! removing replicas, from this broker's metadata snapshot.

use kafka_protocol::messages::list_partition_reassignments_response::{OngoingPartitionReassignment, OngoingTopicReassignment};
use kafka_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::{PartitionMeta, TopicMeta};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 0);

/// Handles ListPartitionReassignments.
pub async fn handle(ctx: &RequestContext<'_>, req: ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let snapshot = ctx.router.shard.metadata.load();
    // Named partitions that are unknown or not reassigning are left out, as in Kafka.
    let topics: Vec<OngoingTopicReassignment> = match req.topics {
        Some(wanted) => wanted
            .into_iter()
            .filter_map(|t| {
                let meta = snapshot.topics.get(t.name.0.as_str())?;
                let partitions = t.partition_indexes.into_iter().filter_map(|i| ongoing(meta, i)).collect();
                Some(topic_entry(meta, partitions))
            })
            .collect(),
        None => snapshot
            .topics
            .values()
            .map(|meta| topic_entry(meta, (0..meta.partitions.len() as i32).filter_map(|i| ongoing(meta, i)).collect()))
            .collect(),
    };
    let topics: Vec<_> = topics.into_iter().filter(|t| !t.partitions.is_empty()).collect();
    tracing::info!(topics = topics.len(), "list partition reassignments");
    ListPartitionReassignmentsResponse::default().with_error_code(ErrorCode::NONE.code()).with_topics(topics)
}

fn topic_entry(meta: &TopicMeta, partitions: Vec<OngoingPartitionReassignment>) -> OngoingTopicReassignment {
    OngoingTopicReassignment::default().with_name(TopicName(str_bytes(meta.name.clone()))).with_partitions(partitions)
}

/// Partition `index` of `meta` when a reassignment of it is in progress.
fn ongoing(meta: &TopicMeta, index: i32) -> Option<OngoingPartitionReassignment> {
    let p: &PartitionMeta = meta.partitions.get(usize::try_from(index).ok()?)?;
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    p.reassigning().then(|| {
        OngoingPartitionReassignment::default()
            .with_partition_index(index)
            .with_replicas(ids(&p.replicas))
            .with_adding_replicas(ids(&p.adding_replicas))
            .with_removing_replicas(ids(&p.removing_replicas))
    })
}
