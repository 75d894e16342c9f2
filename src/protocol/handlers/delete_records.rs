//! DeleteRecords: moves the log start offset forward; whole segments below it are deleted.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::query_partitions;
use crate::protocol::RequestContext;
use crate::shard::messages::ShardRequest;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Handles DeleteRecords.
pub async fn handle(ctx: &RequestContext<'_>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| (t.name.0.to_string(), t.partitions.into_iter().map(|p| (p.partition_index, p.offset)).collect()))
        .collect();
    let answers = query_partitions(ctx.router, topics, ShardRequest::DeleteRecords).await;
    let topics = answers
        .into_iter()
        .map(|(name, parts)| {
            DeleteRecordsTopicResult::default()
                .with_name(kafka_protocol::messages::TopicName(super::str_bytes(name)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, a)| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p)
                                .with_error_code(a.error_code.code())
                                .with_low_watermark(a.offset)
                        })
                        .collect(),
                )
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
