//! Why a transaction request failed. `crate::error` maps each variant to the Kafka error code the
//! client acts on (`ErrorCode::from(&err)`); the coordinator writes that code into its responses.

use crate::codes::ErrorCode;

/// A failure the transaction coordinator reports to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// The request names no transactional id.
    #[error("the transactional id is empty")]
    InvalidTransactionalId,
    /// `transaction.timeout.ms` is not positive or is over `transaction.max.timeout.ms`.
    #[error("transaction timeout {timeout_ms} ms is outside 1..={max_ms} ms")]
    InvalidTransactionTimeout {
        /// What the producer asked for.
        timeout_ms: i32,
        /// `transaction.max.timeout.ms`.
        max_ms: i32,
    },
    /// The producer id is not the one the transactional id holds (or the id is unknown).
    #[error("producer id {producer_id} is not the one of transactional id {transactional_id}")]
    InvalidProducerIdMapping {
        /// Transactional id.
        transactional_id: String,
        /// The producer id the request carried.
        producer_id: i64,
    },
    /// A newer producer with the same transactional id holds a higher epoch.
    #[error("producer epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced {
        /// The epoch the request carried.
        epoch: i16,
        /// The transactional id's epoch.
        current: i16,
    },
    /// Another state change of the transactional id is in progress: retry.
    #[error("transactional id {transactional_id} is completing a state change")]
    ConcurrentTransactions {
        /// Transactional id.
        transactional_id: String,
    },
    /// The request does not fit the transaction's state (commit after abort, ...).
    #[error("{operation} is not allowed in state {state}")]
    InvalidTxnState {
        /// What was asked.
        operation: &'static str,
        /// Kafka's name of the state.
        state: &'static str,
    },
    /// DescribeTransactions of an id this coordinator does not know.
    #[error("transactional id {transactional_id} not found")]
    TransactionalIdNotFound {
        /// Transactional id.
        transactional_id: String,
    },
    /// A partition of the request does not exist.
    #[error("unknown partition {topic}-{partition}")]
    UnknownTopicOrPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// Another partition of the same request failed, so this one was not tried.
    #[error("not attempted: another partition of the request failed")]
    OperationNotAttempted,
    /// This broker does not lead the id's `__transaction_state` partition.
    #[error("not the coordinator of __transaction_state-{partition}")]
    NotCoordinator {
        /// The id's `__transaction_state` partition.
        partition: i32,
    },
    /// This broker just became the coordinator and is still replaying the id's partition.
    #[error("__transaction_state-{partition} is still loading")]
    CoordinatorLoadInProgress {
        /// The id's `__transaction_state` partition.
        partition: i32,
    },
    /// No producer id could be allocated (the metadata quorum answered this code).
    #[error("no producer id: {0}")]
    ProducerIdAllocation(ErrorCode),
    /// Writing the transaction's state to `__transaction_state` failed, with the log's code.
    #[error("__transaction_state write failed: {0}")]
    StateWrite(ErrorCode),
}

/// The code of an outcome: `NONE` for success.
pub(super) fn outcome_code<T>(outcome: &Result<T, TxnError>) -> ErrorCode {
    match outcome {
        Ok(_) => ErrorCode::NONE,
        Err(e) => ErrorCode::from(e),
    }
}
