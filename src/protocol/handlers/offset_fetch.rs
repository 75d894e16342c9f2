//! OffsetFetch: a group's committed offsets (one group up to v7, many from v8).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::group::{GroupCall, GroupReply, OffsetEntry};
use crate::protocol::RequestContext;
use crate::shard::Router;

/// Versions served (Kafka 4.0: 1–9).
pub const VERSIONS: (i16, i16) = (1, 9);

/// Looks up one group's offsets, grouped by topic in first-seen order. Errors: the group's code.
/// With `require_stable` (KIP-447), an offset an open transaction will replace is not given:
/// that partition answers UNSTABLE_OFFSET_COMMIT and the client asks again.
async fn fetch_group(
    router: &Router,
    group: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> Result<Vec<(String, Vec<(OffsetEntry, ErrorCode)>)>, ErrorCode> {
    let call = GroupCall::FetchOffsets { group: group.to_string(), partitions: wanted };
    let entries = match router.group_call(group, call).await {
        GroupReply::Offsets(e) => e,
        other => return Err(other.refusal_code()),
    };
    let mut topics: Vec<(String, Vec<(OffsetEntry, ErrorCode)>)> = Vec::new();
    for mut e in entries {
        let code = if require_stable && e.unstable {
            e.offset = -1;
            ErrorCode::UNSTABLE_OFFSET_COMMIT
        } else {
            ErrorCode::NONE
        };
        match topics.iter_mut().find(|(t, _)| *t == e.topic) {
            Some((_, v)) => v.push((e, code)),
            None => topics.push((e.topic.clone(), vec![(e, code)])),
        }
    }
    Ok(topics)
}

fn wanted_of<'a>(topics: Option<impl Iterator<Item = (&'a TopicName, &'a Vec<i32>)>>) -> Option<Vec<(String, i32)>> {
    topics.map(|ts| ts.flat_map(|(name, parts)| parts.iter().map(move |p| (name.0.to_string(), *p))).collect())
}

/// Handles OffsetFetch.
pub async fn handle(ctx: &RequestContext<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if ctx.version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let wanted = wanted_of(g.topics.as_ref().map(|ts| ts.iter().map(|t| (&t.name, &t.partition_indexes))));
            let group = g.group_id.0.to_string();
            let (error, topics) = match fetch_group(ctx.router, &group, wanted, req.require_stable).await {
                Ok(t) => (ErrorCode::NONE, t),
                Err(e) => (e, Vec::new()),
            };
            let topics = topics
                .into_iter()
                .map(|(name, entries)| {
                    OffsetFetchResponseTopics::default().with_name(TopicName(str_bytes(name))).with_partitions(
                        entries
                            .into_iter()
                            .map(|(e, code)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(e.partition)
                                    .with_error_code(code.code())
                                    .with_committed_offset(e.offset)
                                    .with_committed_leader_epoch(e.leader_epoch)
                                    .with_metadata(Some(str_bytes(e.metadata)))
                            })
                            .collect(),
                    )
                })
                .collect();
            groups.push(OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone()).with_error_code(error.code()).with_topics(topics));
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let group = req.group_id.0.to_string();
    let wanted = wanted_of(req.topics.as_ref().map(|ts| ts.iter().map(|t| (&t.name, &t.partition_indexes))));
    let (error, topics) = match fetch_group(ctx.router, &group, wanted, ctx.version >= 7 && req.require_stable).await {
        Ok(t) => (ErrorCode::NONE, t),
        Err(e) => (e, Vec::new()),
    };
    let version = ctx.version;
    let topics = topics
        .into_iter()
        .map(|(name, entries)| {
            OffsetFetchResponseTopic::default().with_name(TopicName(str_bytes(name))).with_partitions(
                entries
                    .into_iter()
                    .map(|(e, code)| {
                        let p = OffsetFetchResponsePartition::default()
                            .with_partition_index(e.partition)
                            .with_error_code(code.code())
                            .with_committed_offset(e.offset)
                            .with_metadata(Some(str_bytes(e.metadata)));
                        if version >= 5 { p.with_committed_leader_epoch(e.leader_epoch) } else { p }
                    })
                    .collect(),
            )
        })
        .collect();
    let resp = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 { resp.with_error_code(error.code()) } else { resp }
}
