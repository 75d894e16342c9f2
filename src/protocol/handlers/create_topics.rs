//! CreateTopics: validated and applied by the controller (shard 0), then opened on the owners.

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::{MetadataError, MetadataMutation};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (2, 7);

/// Handles CreateTopics.
pub async fn handle(ctx: &RequestContext<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let router = ctx.router;
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        // -1 means the broker default (KIP-464).
        let partitions = if t.num_partitions == -1 { router.shard.config.num_partitions } else { t.num_partitions };
        let rf = t.replication_factor;
        let configs = t
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let result = if rf != -1 && rf != 1 {
            Err(MetadataError::InvalidReplicationFactor { factor: rf, brokers: 1 })
        } else {
            router
                .mutate(MetadataMutation::CreateTopic { name: name.clone(), partitions, configs, validate_only: req.validate_only })
                .await
        };
        let error_code = result.as_ref().err().map_or(ErrorCode::NONE, ErrorCode::from);
        tracing::info!(topic = %name, partitions, error_code = error_code.code(), validate_only = req.validate_only, "create topic");
        let mut r = CreatableTopicResult::default()
            .with_name(t.name)
            .with_error_code(error_code.code())
            .with_error_message(result.as_ref().err().map(|e| str_bytes(e.to_string())));
        if ctx.version >= 5 {
            r = r.with_num_partitions(if error_code.is_none() { partitions } else { -1 })
                .with_replication_factor(if error_code.is_none() { 1 } else { -1 });
        }
        if let (true, Ok(crate::metadata::MutationOutcome { topic: Some(topic), .. })) = (ctx.version >= 7, result) {
            r = r.with_topic_id(topic.id);
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}
