//! EndTxn: commits or aborts a producer's transaction. Answered once the decision is durable
//! in `__transaction_state`; the markers follow. v5+ is transaction version 2 (KIP-890): the
//! epoch is bumped and the answer carries the producer id and epoch to use next.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::txn_code;
use crate::protocol::RequestContext;
use crate::txn::{TxnCall, TxnReply};

/// Versions served (Kafka 4.0: 0–5).
pub const VERSIONS: (i16, i16) = (0, 5);

/// PRODUCER_FENCED exists from this version on; older clients get INVALID_PRODUCER_EPOCH.
const FIRST_FENCED_VERSION: i16 = 2;

/// The first version of transaction version 2.
const FIRST_TV2_VERSION: i16 = 5;

/// Handles EndTxn.
pub async fn handle(ctx: &RequestContext<'_>, req: EndTxnRequest) -> EndTxnResponse {
    let transactional_id = req.transactional_id.0.to_string();
    tracing::debug!(transactional_id = %transactional_id, producer_id = req.producer_id.0, producer_epoch = req.producer_epoch,
        commit = req.committed, version = ctx.version, "end transaction");
    let call = TxnCall::EndTxn {
        transactional_id: transactional_id.clone(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        commit: req.committed,
        tv2: ctx.version >= FIRST_TV2_VERSION,
    };
    let (code, producer_id, producer_epoch) = match ctx.router.txn_call(&transactional_id, call).await {
        TxnReply::Producer { code, producer_id, producer_epoch } => (code, producer_id, producer_epoch),
        other => (other.refusal_code(), -1, -1),
    };
    EndTxnResponse::default()
        .with_error_code(txn_code(code, ctx.version, FIRST_FENCED_VERSION).code())
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
}
