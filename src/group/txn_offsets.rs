//! Offsets committed inside a transaction (TxnOffsetCommit): they are written to
//! `__consumer_offsets` at once, as the transaction's producer, but count only when the
//! transaction's commit marker lands on that partition; an abort marker drops them.

use super::coordinator::GroupCoordinator;
use super::records::{GroupKey, OffsetValue};
use super::state::Group;

impl GroupCoordinator {
    /// Commits or drops the offsets a transaction committed on `partition` (TxnOffsetCommit):
    /// called when a marker of `producer_id` lands there, live or replayed.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let mut groups = self.groups.borrow_mut();
        let mut ended = 0usize;
        for g in groups.values_mut().filter(|g| self.partition_of(&g.id) == partition) {
            let Some(pending) = g.txn_offsets.remove(&producer_id) else { continue };
            ended += pending.len();
            if commit {
                g.offsets.extend(pending);
            }
        }
        if ended > 0 {
            tracing::debug!(partition, producer_id, commit, offsets = ended, "transactional offsets ended");
        }
    }

    /// Replays one record of a transactional batch of `producer_id` (start-up): the offset waits
    /// for its transaction's marker, as it did when it was written.
    pub fn replay_txn(&self, producer_id: i64, key: &[u8], value: Option<&[u8]>) {
        let Some(GroupKey::Offset { group, topic, partition }) = GroupKey::decode(key) else { return };
        let Some(value) = value.and_then(OffsetValue::decode) else { return };
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
        g.txn_offsets.entry(producer_id).or_default().insert((topic, partition), value);
    }

}

impl Group {
    /// Whether an open transaction holds an offset of this group for `partition`: OffsetFetch
    /// with `require_stable` answers UNSTABLE_OFFSET_COMMIT then (KIP-447).
    pub(super) fn offset_is_unstable(&self, partition: &(String, i32)) -> bool {
        self.txn_offsets.values().any(|pending| pending.contains_key(partition))
    }
}

#[cfg(test)]
mod tests {
    use crate::codes::ErrorCode;
    use crate::config::GroupConfig;
    use crate::group::api::{CommitPart, GroupCall, GroupReply, TxnProducer};
    use crate::group::coordinator::GroupCoordinator;
    use crate::group::testing::MemLog;

    fn txn_commit(group: &str, producer_id: i64, offset: i64) -> GroupCall {
        let part = CommitPart { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: None };
        GroupCall::Commit {
            group: group.into(),
            generation: -1,
            member_id: String::new(),
            instance_id: None,
            parts: vec![part],
            txn: Some(TxnProducer { producer_id, producer_epoch: 0 }),
        }
    }

    fn committed(c: &GroupCoordinator, group: &str) -> i64 {
        c.fetch_offsets(group, Some(vec![("t".into(), 0)]))[0].offset
    }

    #[test]
    fn transactional_offsets_count_only_after_the_commit_marker() {
        glommio::LocalExecutor::default().run(async {
            let c = GroupCoordinator::serving_all(GroupConfig::default());
            let log = MemLog::default();
            let GroupReply::Committed(codes) = c.handle(txn_commit("g", 7, 42), &log).await else { panic!() };
            assert_eq!(codes, vec![ErrorCode::NONE]);
            assert_eq!(log.records.borrow().len(), 1, "written at once");
            assert_eq!(committed(&c, "g"), -1, "invisible before the marker");
            assert!(c.fetch_offsets("g", Some(vec![("t".into(), 0)]))[0].unstable);
            let partition = c.partition_of("g");
            c.complete_txn(partition + 1, 7, true);
            assert_eq!(committed(&c, "g"), -1, "a marker on another partition ends nothing here");
            c.complete_txn(partition, 7, true);
            assert_eq!(committed(&c, "g"), 42);
            assert!(!c.fetch_offsets("g", Some(vec![("t".into(), 0)]))[0].unstable);

            c.handle(txn_commit("g", 8, 99), &log).await;
            c.complete_txn(partition, 8, false);
            assert_eq!(committed(&c, "g"), 42, "an abort drops the offsets");
        });
    }

    #[test]
    fn replayed_transactional_offsets_wait_for_their_marker() {
        let c = GroupCoordinator::serving_all(GroupConfig::default());
        let log = MemLog::default();
        glommio::LocalExecutor::default().run(async { c.handle(txn_commit("g", 5, 10), &log).await });
        let (_, key, value) = log.records.borrow()[0].clone();
        let replayed = GroupCoordinator::serving_all(GroupConfig::default());
        replayed.replay_txn(5, &key, value.as_deref());
        assert_eq!(committed(&replayed, "g"), -1);
        replayed.complete_txn(replayed.partition_of("g"), 5, true);
        assert_eq!(committed(&replayed, "g"), 10);
    }
}
