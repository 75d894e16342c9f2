//! Transaction markers: the coordinator's commit or abort, written into each data partition of a
//! transaction as a control batch, on that partition's owner core.
//!
//! SEAM (issue 18, session 15): the transaction coordinator (`txn/`, `shard/txns.rs`) calls
//! [`Router::write_txn_markers`]; the partition side (control batches, last stable offset,
//! `.txnindex`) fills in its body. Until then every marker is refused.

use crate::codes::ErrorCode;
use crate::types::{TopicPartition, TxnMarker};

use super::Router;

impl Router {
    /// Writes each marker to its partition (acks=all, as Kafka's coordinator writes them) and
    /// answers each partition's outcome, in the order asked.
    pub async fn write_txn_markers(&self, markers: Vec<(TopicPartition, TxnMarker)>) -> Vec<(TopicPartition, ErrorCode)> {
        markers.into_iter().map(|(tp, _)| (tp, ErrorCode::UNKNOWN_SERVER_ERROR)).collect()
    }
}
