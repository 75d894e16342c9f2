//! AlterPartitionReassignments (KIP-455): starts, replaces or cancels (null replicas) the
//! reassignment of each partition named, on the active controller
//! (`metadata::reassignment::reassign`). The move itself completes later, when the leader's
//! AlterPartition brings every target replica into the ISR.

use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::{MetadataError, MetadataMutation};
use crate::protocol::RequestContext;

/// Versions served (v1: KIP-860's `allow_replication_factor_change`).
pub const VERSIONS: (i16, i16) = (0, 1);

/// Handles AlterPartitionReassignments.
pub async fn handle(ctx: &RequestContext<'_>, req: AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    // Before v1 a replication factor change is always allowed (the field's default is true).
    let allow_rf_change = ctx.version == 0 || req.allow_replication_factor_change;
    let mut responses = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = t.name.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            let outcome = match rf_change_refused(ctx, allow_rf_change, &topic, p.partition_index, target.as_deref()) {
                Some(e) => Err(e),
                None => {
                    let m = MetadataMutation::ReassignPartition { topic: topic.clone(), partition: p.partition_index, target: target.clone() };
                    ctx.router.mutate(m).await.map(|_| ())
                }
            };
            let error_code = outcome.as_ref().err().map_or(ErrorCode::NONE, ErrorCode::from);
            tracing::info!(topic = %topic, partition = p.partition_index, target = ?target, error = %error_code, "alter partition reassignment");
            partitions.push(
                ReassignablePartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error_code.code())
                    .with_error_message(outcome.err().map(|e| str_bytes(e.to_string()))),
            );
        }
        responses.push(ReassignableTopicResponse::default().with_name(t.name).with_partitions(partitions));
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_error_code(ErrorCode::NONE.code())
        .with_responses(responses)
}

/// KIP-860: with `allow_replication_factor_change` false, a target of another size than the
/// partition's replicas (without a reassignment's adding ones) is INVALID_REPLICATION_FACTOR.
fn rf_change_refused(ctx: &RequestContext<'_>, allow: bool, topic: &str, partition: i32, target: Option<&[i32]>) -> Option<MetadataError> {
    let target = target.filter(|_| !allow)?;
    let snapshot = ctx.router.shard.metadata.load();
    let p = snapshot.partition(topic, partition)?;
    let current = p.replicas.iter().filter(|r| !p.adding_replicas.contains(r)).count();
    (current != target.len()).then_some(MetadataError::InvalidReplicationFactor { factor: target.len() as i16, brokers: current })
}
