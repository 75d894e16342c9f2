//! OffsetForLeaderEpoch: the end offset of a leader epoch, for truncation after leader changes.

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::query_partitions;
use crate::protocol::RequestContext;
use crate::shard::messages::{EpochQuery, ShardRequest};

/// Versions served.
pub const VERSIONS: (i16, i16) = (2, 4);

/// Handles OffsetForLeaderEpoch.
pub async fn handle(ctx: &RequestContext<'_>, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.into_iter().map(|p| (p.partition, EpochQuery { leader_epoch: p.leader_epoch, current_leader_epoch: p.current_leader_epoch })).collect()))
        .collect();
    let answers = query_partitions(ctx.router, topics, ShardRequest::EpochEndOffsets).await;
    let topics = answers
        .into_iter()
        .map(|(name, parts)| {
            OffsetForLeaderTopicResult::default()
                .with_topic(kafka_protocol::messages::TopicName(super::str_bytes(name)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, a)| {
                            EpochEndOffset::default()
                                .with_partition(p)
                                .with_error_code(a.error_code.code())
                                .with_leader_epoch(a.leader_epoch)
                                .with_end_offset(a.offset)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
