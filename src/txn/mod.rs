//! The transaction coordinator: transactional ids, their producer ids and epochs, and the state
//! of each transaction, stored in `__transaction_state` with Kafka's key and value schemas.
//!
//! A transactional id lives on the shard that leads its `__transaction_state` partition
//! (`abs(javaHash(id)) % transaction.state.log.num.partitions`), as a group lives with its
//! `__consumer_offsets` partition. Every change is written there (acks=all) before it is applied
//! or answered, so a new coordinator rebuilds the same state by replaying the partition.
//!
//! ```text
//!  Empty ──AddPartitions──► Ongoing ──EndTxn(commit)──► PrepareCommit ──markers──► CompleteCommit
//!    ▲                         │  └──EndTxn(abort) / timeout / fence──► PrepareAbort ──markers──► CompleteAbort
//!    └── InitProducerId ◄──────┴──────────────── (Complete* and Empty start the next transaction)
//! ```
//!
//! The parts: [`api`] (the calls a handler sends and their replies), [`TxnError`] (why a request
//! failed; `crate::error` maps it to Kafka's code), [`state`] (one transactional id and its
//! transitions, pure), [`records`] (the `__transaction_state` schemas), `coordinator` (a shard's
//! transactional ids, replay, dispatch), `serving` (the partitions served here), `ops`
//! (InitProducerId, AddPartitionsToTxn, EndTxn), `markers` (writing commit/abort markers, then
//! the Complete record), `timers` (proactive abort of timed-out transactions, id expiration) and
//! `admin` (DescribeTransactions, ListTransactions).

mod admin;
pub mod api;
mod coordinator;
mod error;
mod markers;
mod ops;
pub mod records;
mod serving;
pub mod state;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod timers;

pub use api::{TxnCall, TxnReply};
pub use coordinator::{TxnCoordinator, TxnLog};
pub use error::TxnError;
pub use serving::TxnLoadId;
pub use state::{TxnMetadata, TxnState};

/// The internal topic that stores transaction state.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

/// The highest transaction version served (KIP-890 part 2: an epoch bump per transaction).
pub const TRANSACTION_VERSION: i16 = 2;

/// The `__transaction_state` partition of a transactional id: Java's `String.hashCode`, as Kafka
/// computes it (the same rule as a group's `__consumer_offsets` partition).
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::partition_for(transactional_id, partitions)
}
