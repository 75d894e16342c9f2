//! TxnOffsetCommit: a transaction's consumed offsets, written to `__consumer_offsets` as the
//! transaction's producer; they count once its commit marker lands there (KIP-98, KIP-447).

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::codes::ErrorCode;
use crate::group::{CommitPart, GroupCall, GroupReply, TxnProducer};
use crate::protocol::RequestContext;

/// Versions served (Kafka 4.0: 0–5; v3 adds group metadata, v5 is transaction version 2).
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles TxnOffsetCommit.
pub async fn handle(ctx: &RequestContext<'_>, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
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
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        parts,
        txn: Some(TxnProducer { producer_id: req.producer_id.0, producer_epoch: req.producer_epoch }),
    };
    let codes = match ctx.router.group_call(&group, call).await {
        GroupReply::Committed(codes) => codes,
        other => vec![other.refusal_code(); n],
    };
    tracing::debug!(group = %group, transactional_id = %req.transactional_id.0, partitions = n, "transactional offset commit");
    let mut codes = codes.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or(ErrorCode::COORDINATOR_NOT_AVAILABLE).code())
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
