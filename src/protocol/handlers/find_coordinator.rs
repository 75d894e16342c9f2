//! FindCoordinator: every group's coordinator is this broker (its shard is an internal detail).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;

/// Versions served (batched keys from v4).
pub const VERSIONS: (i16, i16) = (0, 6);

/// Key type of a consumer group.
const KEY_TYPE_GROUP: i8 = 0;

/// Handles FindCoordinator.
pub async fn handle(ctx: &RequestContext<'_>, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let cfg = &ctx.router.shard.config;
    let error = if req.key_type == KEY_TYPE_GROUP { ErrorCode::NONE } else { ErrorCode::COORDINATOR_NOT_AVAILABLE };
    let (node, host, port) = if error.is_none() {
        // As Kafka: the coordinator's endpoint on the listener this request arrived on.
        (cfg.node_id, ctx.session.listener.advertised_host.clone(), i32::from(ctx.session.listener.advertised_port))
    } else {
        (-1, String::new(), -1)
    };
    tracing::debug!(key_type = req.key_type, version = ctx.version, "find coordinator");
    if ctx.version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host.clone()))
                    .with_port(port)
                    .with_error_code(error.code())
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(error.code())
        .with_node_id(BrokerId(node))
        .with_host(str_bytes(host))
        .with_port(port)
}
