//! Which `__consumer_offsets` partitions this coordinator serves, and the loads that bring one in.
//!
//! ```text
//!  (not served) ──begin_load──► Loading(id) ──finish_load(id)──► Active
//!        ▲                           │                               │
//!        └──────── unload ◄──────────┴───────────────────────────────┘
//! ```
//!
//! A group is served only while its partition is `Active`: while `Loading` its requests answer
//! COORDINATOR_LOAD_IN_PROGRESS, and when the partition is not here at all NOT_COORDINATOR, as
//! Kafka's coordinator does. Each load has its own id, so a load overtaken by an unload (and
//! perhaps a newer load) learns it is stale and stops instead of activating old state.

use std::collections::HashMap;

use kafka_protocol::messages::SyncGroupResponse;

use super::coordinator::GroupCoordinator;
use super::error::GroupError;
use super::state::join_error;
use crate::codes::ErrorCode;

/// One load of one `__consumer_offsets` partition: what its loader checks before each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadId {
    /// The partition being loaded.
    pub partition: i32,
    seq: u64,
}

/// Where one partition stands on this coordinator (absent: not served).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionPhase {
    Loading(u64),
    Active,
}

/// The `__consumer_offsets` partitions this coordinator serves or is loading. Pure bookkeeping.
#[derive(Debug, Default)]
pub(super) struct ServedPartitions {
    phases: HashMap<i32, PartitionPhase>,
    next_seq: u64,
}

impl ServedPartitions {
    /// Starts loading `partition`; `None` when it is already loading or served (Kafka keeps an
    /// owned partition as it is when its leadership is confirmed again).
    pub(super) fn begin(&mut self, partition: i32) -> Option<LoadId> {
        if self.phases.contains_key(&partition) {
            return None;
        }
        self.next_seq += 1;
        self.phases.insert(partition, PartitionPhase::Loading(self.next_seq));
        Some(LoadId { partition, seq: self.next_seq })
    }

    /// Whether `load` is still the load in progress of its partition.
    pub(super) fn is_current(&self, load: LoadId) -> bool {
        self.phases.get(&load.partition) == Some(&PartitionPhase::Loading(load.seq))
    }

    /// Ends `load`: its partition is served from now on. False (nothing changes) when the load
    /// was overtaken by an unload.
    pub(super) fn finish(&mut self, load: LoadId) -> bool {
        if !self.is_current(load) {
            return false;
        }
        self.phases.insert(load.partition, PartitionPhase::Active);
        true
    }

    /// Stops serving (or loading) `partition`; whether it was here.
    pub(super) fn stop(&mut self, partition: i32) -> bool {
        self.phases.remove(&partition).is_some()
    }

    /// Whether requests for a group of `partition` are served now, or why not.
    pub(super) fn check(&self, partition: i32) -> Result<(), GroupError> {
        match self.phases.get(&partition) {
            Some(PartitionPhase::Active) => Ok(()),
            Some(PartitionPhase::Loading(_)) => Err(GroupError::CoordinatorLoadInProgress { partition }),
            None => Err(GroupError::NotCoordinator { partition }),
        }
    }
}

impl GroupCoordinator {
    /// Starts loading the groups of `__consumer_offsets` partition `partition` (this broker now
    /// leads it): its groups answer COORDINATOR_LOAD_IN_PROGRESS until [`Self::finish_load`].
    /// `None` when the partition is already loading or served. Stale state of the partition
    /// (from an earlier leadership) is dropped first, so the replay starts from nothing.
    pub fn begin_load(&self, partition: i32) -> Option<LoadId> {
        let load = self.served.borrow_mut().begin(partition)?;
        self.drop_groups_of(partition);
        Some(load)
    }

    /// Whether `load` is still wanted: false once the partition was unloaded (leadership lost).
    pub fn load_is_current(&self, load: LoadId) -> bool {
        self.served.borrow().is_current(load)
    }

    /// Ends `load`: the partition's groups are served from now on. False when it was overtaken.
    pub fn finish_load(&self, load: LoadId) -> bool {
        self.served.borrow_mut().finish(load)
    }

    /// Stops serving the groups of `partition` (this broker no longer leads it): their state is
    /// dropped, and members waiting in JoinGroup or SyncGroup are answered NOT_COORDINATOR so they
    /// find the new coordinator. The number of groups dropped.
    pub fn unload(&self, partition: i32) -> usize {
        let was_here = self.served.borrow_mut().stop(partition);
        let dropped = self.drop_groups_of(partition);
        if was_here || dropped > 0 {
            tracing::info!(partition, groups = dropped, "group coordination of partition given up");
        }
        dropped
    }

    /// Whether requests for `group` are served here now: NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS otherwise.
    pub(super) fn check_serving(&self, group: &str) -> Result<(), GroupError> {
        self.served.borrow().check(self.partition_of(group))
    }

    /// Whether `group`'s partition is served (loaded) here.
    pub(super) fn serves(&self, group: &str) -> bool {
        self.check_serving(group).is_ok()
    }

    /// Forgets the classic and KIP-848 groups of `partition`, answering parked members.
    fn drop_groups_of(&self, partition: i32) -> usize {
        let not_coordinator = GroupError::NotCoordinator { partition };
        let code = ErrorCode::from(&not_coordinator).code();
        let dropped: Vec<_> = {
            let mut groups = self.groups.borrow_mut();
            let ids: Vec<String> = groups.keys().filter(|id| self.partition_of(id) == partition).cloned().collect();
            ids.iter().filter_map(|id| groups.remove(id)).collect()
        };
        let mut count = dropped.len();
        for mut g in dropped {
            for m in g.members.values_mut() {
                if let Some((_, tx)) = m.join_waiter.take() {
                    let _ = tx.send(join_error(&not_coordinator, &m.id));
                }
                if let Some(tx) = m.sync_waiter.take() {
                    let _ = tx.send(SyncGroupResponse::default().with_error_code(code));
                }
            }
        }
        let mut consumer = self.consumer_groups.borrow_mut();
        let before = consumer.len();
        consumer.retain(|id, _| self.partition_of(id) != partition);
        count += before - consumer.len();
        count
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{GroupId, JoinGroupRequest};

    use super::*;
    use crate::config::GroupConfig;
    use crate::group::api::{CommitPart, GroupCall, GroupReply};
    use crate::group::state::sb;
    use crate::group::testing::MemLog;

    fn commit(group: &str, offset: i64) -> GroupCall {
        let part = CommitPart { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: None };
        GroupCall::Commit { group: group.into(), generation: -1, member_id: String::new(), instance_id: None, parts: vec![part], txn: None }
    }

    fn fetch(group: &str) -> GroupCall {
        GroupCall::FetchOffsets { group: group.into(), partitions: Some(vec![("t".into(), 0)]) }
    }

    /// The committed offset of t-0, or the code the coordinator refused with.
    fn committed(c: &GroupCoordinator, group: &str, log: &MemLog) -> Result<i64, ErrorCode> {
        match block_on(c.handle(fetch(group), log)) {
            GroupReply::Offsets(entries) => Ok(entries[0].offset),
            GroupReply::Refused(code) => Err(code),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    #[test]
    fn groups_of_a_partition_not_loaded_here_are_refused_not_coordinator() {
        let c = GroupCoordinator::new(GroupConfig::default());
        let log = MemLog::default();
        assert_eq!(committed(&c, "g", &log), Err(ErrorCode::NOT_COORDINATOR));
        let reply = block_on(c.handle(commit("g", 5), &log));
        assert!(matches!(reply, GroupReply::Refused(ErrorCode::NOT_COORDINATOR)), "{reply:?}");
        assert!(log.records.borrow().is_empty(), "a refused commit writes nothing");
        // An empty group id is still refused as invalid, as Kafka checks it first.
        let reply = block_on(c.handle(commit("", 5), &log));
        assert!(matches!(&reply, GroupReply::Committed(codes) if codes == &[ErrorCode::INVALID_GROUP_ID]), "{reply:?}");
    }

    #[test]
    fn a_moved_partition_is_dropped_then_replayed_from_its_log() {
        let c = GroupCoordinator::serving_all(GroupConfig::default());
        let log = MemLog::default();
        let (g, h) = ("g", "h");
        let (pg, ph) = (c.partition_of(g), c.partition_of(h));
        assert_ne!(pg, ph);
        for (group, offset) in [(g, 7), (h, 9)] {
            assert!(matches!(block_on(c.handle(commit(group, offset), &log)), GroupReply::Committed(codes) if codes == [ErrorCode::NONE]));
        }
        // A member parked in JoinGroup (v3: no KIP-394 round trip; the initial delay holds it).
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(g)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(sb("range"))]);
        let parked = c.join(req, 3, "c".into(), "/127.0.0.1".into()).unwrap();

        // Leadership of g's partition moves away: g is forgotten, its parked member told to look again.
        assert_eq!(c.unload(pg), 1);
        let answer = block_on(parked).unwrap();
        assert_eq!(answer.error_code, ErrorCode::NOT_COORDINATOR.code());
        assert_eq!(committed(&c, g, &log), Err(ErrorCode::NOT_COORDINATOR));
        assert_eq!(committed(&c, h, &log), Ok(9), "other partitions are untouched");

        // It comes back: refused as loading until the replay is done, then the offset is there.
        let load = c.begin_load(pg).unwrap();
        assert_eq!(committed(&c, g, &log), Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS));
        for (partition, key, value) in log.records.borrow().iter() {
            if *partition == pg {
                c.replay(key, value.as_deref());
            }
        }
        assert!(c.load_is_current(load));
        assert!(c.finish_load(load));
        assert_eq!(committed(&c, g, &log), Ok(7));
    }

    #[test]
    fn a_load_activates_its_partition_and_only_that_one() {
        let mut served = ServedPartitions::default();
        assert_eq!(served.check(3), Err(GroupError::NotCoordinator { partition: 3 }));
        let load = served.begin(3).unwrap();
        assert_eq!(served.check(3), Err(GroupError::CoordinatorLoadInProgress { partition: 3 }));
        assert!(served.begin(3).is_none(), "one load at a time");
        assert!(served.finish(load));
        assert_eq!(served.check(3), Ok(()));
        assert_eq!(served.check(4), Err(GroupError::NotCoordinator { partition: 4 }));
        assert!(served.begin(3).is_none(), "a served partition is kept as it is");
    }

    #[test]
    fn a_load_overtaken_by_an_unload_never_activates() {
        let mut served = ServedPartitions::default();
        let old = served.begin(7).unwrap();
        assert!(served.stop(7));
        let new = served.begin(7).unwrap();
        assert!(!served.is_current(old));
        assert!(!served.finish(old), "the stale load must not activate the partition");
        assert_eq!(served.check(7), Err(GroupError::CoordinatorLoadInProgress { partition: 7 }));
        assert!(served.finish(new));
        assert!(served.stop(7));
        assert!(!served.stop(7));
        assert_eq!(served.check(7), Err(GroupError::NotCoordinator { partition: 7 }));
    }
}
