//! CreateTopics: validated and applied by the controller (shard 0), then opened on the owners.

use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{replication_factor, str_bytes};
use crate::codes::ErrorCode;
use crate::metadata::{MetadataError, MetadataMutation};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (2, 7);

/// The client's manual replica assignment, one replica list per partition in partition order;
/// `None` when it sent none. Its partition indexes must be 0, 1, … with none missing, as in Kafka.
fn manual_assignment(assignments: &[CreatableReplicaAssignment]) -> Result<Option<Vec<Vec<i32>>>, MetadataError> {
    if assignments.is_empty() {
        return Ok(None);
    }
    let mut sorted: Vec<&CreatableReplicaAssignment> = assignments.iter().collect();
    sorted.sort_by_key(|a| a.partition_index);
    for (expected, a) in sorted.iter().enumerate() {
        if a.partition_index != expected as i32 {
            return Err(MetadataError::InvalidReplicaAssignment {
                reason: format!(
                    "found a partition assignment for partition {}, but the next partition should be {expected}",
                    a.partition_index
                ),
            });
        }
    }
    Ok(Some(sorted.into_iter().map(|a| a.broker_ids.iter().map(|b| b.0).collect()).collect()))
}

/// Handles CreateTopics.
pub async fn handle(ctx: &RequestContext<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let router = ctx.router;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let rf = t.replication_factor;
        let configs = t
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        // -1 means the broker default (KIP-464); a manual assignment says both itself.
        let assignment = manual_assignment(&t.assignments);
        let (partitions, mut replication) = match &assignment {
            Ok(Some(a)) => (a.len() as i32, a.first().map_or(0, |r| r.len() as i16)),
            _ if t.num_partitions == -1 => (router.shard.config.num_partitions, 1),
            _ => (t.num_partitions, 1),
        };
        let checked = match assignment {
            Err(e) => Err(e),
            Ok(Some(_)) if t.num_partitions != -1 || rf != -1 => Err(MetadataError::InvalidRequest {
                reason: "a manual partition assignment was given, but numPartitions or replicationFactor was not -1".into(),
            }),
            Ok(Some(assignment)) => Ok((Some(assignment), -1)),
            Ok(None) => replication_factor(router, rf).map(|factor| (None, factor)),
        };
        let result = match checked {
            Err(e) => Err(e),
            Ok((assignment, replication_factor)) => {
                if assignment.is_none() {
                    replication = replication_factor;
                }
                let m = MetadataMutation::CreateTopic {
                    name: name.clone(),
                    partitions,
                    configs,
                    validate_only: req.validate_only,
                    assignment,
                    replication_factor,
                };
                router.mutate(m).await
            }
        };
        let error_code = result.as_ref().err().map_or(ErrorCode::NONE, ErrorCode::from);
        tracing::info!(topic = %name, partitions, error = %error_code, validate_only = req.validate_only, "create topic");
        let mut r = CreatableTopicResult::default()
            .with_name(t.name)
            .with_error_code(error_code.code())
            .with_error_message(result.as_ref().err().map(|e| str_bytes(e.to_string())));
        if ctx.version >= 5 {
            r = r.with_num_partitions(if error_code.is_none() { partitions } else { -1 })
                .with_replication_factor(if error_code.is_none() { replication } else { -1 });
        }
        if let (true, Ok(crate::metadata::MutationOutcome { topic: Some(topic), .. })) = (ctx.version >= 7, result) {
            r = r.with_topic_id(topic.id);
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}
