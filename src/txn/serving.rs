//! Which `__transaction_state` partitions this coordinator serves, with the coordinator epoch
//! (the partition's leader epoch) its markers carry, and the loads that bring one in.
//!
//! ```text
//!  (not served) ──begin_load──► Loading(id) ──finish_load(id)──► Active
//!        ▲                           │                               │
//!        └──────── unload ◄──────────┴───────────────────────────────┘
//! ```
//!
//! While `Loading` its ids answer COORDINATOR_LOAD_IN_PROGRESS; when the partition is not here
//! NOT_COORDINATOR, as Kafka's coordinator does. Each load has its own id, so a load overtaken
//! by an unload learns it is stale and stops.

use std::collections::HashMap;

use super::error::TxnError;

/// One load of one `__transaction_state` partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnLoadId {
    /// The partition being loaded.
    pub partition: i32,
    seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Loading(u64),
    Active,
}

/// The partitions served or loading, with their coordinator epochs. Pure bookkeeping.
#[derive(Debug, Default)]
pub(super) struct ServedPartitions {
    phases: HashMap<i32, (Phase, i32)>,
    next_seq: u64,
}

impl ServedPartitions {
    /// Starts loading `partition` at `coordinator_epoch`; `None` when it is already here.
    pub(super) fn begin(&mut self, partition: i32, coordinator_epoch: i32) -> Option<TxnLoadId> {
        if self.phases.contains_key(&partition) {
            return None;
        }
        self.next_seq += 1;
        self.phases.insert(partition, (Phase::Loading(self.next_seq), coordinator_epoch));
        Some(TxnLoadId { partition, seq: self.next_seq })
    }

    /// Whether `load` is still the load in progress of its partition.
    pub(super) fn is_current(&self, load: TxnLoadId) -> bool {
        self.phases.get(&load.partition).map(|(p, _)| *p) == Some(Phase::Loading(load.seq))
    }

    /// Ends `load`: its partition is served from now on. False when it was overtaken.
    pub(super) fn finish(&mut self, load: TxnLoadId) -> bool {
        if !self.is_current(load) {
            return false;
        }
        if let Some(entry) = self.phases.get_mut(&load.partition) {
            entry.0 = Phase::Active;
        }
        true
    }

    /// Stops serving (or loading) `partition`; whether it was here.
    pub(super) fn stop(&mut self, partition: i32) -> bool {
        self.phases.remove(&partition).is_some()
    }

    /// The coordinator epoch of a served partition, or why it is not served.
    pub(super) fn check(&self, partition: i32) -> Result<i32, TxnError> {
        match self.phases.get(&partition) {
            Some((Phase::Active, epoch)) => Ok(*epoch),
            Some((Phase::Loading(_), _)) => Err(TxnError::CoordinatorLoadInProgress { partition }),
            None => Err(TxnError::NotCoordinator { partition }),
        }
    }
}
