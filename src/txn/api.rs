//! The messages a transaction coordinator serves: what a handler on any shard sends to the
//! coordinator shard of a transactional id ([`TxnCall`]) and what comes back ([`TxnReply`]).
//! Failures cross as Kafka codes: the coordinator turns each [`TxnError`](super::TxnError) into its code.

use super::state::{TxnMetadata, TxnState};
use crate::codes::ErrorCode;
use crate::types::TopicPartition;

/// A transaction operation, run on the coordinator shard of its transactional id.
#[derive(Debug, Clone)]
pub enum TxnCall {
    /// InitProducerId with a transactional id.
    InitProducerId {
        /// Transactional id.
        transactional_id: String,
        /// `transaction.timeout.ms`.
        timeout_ms: i32,
        /// The producer's current id and epoch (KIP-360, v3+), when it has one.
        expected: Option<(i64, i16)>,
    },
    /// AddPartitionsToTxn (v0–3 from a client, v4+ from a broker), AddOffsetsToTxn (the group's
    /// `__consumer_offsets` partition) and the produce path's KIP-890 verification.
    AddPartitions {
        /// Transactional id.
        transactional_id: String,
        /// Producer id.
        producer_id: i64,
        /// Producer epoch.
        producer_epoch: i16,
        /// Partitions to add (or verify).
        partitions: Vec<TopicPartition>,
        /// Only answer whether each partition is in the transaction (KIP-890 part 1).
        verify_only: bool,
        /// The client's transaction version (2 when the produce path adds for a TV2 producer).
        client_txn_version: i16,
    },
    /// EndTxn.
    EndTxn {
        /// Transactional id.
        transactional_id: String,
        /// Producer id.
        producer_id: i64,
        /// Producer epoch.
        producer_epoch: i16,
        /// Commit (true) or abort.
        commit: bool,
        /// EndTxn v5+: transaction version 2 (the epoch is bumped; the answer carries it).
        tv2: bool,
    },
    /// DescribeTransactions, one id.
    Describe {
        /// Transactional id.
        transactional_id: String,
    },
    /// ListTransactions: this shard's transactional ids that pass every filter.
    List {
        /// States to keep (empty: all).
        states: Vec<TxnState>,
        /// Producer ids to keep (empty: all).
        producer_ids: Vec<i64>,
        /// Keep only transactions running at least this long (ms; -1: no filter).
        min_duration_ms: i64,
    },
}

impl TxnCall {
    /// The transactional id the call is about (`None`: ListTransactions, which spans the shard).
    pub fn transactional_id(&self) -> Option<&str> {
        match self {
            TxnCall::InitProducerId { transactional_id, .. }
            | TxnCall::AddPartitions { transactional_id, .. }
            | TxnCall::EndTxn { transactional_id, .. }
            | TxnCall::Describe { transactional_id } => Some(transactional_id),
            TxnCall::List { .. } => None,
        }
    }
}

/// One transaction as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTxn {
    /// Transactional id.
    pub transactional_id: String,
    /// Producer id.
    pub producer_id: i64,
    /// State.
    pub state: TxnState,
}

/// The answer to a [`TxnCall`].
#[derive(Debug, Clone)]
pub enum TxnReply {
    /// InitProducerId and EndTxn: the code, and the producer id and epoch to use next.
    Producer {
        /// Outcome.
        code: ErrorCode,
        /// Producer id (-1 on error).
        producer_id: i64,
        /// Producer epoch (-1 on error).
        producer_epoch: i16,
    },
    /// AddPartitionsToTxn: one code per partition, in request order.
    Partitions(Vec<(TopicPartition, ErrorCode)>),
    /// DescribeTransactions: the id's state, or why there is none.
    Described(Result<Box<TxnMetadata>, ErrorCode>),
    /// ListTransactions entries.
    Listed(Vec<ListedTxn>),
    /// The coordinator is not there (its `__transaction_state` partition is unknown).
    Unavailable,
    /// The coordinator does not serve the id now: NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS.
    Refused(ErrorCode),
}

impl TxnReply {
    /// The code a handler answers when the reply is not the one it asked for: the refusal's
    /// code, else COORDINATOR_NOT_AVAILABLE (no coordinator answered).
    pub fn refusal_code(&self) -> ErrorCode {
        match self {
            TxnReply::Refused(code) => *code,
            _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        }
    }
}
