//! CreateTopics: validated and applied by the controller (shard 0), then opened on the owners.

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::str_bytes;
use crate::error::code;
use crate::metadata::MetadataMutation;
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
            crate::metadata::MutationResult {
                error_code: code::INVALID_REPLICATION_FACTOR,
                message: Some(format!("replication factor {rf} is larger than the 1 available broker")),
                topic: None,
                producer_id: -1,
            }
        } else {
            router
                .mutate(MetadataMutation::CreateTopic { name: name.clone(), partitions, configs, validate_only: req.validate_only })
                .await
        };
        tracing::info!(topic = %name, partitions, error_code = result.error_code, validate_only = req.validate_only, "create topic");
        let mut r = CreatableTopicResult::default()
            .with_name(t.name)
            .with_error_code(result.error_code)
            .with_error_message(result.message.map(str_bytes));
        if ctx.version >= 5 {
            r = r.with_num_partitions(if result.error_code == 0 { partitions } else { -1 })
                .with_replication_factor(if result.error_code == 0 { 1 } else { -1 });
        }
        if let (true, Some(topic)) = (ctx.version >= 7, result.topic) {
            r = r.with_topic_id(topic.id);
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}
