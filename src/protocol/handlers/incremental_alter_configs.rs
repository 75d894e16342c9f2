//! IncrementalAlterConfigs: SET and DELETE per key (APPEND/SUBTRACT apply to list configs,
//! of which only `cleanup.policy` is one here).

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::alter_resource;
use super::str_bytes;
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 1);

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Handles IncrementalAlterConfigs.
pub async fn handle(ctx: &RequestContext<'_>, req: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let mut changes = Vec::with_capacity(res.configs.len());
        let mut bad_op = None;
        for c in &res.configs {
            match c.config_operation {
                OP_SET => changes.push((c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
                OP_DELETE => changes.push((c.name.to_string(), None)),
                op => bad_op = Some(format!("operation {op} on {} is not supported", c.name.as_str())),
            }
        }
        let (error_code, message) = match bad_op {
            Some(m) => (ErrorCode::INVALID_CONFIG, Some(m)),
            None => alter_resource(ctx.router, res.resource_type, res.resource_name.as_str(), changes, true, req.validate_only).await,
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name)
                .with_error_code(error_code.code())
                .with_error_message(message.map(str_bytes)),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
