//! OffsetDelete: removes committed offsets of topics the group no longer subscribes to.

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::group::{GroupCall, GroupReply};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 0);

/// Handles OffsetDelete.
pub async fn handle(ctx: &RequestContext<'_>, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group = req.group_id.0.to_string();
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index)))
        .collect();
    let (top, per) = match ctx.router.group_call(&group, GroupCall::DeleteOffsets { group: group.clone(), partitions }).await {
        GroupReply::Deleted(top, per) => (top, per),
        other => (other.refusal_code(), Vec::new()),
    };
    let mut per = per.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| OffsetDeleteResponsePartition::default().with_partition_index(p.partition_index).with_error_code(per.next().unwrap_or(top).code()))
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_error_code(top.code()).with_topics(if top.is_none() { topics } else { Vec::new() })
}
