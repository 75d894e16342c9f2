//! AddOffsetsToTxn: adds a consumer group's `__consumer_offsets` partition to a transaction, so
//! the offsets the producer commits with TxnOffsetCommit end with the transaction.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::txn_code;
use crate::protocol::RequestContext;
use crate::txn::{TxnCall, TxnReply};
use crate::types::TopicPartition;

/// Versions served (Kafka 4.0: 0–4).
pub const VERSIONS: (i16, i16) = (0, 4);

/// PRODUCER_FENCED exists from this version on; older clients get INVALID_PRODUCER_EPOCH.
const FIRST_FENCED_VERSION: i16 = 2;

/// Handles AddOffsetsToTxn.
pub async fn handle(ctx: &RequestContext<'_>, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let transactional_id = req.transactional_id.0.to_string();
    let group = req.group_id.0.to_string();
    let partition = crate::group::partition_for(&group, ctx.router.shard.config.group.offsets_topic_partitions);
    tracing::debug!(transactional_id = %transactional_id, group = %group, partition, "add offsets to transaction");
    let call = TxnCall::AddPartitions {
        transactional_id: transactional_id.clone(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        partitions: vec![TopicPartition::new(crate::group::OFFSETS_TOPIC, partition)],
        verify_only: false,
        client_txn_version: 0,
    };
    let code = match ctx.router.txn_call(&transactional_id, call).await {
        TxnReply::Partitions(answers) => answers.first().map_or(crate::codes::ErrorCode::UNKNOWN_SERVER_ERROR, |(_, c)| *c),
        other => other.refusal_code(),
    };
    AddOffsetsToTxnResponse::default().with_error_code(txn_code(code, ctx.version, FIRST_FENCED_VERSION).code())
}
