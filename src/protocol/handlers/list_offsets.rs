//! ListOffsets: earliest (-2, -4), latest (-1: the high watermark, or the last stable offset
//! for read_committed), max timestamp (-3), or by timestamp; the last two only below that
//! bound, as Kafka's.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::query_partitions;
use crate::protocol::RequestContext;
use crate::shard::messages::{ListOffsetsPart, OffsetQuery, ShardRequest};

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
    // isolation_level 1 (read_committed): "latest" is the last stable offset, and no lookup
    // answers at or past it.
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| (t.name.0.to_string(), t.partitions.into_iter().map(|p| (p.partition_index, ListOffsetsPart { query: query(p.timestamp), read_committed, current_leader_epoch: p.current_leader_epoch })).collect()))
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
                                .with_timestamp(a.timestamp);
                            if version >= 4 { r.with_leader_epoch(a.leader_epoch) } else { r }
                        })
                        .collect(),
                )
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
