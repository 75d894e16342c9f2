//! DeleteTopics: by name (all versions) or by id (v6+).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::MetadataMutation;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (1, 6);

/// Handles DeleteTopics.
pub async fn handle(ctx: &RequestContext<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let router = ctx.router;
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)).collect()
    } else {
        req.topic_names.iter().map(|n| (Some(n.0.to_string()), uuid::Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let name = name.or_else(|| router.shard.metadata.load().topic_by_id(id).map(|t| t.name.clone()));
        let (error_code, message, topic_id) = match &name {
            None => (ErrorCode::UNKNOWN_TOPIC_ID, Some("unknown topic id".to_string()), id),
            Some(n) => match router.mutate(MetadataMutation::DeleteTopic { name: n.clone() }).await {
                Ok(outcome) => {
                    tracing::info!(topic = %n, error = %ErrorCode::NONE, "delete topic");
                    (ErrorCode::NONE, None, outcome.topic.map_or(id, |t| t.id))
                }
                Err(e) => {
                    let error_code = ErrorCode::from(&e);
                    tracing::info!(topic = %n, error = %error_code, "delete topic");
                    (error_code, Some(e.to_string()), id)
                }
            },
        };
        let mut r = DeletableTopicResult::default()
            .with_name(name.map(|n| TopicName(str_bytes(n))))
            .with_error_code(error_code.code());
        if ctx.version >= 5 {
            r = r.with_error_message(message.map(str_bytes));
        }
        if ctx.version >= 6 {
            r = r.with_topic_id(topic_id);
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
