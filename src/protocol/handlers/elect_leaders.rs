//! ElectLeaders: preferred or unclean leader election per partition, planned on the active
//! controller (`metadata::reassignment::elect_leaders`). As in Kafka, the UNCLEAN type elects a
//! replica outside the ISR for a leaderless partition whatever the topic's
//! `unclean.leader.election.enable`.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::MetadataMutation;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Kafka's `ElectionType.PREFERRED` (v0 requests are always preferred).
const PREFERRED: i8 = 0;

/// Handles ElectLeaders.
pub async fn handle(ctx: &RequestContext<'_>, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let preferred = ctx.version == 0 || req.election_type == PREFERRED;
    // No partitions named: every partition of every topic, and, as in Kafka, only those whose
    // election was needed are reported.
    let all = req.topic_partitions.is_none();
    let wanted: Vec<(String, Vec<i32>)> = match req.topic_partitions {
        Some(topics) => topics.into_iter().map(|t| (t.topic.0.to_string(), t.partitions)).collect(),
        None => {
            let snapshot = ctx.router.shard.metadata.load();
            snapshot.topics.values().map(|t| (t.name.clone(), (0..t.partitions.len() as i32).collect())).collect()
        }
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (topic, partitions) in wanted {
        let mut partition_result = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let m = MetadataMutation::ElectLeader { topic: topic.clone(), partition, preferred };
            let outcome = ctx.router.mutate(m).await;
            let error_code = outcome.as_ref().err().map_or(ErrorCode::NONE, ErrorCode::from);
            tracing::info!(topic = %topic, partition, preferred, error = %error_code, "elect leaders");
            if all && error_code == ErrorCode::ELECTION_NOT_NEEDED {
                continue;
            }
            partition_result.push(
                PartitionResult::default()
                    .with_partition_id(partition)
                    .with_error_code(error_code.code())
                    .with_error_message(outcome.err().map(|e| str_bytes(e.to_string()))),
            );
        }
        if !partition_result.is_empty() || !all {
            results.push(ReplicaElectionResult::default().with_topic(TopicName(str_bytes(topic))).with_partition_result(partition_result));
        }
    }
    ElectLeadersResponse::default().with_error_code(ErrorCode::NONE.code()).with_replica_election_results(results)
}
