//! ListGroups: every group on every shard, filtered by state (v4+) and type (v5+).

use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use crate::group::{GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles ListGroups.
pub async fn handle(ctx: &RequestContext<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let version = ctx.version;
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = ctx
        .router
        .group_call_all(|| GroupCall::List)
        .await
        .into_iter()
        .flat_map(|r| match r {
            GroupReply::Listed(l) => l,
            _ => Vec::new(),
        })
        .filter(|g| states.is_empty() || states.contains(&g.group_state.to_lowercase()))
        .filter(|g| types.is_empty() || types.contains(&g.group_type.to_lowercase()))
        .map(|mut g| {
            if version < 4 {
                g.group_state = Default::default();
            }
            if version < 5 {
                g.group_type = Default::default();
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
