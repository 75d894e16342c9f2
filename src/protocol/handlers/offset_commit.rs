//! OffsetCommit: committed offsets become records in `__consumer_offsets`, acknowledged once durable.

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::codes::ErrorCode;
use crate::group::{CommitPart, GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served (Kafka 4.0: 2–9).
pub const VERSIONS: (i16, i16) = (2, 9);

/// Handles OffsetCommit.
pub async fn handle(ctx: &RequestContext<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let parts: Vec<CommitPart> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitPart {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let n = parts.len();
    let call = GroupCall::Commit {
        group: group.clone(),
        generation: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        parts,
        txn: None,
    };
    let codes = match ctx.router.group_call(&group, call).await {
        GroupReply::Committed(codes) => codes,
        other => vec![other.refusal_code(); n],
    };
    tracing::debug!(group = %group, partitions = n, "offset commit");
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or(ErrorCode::COORDINATOR_NOT_AVAILABLE).code())
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
