//! ConsumerGroupDescribe (KIP-848): members, epochs, current and target assignments.

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

use crate::group::{GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 1);

/// Handles ConsumerGroupDescribe.
pub async fn handle(ctx: &RequestContext<'_>, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let mut groups = Vec::with_capacity(req.group_ids.len());
    for id in req.group_ids {
        let group = id.0.to_string();
        groups.push(match ctx.router.group_call(&group, GroupCall::ConsumerDescribe { group: group.clone() }).await {
            GroupReply::ConsumerDescribed(d) => d,
            other => DescribedGroup::default().with_group_id(id).with_error_code(other.refusal_code().code()),
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
