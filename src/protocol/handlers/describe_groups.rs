//! DescribeGroups: state, protocol and members of each group.

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use crate::codes::ErrorCode;
use crate::group::{GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles DescribeGroups.
pub async fn handle(ctx: &RequestContext<'_>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let group = id.0.to_string();
        let mut described = match ctx.router.group_call(&group, GroupCall::Describe { group: group.clone() }).await {
            GroupReply::Described(d) => d,
            other => DescribedGroup::default().with_group_id(id).with_error_code(other.refusal_code().code()),
        };
        // Before v6 (KIP-1043) an unknown group is reported as Dead with no error.
        if ErrorCode::from_code(described.error_code) == ErrorCode::GROUP_ID_NOT_FOUND {
            described.error_code = ErrorCode::NONE.code();
        }
        groups.push(described);
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
