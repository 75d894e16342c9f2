//! TxnOffsetCommit: a transaction's consumed offsets, written to `__consumer_offsets` as the
//! transaction's producer; they count once its commit marker lands there (KIP-98, KIP-447).

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic;
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::codes::ErrorCode;
use crate::group::{CommitPart, GroupCall, GroupReply, OFFSETS_TOPIC, TxnProducer, partition_for};
use crate::protocol::RequestContext;
use crate::types::TopicPartition;

/// Versions served (Kafka 4.0: 0–5; v3 adds group metadata, v5 is transaction version 2).
pub const VERSIONS: (i16, i16) = (0, 5);
/// From this version the offsets partition is verified to be in the transaction (KIP-890).
const VERIFIED_VERSION: i16 = 4;
/// From this version it is added when it is not (transaction version 2).
const ADDS_VERSION: i16 = 5;

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
    let producer = TxnProducer { producer_id: req.producer_id.0, producer_epoch: req.producer_epoch };
    // KIP-890: the group's `__consumer_offsets` partition must be in the transaction (v5, a
    // transaction version 2 producer, adds it here: it sends no AddOffsetsToTxn).
    if ctx.version >= VERIFIED_VERSION {
        let offsets = TopicPartition::new(OFFSETS_TOPIC, partition_for(&group, ctx.router.shard.config.group.offsets_topic_partitions));
        let verdict = ctx
            .router
            .txn_verify(&req.transactional_id.0, producer.producer_id, producer.producer_epoch, vec![offsets], ctx.version >= ADDS_VERSION)
            .await;
        if let Some((_, code)) = verdict.into_iter().find(|(_, code)| code.is_err()) {
            tracing::debug!(group = %group, code = ?code, "transactional offset commit not verified");
            return response(req.topics, std::iter::repeat(code));
        }
    }
    let call = GroupCall::Commit {
        group: group.clone(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        parts,
        txn: Some(producer),
    };
    let codes = match ctx.router.group_call(&group, call).await {
        GroupReply::Committed(codes) => codes,
        other => vec![other.refusal_code(); n],
    };
    tracing::debug!(group = %group, transactional_id = %req.transactional_id.0, partitions = n, "transactional offset commit");
    response(req.topics, codes.into_iter())
}

/// The response: each partition of `topics` with the next of `codes`.
fn response(topics: Vec<TxnOffsetCommitRequestTopic>, mut codes: impl Iterator<Item = ErrorCode>) -> TxnOffsetCommitResponse {
    let topics = topics
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
