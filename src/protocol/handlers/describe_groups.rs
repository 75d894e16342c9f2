//! DescribeGroups: state, protocol and members of each group.

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use crate::group::gcode;
use crate::protocol::RequestContext;
use crate::group::{GroupCall, GroupReply};

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles DescribeGroups.
pub async fn handle(ctx: &RequestContext<'_>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let group = id.0.to_string();
        let mut described = match ctx.router.group_call(&group, GroupCall::Describe { group: group.clone() }).await {
            GroupReply::Described(d) => d,
            _ => DescribedGroup::default().with_group_id(id).with_error_code(gcode::COORDINATOR_NOT_AVAILABLE),
        };
        // Before v6 (KIP-1043) an unknown group is reported as Dead with no error.
        if described.error_code == gcode::GROUP_ID_NOT_FOUND {
            described.error_code = 0;
        }
        groups.push(described);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
