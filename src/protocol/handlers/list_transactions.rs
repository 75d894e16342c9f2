//! ListTransactions: the transactional ids this broker coordinates, filtered by state, producer
//! id and (v1) how long the transaction has run.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;
use crate::txn::{TxnCall, TxnReply, TxnState};

/// Versions served (Kafka 4.0: 0–1).
pub const VERSIONS: (i16, i16) = (0, 1);

/// Handles ListTransactions.
pub async fn handle(ctx: &RequestContext<'_>, req: ListTransactionsRequest) -> ListTransactionsResponse {
    // Kafka answers the unknown state names and filters with the rest.
    let (states, unknown): (Vec<_>, Vec<_>) = req.state_filters.iter().map(|s| (TxnState::from_name(s.as_str()), s.clone())).partition(|(s, _)| s.is_some());
    let states: Vec<TxnState> = states.into_iter().filter_map(|(s, _)| s).collect();
    let unknown: Vec<_> = unknown.into_iter().map(|(_, name)| name).collect();
    let producer_ids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration_ms = if ctx.version >= 1 { req.duration_filter } else { -1 };
    let make = || TxnCall::List { states: states.clone(), producer_ids: producer_ids.clone(), min_duration_ms };
    let mut listed = Vec::new();
    let mut error = ErrorCode::NONE;
    for reply in ctx.router.txn_call_all(make).await {
        match reply {
            TxnReply::Listed(txns) => listed.extend(txns),
            other => error = other.refusal_code(),
        }
    }
    tracing::debug!(listed = listed.len(), unknown_states = unknown.len(), "list transactions");
    let transaction_states = listed
        .into_iter()
        .map(|t| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(str_bytes(t.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_error_code(error.code())
        .with_unknown_state_filters(unknown)
        .with_transaction_states(transaction_states)
}
