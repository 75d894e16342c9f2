//! DescribeTransactions: the state of each transactional id, from its coordinator.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName, TransactionalId};

use super::str_bytes;
use crate::codes::ErrorCode;
use crate::protocol::RequestContext;
use crate::txn::{TxnCall, TxnReply};

/// Versions served (Kafka 4.0: 0).
pub const VERSIONS: (i16, i16) = (0, 0);

/// Handles DescribeTransactions.
pub async fn handle(ctx: &RequestContext<'_>, req: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(req.transactional_ids.len());
    for id in req.transactional_ids {
        let transactional_id = id.0.to_string();
        let reply = ctx.router.txn_call(&transactional_id, TxnCall::Describe { transactional_id: transactional_id.clone() }).await;
        let state = TransactionState::default().with_transactional_id(TransactionalId(id.0)).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
        states.push(match reply {
            TxnReply::Described(Ok(m)) => {
                let mut topics: Vec<TopicData> = Vec::new();
                for tp in &m.partitions {
                    match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.topic) {
                        Some(t) => t.partitions.push(tp.partition),
                        None => topics.push(TopicData::default().with_topic(TopicName(str_bytes(tp.topic.clone()))).with_partitions(vec![tp.partition])),
                    }
                }
                state
                    .with_error_code(ErrorCode::NONE.code())
                    .with_transaction_state(str_bytes(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.producer_epoch)
                    .with_topics(topics)
            }
            TxnReply::Described(Err(code)) => state.with_error_code(code.code()),
            other => state.with_error_code(other.refusal_code().code()),
        });
    }
    tracing::debug!(ids = states.len(), "describe transactions");
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
