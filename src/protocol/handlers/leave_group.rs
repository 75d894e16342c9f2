//! LeaveGroup: one member (v0–2) or a batch of members (v3+) leave; the group rebalances.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::group::{GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 5);

/// Handles LeaveGroup.
pub async fn handle(ctx: &RequestContext<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let group = req.group_id.0.to_string();
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string()))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let reply = ctx.router.group_call(&group, GroupCall::Leave { group: group.clone(), members: members.clone() }).await;
    let (top, per_member) = match reply {
        GroupReply::Leave(top, per) => (top, per),
        other => (other.refusal_code(), Vec::new()),
    };
    if ctx.version < 3 {
        // One member: its own result is the answer.
        let code = if top.is_err() { top } else { per_member.first().copied().unwrap_or(top) };
        return LeaveGroupResponse::default().with_error_code(code.code());
    }
    let members = members
        .into_iter()
        .zip(per_member.into_iter().chain(std::iter::repeat(top)))
        .map(|((id, instance), code)| {
            MemberResponse::default()
                .with_member_id(super::str_bytes(id))
                .with_group_instance_id(instance.map(super::str_bytes))
                .with_error_code(code.code())
        })
        .collect();
    LeaveGroupResponse::default().with_error_code(top.code()).with_members(members)
}
