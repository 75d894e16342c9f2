//! AddPartitionsToTxn: adds partitions to a producer's transaction before it writes to them.
//! v0–3 come from producers (one transaction); v4+ from brokers (KIP-890: a batch of
//! transactions, each either added or, with `verify_only`, only checked).

use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId};

use super::{str_bytes, txn_code};
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;
use crate::txn::{TxnCall, TxnReply};
use crate::types::TopicPartition;

/// Versions served (Kafka 4.0: 0–5).
pub const VERSIONS: (i16, i16) = (0, 5);

/// PRODUCER_FENCED exists from this version on; older clients get INVALID_PRODUCER_EPOCH.
const FIRST_FENCED_VERSION: i16 = 2;

/// The first version sent by brokers, batched.
const FIRST_BATCHED_VERSION: i16 = 4;

/// From this version a broker adds partitions for a transaction version 2 producer (KIP-890).
const FIRST_TV2_VERSION: i16 = 5;

fn partitions_of(topics: &[AddPartitionsToTxnTopic]) -> Vec<TopicPartition> {
    topics.iter().flat_map(|t| t.partitions.iter().map(move |p| TopicPartition::new(t.name.0.to_string(), *p))).collect()
}

/// Per-partition codes grouped by topic, in request order.
fn topic_results(answers: Vec<(TopicPartition, ErrorCode)>, version: i16) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, code) in answers {
        let partition = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(tp.partition)
            .with_partition_error_code(txn_code(code, version, FIRST_FENCED_VERSION).code());
        match results.iter_mut().find(|r| r.name.0.as_str() == tp.topic) {
            Some(r) => r.results_by_partition.push(partition),
            None => results.push(AddPartitionsToTxnTopicResult::default().with_name(TopicName(str_bytes(tp.topic))).with_results_by_partition(vec![partition])),
        }
    }
    results
}

/// Adds (or verifies) one transaction's partitions on its coordinator.
async fn one(
    ctx: &RequestContext<'_>,
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    partitions: Vec<TopicPartition>,
    verify_only: bool,
) -> Vec<(TopicPartition, ErrorCode)> {
    tracing::debug!(transactional_id = %transactional_id, producer_id, producer_epoch, partitions = partitions.len(), verify_only, "add partitions to transaction");
    let call = TxnCall::AddPartitions {
        transactional_id: transactional_id.clone(),
        producer_id,
        producer_epoch,
        partitions: partitions.clone(),
        verify_only,
        // A v5 add comes from the partition leader of a TV2 producer's first write there.
        client_txn_version: if ctx.version >= FIRST_TV2_VERSION && !verify_only { crate::txn::TRANSACTION_VERSION } else { 0 },
    };
    match ctx.router.txn_call(&transactional_id, call).await {
        TxnReply::Partitions(answers) => answers,
        other => {
            let code = other.refusal_code();
            partitions.into_iter().map(|tp| (tp, code)).collect()
        }
    }
}

/// Handles AddPartitionsToTxn.
pub async fn handle(ctx: &RequestContext<'_>, req: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    if ctx.version < FIRST_BATCHED_VERSION {
        let partitions = partitions_of(&req.v3_and_below_topics);
        let answers = one(ctx, req.v3_and_below_transactional_id.0.to_string(), req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch, partitions, false).await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topic_results(answers, ctx.version));
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for AddPartitionsToTxnTransaction { transactional_id, producer_id, producer_epoch, verify_only, topics, .. } in req.transactions {
        let answers = one(ctx, transactional_id.0.to_string(), producer_id.0, producer_epoch, partitions_of(&topics), verify_only).await;
        results.push(AddPartitionsToTxnResult::default().with_transactional_id(TransactionalId(transactional_id.0)).with_topic_results(topic_results(answers, ctx.version)));
    }
    AddPartitionsToTxnResponse::default().with_error_code(ErrorCode::NONE.code()).with_results_by_transaction(results)
}
