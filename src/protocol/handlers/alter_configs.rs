//! AlterConfigs: replaces a topic's config overrides, or the dynamic configs of this broker or of
//! the cluster-wide default (the legacy, non-incremental API).

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::str_bytes;
use crate::codes::ErrorCode;
use crate::config::described::broker_configs;
use crate::config::dynamic::{DynamicConfigError, DynamicLayers, validate_dynamic};
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
    let mutation = match resource_type {
        RESOURCE_TOPIC => MetadataMutation::AlterConfigs { name: name.to_string(), changes, incremental, validate_only },
        RESOURCE_BROKER => match check_broker_changes(router, name, &changes) {
            Err(e) => {
                tracing::info!(broker = name, incremental, error = %ErrorCode::from(&e), reason = %e, "alter broker configs refused");
                return (ErrorCode::from(&e), Some(e.to_string()));
            }
            Ok(_) if validate_only => return (ErrorCode::NONE, None),
            Ok(broker_id) => MetadataMutation::AlterBrokerConfigs { broker_id, changes, incremental },
        },
        _ => return (ErrorCode::INVALID_REQUEST, Some(format!("altering resource type {resource_type} is not served"))),
    };
    let r = router.mutate(mutation).await;
    let error_code = r.as_ref().err().map_or(ErrorCode::NONE, ErrorCode::from);
    tracing::info!(resource_type, resource = name, incremental, error = %error_code, "alter configs");
    (error_code, r.err().map(|e| e.to_string()))
}

/// The broker a BROKER resource names (`None`: the cluster-wide default, `""`), after Kafka's
/// checks of the name (`ConfigAdminManager`: this broker's own id only) and of each change
/// (`DynamicBrokerConfig.validate`: dynamic keys only, values of their type and range).
pub fn check_broker_changes(router: &Router, name: &str, changes: &[(String, Option<String>)]) -> Result<Option<i32>, DynamicConfigError> {
    let config = &router.shard.config;
    let broker_id = if name.is_empty() {
        None
    } else {
        let id: i32 = name
            .parse()
            .map_err(|_| DynamicConfigError::WrongBroker { reason: format!("Node id must be an integer, but it is: {name}") })?;
        if id != config.node_id {
            return Err(DynamicConfigError::WrongBroker {
                reason: format!("Unexpected broker id, expected {}, but received {name}", config.node_id),
            });
        }
        Some(id)
    };
    let known: Vec<String> = broker_configs(config, DynamicLayers::NONE).into_iter().map(|c| c.name).collect();
    let is_known = |key: &str| known.iter().any(|k| k == key);
    for (key, value) in changes {
        validate_dynamic(key, value.as_deref(), &is_known)?;
    }
    Ok(broker_id)
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
