//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::group_code;
use crate::group::GroupCall;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 4);

/// Handles Heartbeat.
pub async fn handle(ctx: &RequestContext<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let group = req.group_id.0.to_string();
    let call = GroupCall::Heartbeat {
        group: group.clone(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
    };
    HeartbeatResponse::default().with_error_code(group_code(ctx.router.group_call(&group, call).await).code())
}
