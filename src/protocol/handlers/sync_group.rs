//! SyncGroup: the leader hands out assignments; everyone gets theirs.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use crate::group::{GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles SyncGroup.
pub async fn handle(ctx: &RequestContext<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    let group = req.group_id.0.to_string();
    match ctx.router.group_call(&group, GroupCall::Sync { req, version: ctx.version }).await {
        GroupReply::Sync(r) => r,
        other => SyncGroupResponse::default().with_error_code(other.refusal_code().code()),
    }
}
