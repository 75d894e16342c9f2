//! Produce: split by owner shard, append on each owner (group commit), answer per partition.
//! acks=0 gets no response; acks=1 is answered after the write; acks=-1 after fdatasync.

use std::collections::BTreeMap;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;
use crate::protocol::leader_hint::LeaderHints;
use crate::shard::messages::{ProducePart, ProducePartResult, ShardRequest};
use crate::storage::batch::BatchHeader;
use crate::types::TopicPartition;

/// Versions served (Kafka 4.0: 3–12; v13 switches to topic ids).
pub const VERSIONS: (i16, i16) = (3, 12);
/// The first version whose NOT_LEADER_OR_FOLLOWER carries KIP-951's leader hint.
const KIP_951_VERSION: i16 = 10;
/// The first version a transaction version 2 producer sends (KIP-890): its partitions join the
/// transaction through the produce itself.
const TXN_V2_PRODUCE_VERSION: i16 = 12;

/// KIP-890: the transactional parts an owner refused for want of verification
/// ([`ProducePartResult::verify_txn`]) are checked with the transaction coordinator (and added to
/// the transaction first when `add`: a transaction version 2 producer, Produce v12, never sends
/// AddPartitionsToTxn itself), then sent again with their guard; the owner appends them only if
/// no marker or newer epoch came in between.
async fn verify_and_resend(
    router: &crate::shard::Router,
    transactional_id: Option<&str>,
    add: bool,
    acks: i16,
    timeout_ms: u64,
    transactional: Vec<(usize, crate::types::ShardId, TopicPartition, bytes::Bytes)>,
    results: &mut [Option<ProducePartResult>],
) {
    // Without a transactional id nothing can be verified: INVALID_TXN_STATE stands.
    let Some(transactional_id) = transactional_id else { return };
    let waiting: Vec<_> = transactional
        .into_iter()
        .filter_map(|(slot, owner, tp, records)| Some((slot, owner, tp, records, results[slot].as_ref()?.verify_txn?)))
        .collect();
    // A request carries one producer's batches (Kafka's rule): its id and epoch are the first's.
    let Some(producer) = waiting.first().and_then(|w| BatchHeader::parse(&w.3)) else { return };
    let partitions = waiting.iter().map(|w| w.2.clone()).collect();
    let verdicts = router.txn_verify(transactional_id, producer.producer_id, producer.producer_epoch, partitions, add).await;
    let mut slots = Vec::new();
    let mut items = Vec::new();
    for ((slot, owner, tp, records, guard), (_, code)) in waiting.into_iter().zip(verdicts) {
        if code.is_none() {
            slots.push(slot);
            items.push((owner, ProducePart { tp, records, txn_guard: Some(guard) }));
        } else {
            tracing::debug!(partition = %tp, transactional_id, code = ?code, "transactional produce not verified");
            results[slot] = Some(ProducePartResult::failed(verification_code(code), Some("the transaction coordinator did not verify this partition".into())));
        }
    }
    if items.is_empty() {
        return;
    }
    send_parts(router, acks, timeout_ms, items, slots, results).await;
}

/// Appends `items` on their owner shards and puts each answer in its slot of `results`.
async fn send_parts(
    router: &crate::shard::Router,
    acks: i16,
    timeout_ms: u64,
    items: Vec<(crate::types::ShardId, ProducePart)>,
    slots: Vec<usize>,
    results: &mut [Option<ProducePartResult>],
) {
    let me = router.me;
    let answers = router
        .split_join(
            items,
            |parts| ShardRequest::Produce { conn_shard: me, acks, timeout_ms, parts },
            |response| response.into_produce(),
            |code| ProducePartResult::failed(code, Some("the partition's owner shard did not answer".into())),
        )
        .await;
    for (slot, answer) in slots.into_iter().zip(answers) {
        results[slot] = Some(answer);
    }
}

/// A failed verification as a Produce answer: the coordinator's passing states (moving, loading,
/// ending the previous transaction) become NOT_ENOUGH_REPLICAS, which every client retries, as
/// Kafka answers them; the rest (INVALID_TXN_STATE, a fenced epoch) are the producer's to see.
fn verification_code(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NOT_COORDINATOR
        | ErrorCode::COORDINATOR_NOT_AVAILABLE
        | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
        | ErrorCode::CONCURRENT_TRANSACTIONS => ErrorCode::NOT_ENOUGH_REPLICAS,
        other => other,
    }
}

/// Handles Produce; `None` when acks=0.
pub async fn handle(ctx: &RequestContext<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let router = ctx.router;
    let acks = req.acks;
    let snapshot = router.shard.metadata.load_full();
    // Flatten to (topic index, partition index, part) in request order.
    let mut layout: Vec<(String, Vec<i32>)> = Vec::with_capacity(req.topic_data.len());
    let mut items = Vec::new();
    let mut slots = Vec::new();
    let mut results: Vec<Option<ProducePartResult>> = Vec::new();
    let mut transactional = Vec::new();
    let transactional_id = req.transactional_id.as_ref().map(|t| t.0.to_string());
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let meta = snapshot.topics.get(&name);
        let mut indexes = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            indexes.push(p.index);
            let owner = meta.and_then(|m| m.partitions.get(usize::try_from(p.index).ok()?)).map(|pm| pm.owner);
            let early = if !matches!(acks, -1..=1) {
                Some(ProducePartResult::failed(ErrorCode::INVALID_REQUIRED_ACKS, Some("acks must be -1, 0 or 1".into())))
            } else if owner.is_none() {
                Some(ProducePartResult::failed(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, Some("unknown topic or partition".into())))
            } else if p.records.is_none() {
                Some(ProducePartResult::failed(ErrorCode::CORRUPT_MESSAGE, Some("no records".into())))
            } else {
                None
            };
            match (early, owner) {
                (None, Some(owner)) => {
                    let records = p.records.unwrap_or_default();
                    let tp = TopicPartition::new(name.clone(), p.index);
                    if crate::storage::batch::starts_transactional(&records) {
                        // Kept for KIP-890's resend after verification (a refcount, no copy).
                        transactional.push((results.len(), owner, tp.clone(), records.clone()));
                    }
                    slots.push(results.len());
                    items.push((owner, ProducePart { tp, records, txn_guard: None }));
                    results.push(None);
                }
                (early, _) => results.push(early),
            }
        }
        layout.push((name, indexes));
    }

    let timeout_ms = req.timeout_ms.max(0) as u64;
    send_parts(router, acks, timeout_ms, items, slots, &mut results).await;
    verify_and_resend(router, transactional_id.as_deref(), ctx.version >= TXN_V2_PRODUCE_VERSION, acks, timeout_ms, transactional, &mut results).await;
    if acks == 0 {
        return None;
    }

    let mut results = results.into_iter();
    let mut hints = LeaderHints::new(&snapshot, ctx.session.listener_name());
    let mut by_topic: BTreeMap<usize, TopicProduceResponse> = BTreeMap::new();
    for (ti, (name, indexes)) in layout.into_iter().enumerate() {
        let mut partitions = Vec::with_capacity(indexes.len());
        for index in indexes {
            let r = results.next().flatten().unwrap_or_else(|| ProducePartResult::failed(ErrorCode::UNKNOWN_SERVER_ERROR, Some("lost result".into())));
            let mut pr = PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(r.error_code.code())
                .with_base_offset(r.base_offset)
                .with_log_append_time_ms(r.log_append_time)
                .with_log_start_offset(r.log_start_offset);
            if ctx.version >= 8 && r.error_code.is_err() {
                // KIP-467: which records of the batch were refused, and why.
                let record_errors = r
                    .record_errors
                    .into_iter()
                    .map(|e| BatchIndexAndErrorMessage::default().with_batch_index(e.batch_index).with_batch_index_error_message(Some(str_bytes(e.message))))
                    .collect();
                pr = pr.with_error_message(r.message.map(str_bytes)).with_record_errors(record_errors);
            }
            if ctx.version >= KIP_951_VERSION
                && let Some((leader, epoch)) = hints.hint(r.error_code, &name, index, false)
            {
                pr = pr.with_current_leader(LeaderIdAndEpoch::default().with_leader_id(BrokerId(leader)).with_leader_epoch(epoch));
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
    let node_endpoints = hints
        .endpoints()
        .into_iter()
        .map(|e| NodeEndpoint::default().with_node_id(BrokerId(e.node_id)).with_host(str_bytes(e.host)).with_port(e.port).with_rack(e.rack.map(str_bytes)))
        .collect();
    Some(ProduceResponse::default().with_responses(by_topic.into_values().collect()).with_node_endpoints(node_endpoints))
}
