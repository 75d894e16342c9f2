//! Produce: split by owner shard, append on each owner (group commit), answer per partition.
//! acks=0 gets no response; acks=1 is answered after the write; acks=-1 after fdatasync.

use std::collections::BTreeMap;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::str_bytes;
use crate::error::code;
use crate::protocol::RequestContext;
use crate::router::{ProducePart, ProducePartResult, ShardRequest, ShardResponse};
use crate::types::TopicPartition;

/// Versions served (Kafka 4.0: 3–12; v13 switches to topic ids).
pub const VERSIONS: (i16, i16) = (3, 12);

fn failed(error_code: i16, message: &str) -> ProducePartResult {
    ProducePartResult {
        error_code,
        base_offset: -1,
        log_append_time: -1,
        log_start_offset: -1,
        message: Some(message.to_string()),
    }
}

/// Handles Produce; `None` when acks=0.
pub async fn handle(ctx: &RequestContext<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let router = ctx.router;
    let acks = req.acks;
    let snapshot = router.metadata.load_full();
    // Flatten to (topic index, partition index, part) in request order.
    let mut layout: Vec<(String, Vec<i32>)> = Vec::with_capacity(req.topic_data.len());
    let mut items = Vec::new();
    let mut results: Vec<Option<ProducePartResult>> = Vec::new();
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let known = snapshot.topics.get(&name).map(|t| t.partitions.len() as i32);
        let mut indexes = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            indexes.push(p.index);
            let early = if !matches!(acks, -1..=1) {
                Some(failed(code::INVALID_REQUIRED_ACKS, "acks must be -1, 0 or 1"))
            } else if known.is_none_or(|n| p.index < 0 || p.index >= n) {
                Some(failed(code::UNKNOWN_TOPIC_OR_PARTITION, "unknown topic or partition"))
            } else if p.records.is_none() {
                Some(failed(code::CORRUPT_MESSAGE, "no records"))
            } else {
                None
            };
            match early {
                Some(r) => results.push(Some(r)),
                None => {
                    let records = p.records.unwrap_or_default();
                    items.push((TopicPartition::new(name.clone(), p.index), (results.len(), records)));
                    results.push(None);
                }
            }
        }
        layout.push((name, indexes));
    }

    let (by_shard, unknown) = router.split_by_owner(items);
    for (_, _, (slot, _)) in unknown {
        results[slot] = Some(failed(code::UNKNOWN_TOPIC_OR_PARTITION, "unknown topic or partition"));
    }
    let me = router.me;
    let calls = by_shard.into_iter().map(|(shard, parts)| async move {
        let slots: Vec<usize> = parts.iter().map(|(_, _, (slot, _))| *slot).collect();
        let parts = parts.into_iter().map(|(_, tp, (_, records))| ProducePart { tp, records }).collect();
        let resp = router.call(shard, ShardRequest::Produce { conn_shard: me, acks, parts }).await;
        (slots, resp)
    });
    for (slots, resp) in futures::future::join_all(calls).await {
        let answers = match resp {
            ShardResponse::Produce(a) => a,
            _ => Vec::new(),
        };
        let mut answers = answers.into_iter();
        for slot in slots {
            results[slot] = Some(answers.next().unwrap_or_else(|| failed(code::UNKNOWN_SERVER_ERROR, "owner shard did not answer")));
        }
    }
    if acks == 0 {
        return None;
    }

    let mut results = results.into_iter();
    let mut by_topic: BTreeMap<usize, TopicProduceResponse> = BTreeMap::new();
    for (ti, (name, indexes)) in layout.into_iter().enumerate() {
        let mut partitions = Vec::with_capacity(indexes.len());
        for index in indexes {
            let r = results.next().flatten().unwrap_or_else(|| failed(code::UNKNOWN_SERVER_ERROR, "lost result"));
            let mut pr = PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(r.error_code)
                .with_base_offset(r.base_offset)
                .with_log_append_time_ms(r.log_append_time)
                .with_log_start_offset(r.log_start_offset);
            if ctx.version >= 8 && r.error_code != code::NONE {
                pr = pr.with_error_message(r.message.map(str_bytes));
            }
            partitions.push(pr);
        }
        by_topic.insert(
            ti,
            TopicProduceResponse::default()
                .with_name(kafka_protocol::messages::TopicName(str_bytes(name)))
                .with_partition_responses(partitions),
        );
    }
    Some(ProduceResponse::default().with_responses(by_topic.into_values().collect()))
}
