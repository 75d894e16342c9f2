//! Fetch: reads from the owner shards, long-polls up to `max_wait_ms` for `min_bytes`.
//!
//! A fetch that may park asks the owners for a listener on each partition's "high watermark
//! moved" event, registered before the owner reads the partition's state, so no append can slip
//! between a read and the wait; it parks on those listeners. Nothing busy-polls.
//!
//! Owners answer with where the records are ([`Located`]); this shard then reads any on-disk
//! ranges itself and hands the cached `Bytes` and the read buffers to the response frame
//! untouched (see [`crate::protocol::frame`]): the fetch path copies no record bytes.

use std::time::{Duration, Instant};

use futures::FutureExt;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;
use crate::protocol::leader_hint::LeaderHints;
use crate::protocol::frame::{Chunk, RecordsSplicer};
use crate::shard::Router;
use crate::shard::messages::{FetchPart, FetchPartResult, ShardRequest};
use crate::storage::reader::{DiskPiece, Located};
use crate::types::{ShardId, TopicPartition};

/// Versions served (Kafka 4.0: 4–17).
pub const VERSIONS: (i16, i16) = (4, 17);
/// The most record bytes one response carries, whatever the request asks: Kafka's broker
/// default for `fetch.max.bytes` (55 MiB). It bounds the memory one fetch can pin.
pub const FETCH_MAX_BYTES: usize = 55 << 20;
/// The first version whose byte fields carry compact (varint) lengths.
pub const FIRST_FLEXIBLE_VERSION: i16 = 12;
/// The first version whose NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH carry KIP-951's
/// leader hint.
const KIP_951_VERSION: i16 = 16;

struct Wanted {
    topic_slot: usize,
    partition: i32,
    /// Owner and read, or an error code decided up front.
    target: Result<(ShardId, FetchPart), ErrorCode>,
}

/// Asks each owner where the wanted records are, with a wake-up listener per part when `listen`;
/// one result per wanted part, in order.
async fn read_round(router: &Router, wanted: &[Wanted], listen: bool) -> Vec<FetchPartResult> {
    let items: Vec<(ShardId, FetchPart)> = wanted.iter().filter_map(|w| w.target.as_ref().ok().cloned()).collect();
    let mut located = router
        .split_join(
            items,
            |parts| ShardRequest::Fetch { parts, listen },
            |response| response.into_fetch(),
            FetchPartResult::failed,
        )
        .await
        .into_iter();
    wanted
        .iter()
        .map(|w| match &w.target {
            Ok(_) => located.next().unwrap_or_else(|| FetchPartResult::failed(ErrorCode::UNKNOWN_SERVER_ERROR)),
            Err(code) => FetchPartResult::failed(*code),
        })
        .collect()
}

/// Reads what the owners located: on-disk ranges are read here, into chunks for the socket.
async fn read_located(router: &Router, results: &mut [FetchPartResult]) -> Vec<Vec<Chunk>> {
    let reads = results.iter().map(|r| async move {
        match &r.records {
            Located::Cached(batches) => Ok(batches.iter().flat_map(|b| b.parts()).cloned().map(Chunk::Bytes).collect()),
            Located::OnDisk(range) => {
                let pieces = router.shard.segment_files.read(range).await;
                pieces.map(|pieces| {
                    pieces
                        .into_iter()
                        .map(|piece| match piece {
                            DiskPiece::Read(view) => Chunk::Disk(view),
                            DiskPiece::InFile(slice) => Chunk::File(slice),
                        })
                        .collect()
                })
            }
        }
    });
    let read = futures::future::join_all(reads).await;
    read.into_iter()
        .zip(results.iter_mut())
        .map(|(outcome, r)| {
            outcome.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "fetch read failed");
                r.error_code = ErrorCode::from(&e);
                Vec::new()
            })
        })
        .collect()
}

/// The response's aborted-transaction list (read_committed's; Kafka sends null for read_uncommitted).
fn aborted_transactions(aborted: &[(i64, i64)]) -> Vec<AbortedTransaction> {
    aborted
        .iter()
        .map(|&(producer_id, first_offset)| AbortedTransaction::default().with_producer_id(ProducerId(producer_id)).with_first_offset(first_offset))
        .collect()
}

/// Handles Fetch. The response's records fields hold placeholders for the splicer's chunks.
pub async fn handle(ctx: &RequestContext<'_>, req: FetchRequest) -> (FetchResponse, RecordsSplicer) {
    let router = ctx.router;
    let snapshot = router.shard.metadata.load_full();
    let mut topics: Vec<(Option<String>, uuid::Uuid)> = Vec::new();
    let mut wanted = Vec::new();
    // A follower broker names itself (KIP-903 moved the id into ReplicaState in v15).
    let replica_id = if ctx.version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    let replica = (replica_id >= 0).then_some(replica_id);
    for t in &req.topics {
        let meta = if ctx.version >= 13 {
            snapshot.topic_by_id(t.topic_id).cloned()
        } else {
            snapshot.topics.get(t.topic.0.as_str()).cloned()
        };
        let slot = topics.len();
        topics.push((meta.as_ref().map(|m| m.name.clone()).or_else(|| Some(t.topic.0.to_string())), t.topic_id));
        for p in &t.partitions {
            let target = match &meta {
                None if ctx.version >= 13 => Err(ErrorCode::UNKNOWN_TOPIC_ID),
                None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                Some(m) => match m.partitions.get(p.partition as usize) {
                    Some(pm) if p.partition >= 0 => Ok((
                        pm.owner,
                        FetchPart {
                            tp: TopicPartition::new(m.name.clone(), p.partition),
                            offset: p.fetch_offset,
                            max_bytes: (p.partition_max_bytes.max(0) as usize).min(FETCH_MAX_BYTES),
                            current_leader_epoch: p.current_leader_epoch,
                            replica,
                            read_committed: req.isolation_level == 1 && replica.is_none(),
                        },
                    )),
                    _ => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                },
            };
            wanted.push(Wanted { topic_slot: slot, partition: p.partition, target });
        }
    }
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    // Only a fetch that can park needs wake-ups.
    let listen = deadline > Instant::now() && min_bytes > 0;
    let mut results = loop {
        let mut results = read_round(router, &wanted, listen).await;
        let bytes: usize = results.iter().map(|r| r.records.available()).sum();
        let any_error = results.iter().any(|r| r.error_code.is_err());
        let now = Instant::now();
        if bytes >= min_bytes || any_error || now >= deadline {
            break results;
        }
        let wakes: Vec<_> = results.iter_mut().filter_map(|r| r.wake.take()).collect();
        if wakes.is_empty() {
            break results;
        }
        let woken = futures::future::select_all(wakes);
        let timer = glommio::timer::sleep(deadline - now);
        futures::select! {
            _ = woken.fuse() => {},
            _ = Box::pin(timer).fuse() => {},
        }
    };

    // Response max_bytes: the first non-empty partition always gets its data (KIP-74). Decided
    // on the located sizes (upper bounds for disk ranges), so nothing is read only to be dropped.
    let mut budget = (req.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES);
    let mut first = true;
    for r in &mut results {
        if first && let Located::OnDisk(range) = &mut r.records {
            // The first partition may exceed the budget only by its first batch.
            range.max_bytes = range.max_bytes.min(budget.max(1));
        }
        let size = r.records.available();
        if size == 0 || (!first && size > budget) {
            r.records = Located::default();
        } else {
            first = false;
            budget = budget.saturating_sub(size);
        }
    }
    let payloads = read_located(router, &mut results).await;
    let mut hints = LeaderHints::new(&snapshot, ctx.session.listener_name());
    let mut splicer = RecordsSplicer::default();
    let mut per_topic: Vec<Vec<PartitionData>> = vec![Vec::new(); topics.len()];
    for ((w, r), payload) in wanted.iter().zip(results).zip(payloads) {
        let records = if payload.is_empty() { Default::default() } else { splicer.placeholder(payload) };
        let hint = match (&topics[w.topic_slot].0, ctx.version >= KIP_951_VERSION) {
            (Some(name), true) => hints.hint(r.error_code, name, w.partition, true),
            _ => None,
        };
        let current_leader = hint.map_or_else(LeaderIdAndEpoch::default, |(leader, epoch)| {
            LeaderIdAndEpoch::default().with_leader_id(BrokerId(leader)).with_leader_epoch(epoch)
        });
        per_topic[w.topic_slot].push(
            PartitionData::default()
                .with_current_leader(current_leader)
                .with_partition_index(w.partition)
                .with_error_code(r.error_code.code())
                .with_high_watermark(r.high_watermark)
                .with_last_stable_offset(r.last_stable_offset)
                .with_log_start_offset(r.log_start_offset)
                .with_aborted_transactions(r.aborted.as_deref().map(aborted_transactions))
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(records)),
        );
    }
    let responses = topics
        .into_iter()
        .zip(per_topic)
        .map(|((name, id), partitions)| {
            let mut t = FetchableTopicResponse::default().with_partitions(partitions);
            if ctx.version >= 13 {
                t = t.with_topic_id(id);
            } else {
                t = t.with_topic(TopicName(str_bytes(name.unwrap_or_default())));
            }
            t
        })
        .collect();
    let node_endpoints = hints
        .endpoints()
        .into_iter()
        .map(|e| NodeEndpoint::default().with_node_id(BrokerId(e.node_id)).with_host(str_bytes(e.host)).with_port(e.port).with_rack(e.rack.map(str_bytes)))
        .collect();
    let response = FetchResponse::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_session_id(0)
        .with_responses(responses)
        .with_node_endpoints(node_endpoints);
    (response, splicer)
}
