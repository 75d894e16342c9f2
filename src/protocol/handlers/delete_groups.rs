//! DeleteGroups: removes empty groups and their committed offsets (tombstones in `__consumer_offsets`).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::group_code;
use crate::group::GroupCall;
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 2);

/// Handles DeleteGroups.
pub async fn handle(ctx: &RequestContext<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let group = id.0.to_string();
        let code = group_code(ctx.router.group_call(&group, GroupCall::Delete { group: group.clone() }).await);
        results.push(DeletableGroupResult::default().with_group_id(id).with_error_code(code.code()));
    }
    DeleteGroupsResponse::default().with_results(results)
}
