//! Consumer groups: Kafka's classic rebalance protocol and committed offsets.
//!
//! A group lives on the shard that owns its `__consumer_offsets` partition
//! (`abs(javaHash(group)) % offsets.topic.num.partitions`). Its state changes synchronously inside
//! one `RefCell` borrow; writes to `__consumer_offsets` happen between borrows, never across one.
//!
//! ```text
//!  Empty ──join──► PreparingRebalance ──all joined / rebalance timeout──► CompletingRebalance
//!    ▲                   ▲                                                     │ leader's SyncGroup
//!    └──last member out──┴──────────── join / leave / session expiry ◄── Stable ◄┘
//! ```
//!
//! The parts: [`api`] (the calls a handler sends and their replies), [`GroupError`] (why a
//! request failed; `crate::error` maps it to Kafka's code), `state` (one group and its
//! phases), `coordinator` (a shard's groups, replay, dispatch), `loading` (the `__consumer_offsets`
//! partitions served here: loaded when this broker leads one, dropped when it stops; the rest
//! are refused NOT_COORDINATOR), `classic` (join, sync, heartbeat, leave), `offsets` (commit, fetch, delete), `admin` (describe, list, delete), `timers`
//! (sessions, rebalance timeouts, offset retention), [`consumer`] (KIP-848 groups) and
//! [`records`] (the `__consumer_offsets` schemas).

mod admin;
pub mod api;
mod classic;
pub mod consumer;
mod coordinator;
mod error;
mod loading;
mod offsets;
pub mod records;
mod state;
#[cfg(test)]
mod testing;
mod timers;
mod txn_offsets;

pub use api::{CommitPart, GroupCall, GroupReply, OffsetEntry, TxnProducer};
pub use coordinator::{GroupCoordinator, GroupLog, GroupWrite};
pub use error::GroupError;
pub use loading::LoadId;
pub use state::GroupState;

/// The internal topic that stores group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The `__consumer_offsets` partition of a group: Java's `String.hashCode`, as Kafka computes it.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (h & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partition_matches_kafka() {
        // Java: ("my-group".hashCode() & 0x7fffffff) % 50 == 36; "".hashCode() == 0.
        assert_eq!(partition_for("my-group", 50), 36);
        assert_eq!(partition_for("", 50), 0);
    }
}
