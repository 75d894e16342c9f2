//! DescribeTopicPartitions (KIP-966; Kafka 4's admin client describes topics with it): topics
//! and their partitions from the metadata snapshot, paged as Kafka pages them.
//!
//! Paging: the topics (the asked ones, or every topic when none are named) are walked in name
//! order from the cursor's topic, that topic from the cursor's partition and the rest from 0.
//! At most `response_partition_limit` partitions (and never more than
//! [`MAX_PARTITIONS_PER_RESPONSE`]) are answered; the next cursor names the first partition
//! left out. A topic is split across pages only where the limit falls inside it.

use std::collections::BTreeSet;
use std::ops::Bound;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use uuid::Uuid;

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::metadata::{ClusterSnapshot, TopicMeta, valid_topic_name};
use crate::protocol::RequestContext;

/// Versions served.
pub const VERSIONS: (i16, i16) = (0, 0);

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response holds,
/// whatever the request asks for.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// Handles DescribeTopicPartitions.
pub async fn handle(ctx: &RequestContext<'_>, req: DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let snapshot = ctx.router.shard.metadata.load();
    let resp = page(&snapshot, &req).unwrap_or_else(|code| refused(&req, code));
    tracing::debug!(asked = req.topics.len(), limit = req.response_partition_limit, answered = resp.topics.len(),
        more = resp.next_cursor.is_some(), "describe topic partitions");
    resp
}

/// One page of the answer, or INVALID_REQUEST when a named topic list leaves out the cursor's topic.
fn page(snapshot: &ClusterSnapshot, req: &DescribeTopicPartitionsRequest) -> Result<DescribeTopicPartitionsResponse, ErrorCode> {
    let fetch_all = req.topics.is_empty();
    let cursor = req.cursor.as_ref().map(|c| (c.topic_name.0.as_str(), c.partition_index));
    let first = cursor.map_or("", |(topic, _)| topic);
    let names: BTreeSet<&str> = if fetch_all {
        let after = (Bound::Included(first), Bound::Unbounded);
        snapshot.topics.range::<str, _>(after).map(|(name, _)| name.as_str()).collect()
    } else {
        let names: BTreeSet<&str> = req.topics.iter().map(|t| t.name.0.as_str()).filter(|n| *n >= first).collect();
        if cursor.is_some_and(|(topic, _)| !names.contains(topic)) {
            return Err(ErrorCode::INVALID_REQUEST);
        }
        names
    };

    let mut remaining = req.response_partition_limit.min(MAX_PARTITIONS_PER_RESPONSE);
    let mut resp = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining <= 0 {
            // The page is full: the next one starts with this topic.
            if remaining == 0 {
                resp.next_cursor = Some(Cursor::default().with_topic_name(TopicName(str_bytes(name))).with_partition_index(0));
            }
            break;
        }
        let Some(topic) = snapshot.topics.get(name) else {
            // Listing every topic, one deleted since the cursor was handed out is no error.
            if !fetch_all {
                resp.topics.push(unknown(name));
            }
            continue;
        };
        let start = match cursor {
            Some((cursor_topic, partition)) if cursor_topic == name => partition,
            _ => 0,
        };
        let count = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        let end = count.min(start.saturating_add(remaining));
        let described = describe(topic, start, end);
        let answered = i32::try_from(described.partitions.len()).unwrap_or(i32::MAX);
        resp.topics.push(described);
        if end < count {
            resp.next_cursor = Some(Cursor::default().with_topic_name(TopicName(str_bytes(name))).with_partition_index(end));
            break;
        }
        remaining -= answered;
    }
    Ok(resp)
}

/// Whether a topic is one of Kafka's own (`__consumer_offsets`, ...), as Metadata answers it.
fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

/// A topic with its partitions `start..end`. No eligible leader replicas yet (KIP-966's ELR
/// comes with the replicated partition state), and no replica is offline on a single node.
fn describe(t: &TopicMeta, start: i32, end: i32) -> DescribeTopicPartitionsResponseTopic {
    let brokers = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions = (start..end)
        .filter_map(|i| Some((i, t.partitions.get(usize::try_from(i).ok()?)?)))
        .map(|(i, p)| {
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(ErrorCode::NONE.code())
                .with_partition_index(i)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(brokers(&p.replicas))
                .with_isr_nodes(brokers(&p.isr))
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(Vec::new())
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(is_internal(&t.name))
        .with_partitions(partitions)
}

/// A named topic that does not exist: INVALID_TOPIC_EXCEPTION when its name could never be one.
fn unknown(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let code = if valid_topic_name(name) { ErrorCode::UNKNOWN_TOPIC_OR_PARTITION } else { ErrorCode::INVALID_TOPIC_EXCEPTION };
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(code.code())
        .with_name(Some(TopicName(str_bytes(name))))
        .with_topic_id(Uuid::nil())
        .with_is_internal(is_internal(name))
}

/// The whole request refused with `code`: each named topic carries it, as Kafka's error response.
fn refused(req: &DescribeTopicPartitionsRequest, code: ErrorCode) -> DescribeTopicPartitionsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| DescribeTopicPartitionsResponseTopic::default().with_error_code(code.code()).with_name(Some(t.name.clone())))
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor as RequestCursor, TopicRequest};

    use super::*;
    use crate::metadata::PartitionMeta;
    use crate::types::ShardId;

    fn snapshot(topics: &[(&str, usize)]) -> ClusterSnapshot {
        let mut s = ClusterSnapshot::empty("test");
        for (name, partitions) in topics {
            let partitions = (0..*partitions)
                .map(|i| PartitionMeta {
                    owner: ShardId(i % 2),
                    leader_epoch: 3,
                    replicas: vec![1],
                    isr: vec![1],
                    leader: 1,
                    partition_epoch: 0,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                })
                .collect();
            let meta = TopicMeta { name: name.to_string(), id: Uuid::new_v4(), partitions, configs: BTreeMap::new() };
            s.topics.insert(name.to_string(), Arc::new(meta));
        }
        s
    }

    fn request(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
        DescribeTopicPartitionsRequest::default()
            .with_topics(topics.iter().map(|t| TopicRequest::default().with_name(TopicName(str_bytes(*t)))).collect())
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| RequestCursor::default().with_topic_name(TopicName(str_bytes(t))).with_partition_index(p)))
    }

    /// `(topic, [partition], error)` per answered topic, and the next cursor.
    type Summary = (Vec<(String, Vec<i32>, i16)>, Option<(String, i32)>);

    fn summary(resp: &DescribeTopicPartitionsResponse) -> Summary {
        let topics = resp
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                (name, t.partitions.iter().map(|p| p.partition_index).collect(), t.error_code)
            })
            .collect();
        (topics, resp.next_cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index)))
    }

    fn owned(topics: &[(&str, &[i32], ErrorCode)]) -> Vec<(String, Vec<i32>, i16)> {
        topics.iter().map(|(n, p, e)| (n.to_string(), p.to_vec(), e.code())).collect()
    }

    #[test]
    fn a_limit_of_one_pages_a_topic_partition_by_partition() {
        let s = snapshot(&[("t", 3)]);
        let first = page(&s, &request(&["t"], 1, None)).unwrap();
        assert_eq!(summary(&first), (owned(&[("t", &[0], ErrorCode::NONE)]), Some(("t".into(), 1))));
        let second = page(&s, &request(&["t"], 1, Some(("t", 1)))).unwrap();
        assert_eq!(summary(&second), (owned(&[("t", &[1], ErrorCode::NONE)]), Some(("t".into(), 2))));
        let last = page(&s, &request(&["t"], 1, Some(("t", 2)))).unwrap();
        assert_eq!(summary(&last), (owned(&[("t", &[2], ErrorCode::NONE)]), None));
    }

    #[test]
    fn a_full_page_points_the_cursor_at_the_next_topic() {
        let s = snapshot(&[("a", 2), ("b", 2)]);
        let resp = page(&s, &request(&[], 2, None)).unwrap();
        assert_eq!(summary(&resp), (owned(&[("a", &[0, 1], ErrorCode::NONE)]), Some(("b".into(), 0))));
        let rest = page(&s, &request(&[], 2, Some(("b", 0)))).unwrap();
        assert_eq!(summary(&rest), (owned(&[("b", &[0, 1], ErrorCode::NONE)]), None));
    }

    #[test]
    fn named_topics_come_sorted_and_once_with_unknown_and_invalid_names_marked() {
        let s = snapshot(&[("b", 1), ("a", 1)]);
        let resp = page(&s, &request(&["b", "missing", "a", "b", "bad/name"], 2000, None)).unwrap();
        let expected = owned(&[
            ("a", &[0], ErrorCode::NONE),
            ("b", &[0], ErrorCode::NONE),
            ("bad/name", &[], ErrorCode::INVALID_TOPIC_EXCEPTION),
            ("missing", &[], ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
        ]);
        assert_eq!(summary(&resp), (expected, None));
        let missing = resp.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "missing")).unwrap();
        assert_eq!(missing.topic_id, Uuid::nil());
    }

    #[test]
    fn all_topics_skip_a_deleted_cursor_topic_and_start_after_it() {
        let s = snapshot(&[("a", 1), ("c", 1)]);
        let resp = page(&s, &request(&[], 10, Some(("b", 4)))).unwrap();
        assert_eq!(summary(&resp), (owned(&[("c", &[0], ErrorCode::NONE)]), None));
    }

    #[test]
    fn a_cursor_outside_the_named_topics_is_an_invalid_request() {
        let s = snapshot(&[("a", 1)]);
        assert_eq!(page(&s, &request(&["a"], 10, Some(("z", 0)))).unwrap_err(), ErrorCode::INVALID_REQUEST);
        let resp = refused(&request(&["a"], 10, Some(("z", 0))), ErrorCode::INVALID_REQUEST);
        assert_eq!(summary(&resp), (owned(&[("a", &[], ErrorCode::INVALID_REQUEST)]), None));
    }

    #[test]
    fn partitions_carry_the_snapshot_state_and_empty_elr() {
        let s = snapshot(&[("t", 1)]);
        let resp = page(&s, &request(&["t"], 10, None)).unwrap();
        let t = &resp.topics[0];
        assert_eq!(t.topic_id, s.topics["t"].id);
        assert!(!t.is_internal);
        let p = &t.partitions[0];
        assert_eq!((p.leader_id, p.leader_epoch), (BrokerId(1), 3));
        assert_eq!((p.replica_nodes.clone(), p.isr_nodes.clone()), (vec![BrokerId(1)], vec![BrokerId(1)]));
        assert_eq!((p.eligible_leader_replicas.clone(), p.last_known_elr.clone()), (Some(vec![]), Some(vec![])));
        assert!(p.offline_replicas.is_empty());
    }

    #[test]
    fn the_broker_caps_the_partitions_per_response() {
        let s = snapshot(&[("t", 2100)]);
        let resp = page(&s, &request(&["t"], i32::MAX, None)).unwrap();
        assert_eq!(resp.topics[0].partitions.len(), MAX_PARTITIONS_PER_RESPONSE as usize);
        assert_eq!(summary(&resp).1, Some(("t".into(), MAX_PARTITIONS_PER_RESPONSE)));
    }
}
