//! ListOffsets: earliest (-2, -4), latest (-1), max timestamp (-3), or by timestamp.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::query_partitions;
use crate::protocol::RequestContext;
use crate::shard::messages::{OffsetQuery, ShardRequest};

/// Versions served.
pub const VERSIONS: (i16, i16) = (1, 10);

fn query(ts: i64) -> OffsetQuery {
    match ts {
        -1 => OffsetQuery::Latest,
        -2 | -4 | -5 => OffsetQuery::Earliest,
        -3 => OffsetQuery::MaxTimestamp,
        t => OffsetQuery::Timestamp(t),
    }
}

/// Handles ListOffsets.
pub async fn handle(ctx: &RequestContext<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| (t.name.0.to_string(), t.partitions.into_iter().map(|p| (p.partition_index, query(p.timestamp))).collect()))
        .collect();
    let version = ctx.version;
    let answers = query_partitions(ctx.router, topics, ShardRequest::ListOffsets).await;
    let topics = answers
        .into_iter()
        .map(|(name, parts)| {
            ListOffsetsTopicResponse::default()
                .with_name(kafka_protocol::messages::TopicName(super::str_bytes(name)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, a)| {
                            let r = ListOffsetsPartitionResponse::default()
                                .with_partition_index(p)
                                .with_error_code(a.error_code.code())
                                .with_offset(a.offset)
                                .with_timestamp(a.timestamp_or_epoch);
                            if version >= 4 { r.with_leader_epoch(0) } else { r }
                        })
                        .collect(),
                )
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
