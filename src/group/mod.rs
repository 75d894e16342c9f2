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
//! The parts: [`api`] (the calls a handler sends and their replies), `state` (one group and its
//! phases), `coordinator` (a shard's groups, replay, dispatch), `classic` (join, sync, heartbeat,
//! leave), `offsets` (commit, fetch, delete), `admin` (describe, list, delete), `timers`
//! (sessions, rebalance timeouts, offset retention), [`consumer`] (KIP-848 groups) and
//! [`records`] (the `__consumer_offsets` schemas).

mod admin;
pub mod api;
mod classic;
pub mod consumer;
mod coordinator;
mod offsets;
pub mod records;
mod state;
mod timers;

pub use api::{CommitPart, GroupCall, GroupReply, OffsetEntry};
pub use coordinator::{GroupCoordinator, GroupLog, GroupWrite};
pub use state::GroupState;

/// The internal topic that stores group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka error codes of the group coordinator.
#[allow(missing_docs)]
pub mod gcode {
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}

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
