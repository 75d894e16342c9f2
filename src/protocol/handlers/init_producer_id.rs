//! InitProducerId: hands out producer ids. Without a transactional id the producer is only
//! idempotent and gets a fresh id; with one, the transaction coordinator of that id answers
//! (bumping the epoch, fencing an older producer, KIP-360 recovery).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::txn_code;
use crate::codes::ErrorCode;
use crate::metadata::MetadataMutation;
use crate::protocol::RequestContext;
use crate::txn::{TxnCall, TxnReply};

/// Versions served (Kafka 4.0: 0–5).
pub const VERSIONS: (i16, i16) = (0, 5);

/// PRODUCER_FENCED exists from this version on; older clients get INVALID_PRODUCER_EPOCH.
const FIRST_FENCED_VERSION: i16 = 4;

/// Handles InitProducerId.
pub async fn handle(ctx: &RequestContext<'_>, req: InitProducerIdRequest) -> InitProducerIdResponse {
    if let Some(transactional_id) = req.transactional_id.as_ref().map(|id| id.to_string()) {
        // KIP-360 (v3+): a producer recovering from an abortable error names its id and epoch.
        let expected = (req.producer_id.0 != -1).then_some((req.producer_id.0, req.producer_epoch));
        tracing::debug!(transactional_id = %transactional_id, timeout_ms = req.transaction_timeout_ms, version = ctx.version, "init transactional producer");
        let call = TxnCall::InitProducerId { transactional_id: transactional_id.clone(), timeout_ms: req.transaction_timeout_ms, expected };
        let (code, producer_id, producer_epoch) = match ctx.router.txn_call(&transactional_id, call).await {
            TxnReply::Producer { code, producer_id, producer_epoch } => (code, producer_id, producer_epoch),
            other => (other.refusal_code(), -1, -1),
        };
        return InitProducerIdResponse::default()
            .with_error_code(txn_code(code, ctx.version, FIRST_FENCED_VERSION).code())
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch);
    }
    // A producer that re-initialises (KIP-360) gets a fresh id: its old state is simply left behind.
    let (error_code, producer_id) = match ctx.router.mutate(MetadataMutation::AllocateProducerId).await {
        Ok(outcome) => (ErrorCode::NONE, outcome.producer_id.unwrap_or(-1)),
        Err(e) => {
            tracing::warn!(error = %e, "no producer id");
            (ErrorCode::from(&e), -1)
        }
    };
    tracing::info!(producer_id, "producer id allocated");
    InitProducerIdResponse::default()
        .with_error_code(error_code.code())
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(0)
}
