//! ConsumerGroupHeartbeat (KIP-848): join, heartbeat, reconcile and leave in one API.

use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use crate::group::{GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 1);

/// Handles ConsumerGroupHeartbeat.
pub async fn handle(ctx: &RequestContext<'_>, req: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    let group = req.group_id.0.to_string();
    let client_id = ctx.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let call = GroupCall::ConsumerHeartbeat { req, client_id, client_host: ctx.session.client_host.clone() };
    match ctx.router.group_call(&group, call).await {
        GroupReply::ConsumerHeartbeat(r) => r,
        other => ConsumerGroupHeartbeatResponse::default().with_error_code(other.refusal_code().code()),
    }
}
