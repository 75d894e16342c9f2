//! AlterConfigs: replaces a topic's config overrides (the legacy, non-incremental API).

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::RESOURCE_TOPIC;
use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::MetadataMutation;
use crate::protocol::RequestContext;
use crate::shard::Router;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Applies config changes to one resource; shared by AlterConfigs and IncrementalAlterConfigs.
/// Returns (error code, message).
pub async fn alter_resource(
    router: &Router,
    resource_type: i8,
    name: &str,
    changes: Vec<(String, Option<String>)>,
    incremental: bool,
    validate_only: bool,
) -> (ErrorCode, Option<String>) {
    if resource_type != RESOURCE_TOPIC {
        return (ErrorCode::INVALID_REQUEST, Some(format!("altering resource type {resource_type} is not served")));
    }
    let r = router
        .mutate(MetadataMutation::AlterConfigs { name: name.to_string(), changes, incremental, validate_only })
        .await;
    let error_code = r.as_ref().err().map_or(ErrorCode::NONE, ErrorCode::from);
    tracing::info!(topic = name, incremental, error = %error_code, "alter configs");
    (error_code, r.err().map(|e| e.to_string()))
}

/// Handles AlterConfigs.
pub async fn handle(ctx: &RequestContext<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let changes = res.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect();
        let (error_code, message) =
            alter_resource(ctx.router, res.resource_type, res.resource_name.as_str(), changes, false, req.validate_only).await;
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name)
                .with_error_code(error_code.code())
                .with_error_message(message.map(str_bytes)),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}
