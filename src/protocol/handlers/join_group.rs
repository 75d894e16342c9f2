//! JoinGroup: the first phase of a classic rebalance, on the group's coordinator shard.

use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use crate::group::{GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 9);

/// Handles JoinGroup; it waits until the rebalance completes.
pub async fn handle(ctx: &RequestContext<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    let group = req.group_id.0.to_string();
    let client_id = ctx.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let call = GroupCall::Join { req, version: ctx.version, client_id, client_host: ctx.session.client_host.clone() };
    match ctx.router.group_call(&group, call).await {
        GroupReply::Join(r) => r,
        other => JoinGroupResponse::default().with_error_code(other.refusal_code().code()).with_generation_id(-1),
    }
}
