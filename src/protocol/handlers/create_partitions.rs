//! CreatePartitions: grows a topic; new partitions go to the least-loaded shards.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::MetadataMutation;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 3);

/// Handles CreatePartitions.
pub async fn handle(ctx: &RequestContext<'_>, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let r = ctx
            .router
            .mutate(MetadataMutation::CreatePartitions {
                name: name.clone(),
                count: t.count,
                validate_only: req.validate_only,
                // New partitions get the topic's replication factor, as in Kafka.
                replication_factor: -1,
            })
            .await;
        let error_code = r.as_ref().err().map_or(ErrorCode::NONE, ErrorCode::from);
        tracing::info!(topic = %name, count = t.count, error_code = error_code.code(), "create partitions");
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(error_code.code())
                .with_error_message(r.err().map(|e| str_bytes(e.to_string()))),
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}
