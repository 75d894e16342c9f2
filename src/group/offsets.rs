//! Committed offsets: OffsetCommit, OffsetFetch and OffsetDelete.

use std::time::Instant;

use super::api::{CommitPart, OffsetEntry, TxnProducer};
use super::coordinator::{GroupCoordinator, GroupLog};
use super::error::GroupError;
use super::records::{GroupKey, OffsetValue};
use super::state::{Group, GroupState};
use crate::types::now_ms;

/// The outcome of one partition of an OffsetCommit or OffsetDelete.
type PartOutcome = Result<(), GroupError>;

impl GroupCoordinator {
    /// OffsetCommit and TxnOffsetCommit: one outcome per part, in order; accepted offsets count
    /// once durable, and a transaction's once its commit marker lands ([`GroupCoordinator::complete_txn`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        parts: Vec<CommitPart>,
        txn: Option<TxnProducer>,
        log: &impl GroupLog,
    ) -> Vec<PartOutcome> {
        let all = |e: GroupError| vec![Err(e); parts.len()];
        if group_id.is_empty() {
            return all(GroupError::InvalidGroupId);
        }
        let consumer_check = self.consumer_groups.borrow().get(group_id).map(|g| g.check_commit(member_id, generation));
        if let Some(Err(e)) = consumer_check.clone().filter(|_| !member_id.is_empty()) {
            return all(e);
        }
        {
            let mut groups = self.groups.borrow_mut();
            let g = groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id));
            // generation -1 with no member: a "simple" commit from outside the group protocol.
            let simple = (generation < 0 && member_id.is_empty()) || consumer_check.is_some();
            if !simple {
                if let Err(e) = g.check_member(member_id, instance_id) {
                    return all(e);
                }
                if generation != g.generation {
                    return all(GroupError::IllegalGeneration { generation, current: g.generation });
                }
                if g.state == GroupState::CompletingRebalance && txn.is_none() {
                    return all(GroupError::RebalanceInProgress { group: group_id.to_string() });
                }
                if let Some(m) = g.member_mut(member_id) {
                    m.last_heartbeat = Instant::now();
                }
            } else if !g.members.is_empty() && txn.is_none() {
                // Kafka: a commit from outside the group while it has members names no member; a
                // transaction's commit without group metadata is taken as it is.
                return all(GroupError::UnknownMemberId { member_id: member_id.to_string() });
            }
        }
        let now = now_ms();
        let max = self.config.offset_metadata_max_bytes;
        let mut outcomes = Vec::with_capacity(parts.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for p in &parts {
            let outcome = if !log.partition_exists(&p.topic, p.partition) {
                Err(GroupError::UnknownTopicOrPartition { topic: p.topic.clone(), partition: p.partition })
            } else if let Some(size) = p.metadata.as_ref().map(String::len).filter(|size| *size > max) {
                Err(GroupError::OffsetMetadataTooLarge { size, max })
            } else {
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone().unwrap_or_default(),
                    commit_timestamp: now,
                };
                let key = GroupKey::Offset { group: group_id.to_string(), topic: p.topic.clone(), partition: p.partition };
                records.push((key.encode(), Some(value.encode())));
                accepted.push(((p.topic.clone(), p.partition), value));
                Ok(())
            };
            outcomes.push(outcome);
        }
        if records.is_empty() {
            return outcomes;
        }
        let written = match txn {
            Some(producer) => log.append_txn(self.partition_of(group_id), producer, records).await,
            None => log.append(self.partition_of(group_id), records).await,
        };
        match written {
            // Durable either way; a partition given up meanwhile is not re-created here (its next
            // leader replays the commit).
            Ok(()) if !self.serves(group_id) => outcomes,
            Ok(()) => {
                let mut groups = self.groups.borrow_mut();
                let g = groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id));
                match txn {
                    Some(producer) => g.txn_offsets.entry(producer.producer_id).or_default().extend(accepted),
                    None => g.offsets.extend(accepted),
                }
                outcomes
            }
            // The accepted parts were not stored: they fail with the log's code.
            Err(e) => outcomes.into_iter().map(|o| o.and(Err(GroupError::StateWrite(e)))).collect(),
        }
    }

    /// OffsetFetch: the committed offsets asked for (`None`: all of them), -1 where none.
    pub(super) fn fetch_offsets(&self, group_id: &str, partitions: Option<Vec<(String, i32)>>) -> Vec<OffsetEntry> {
        let groups = self.groups.borrow();
        let g = groups.get(group_id);
        let entry = |topic: &str, partition: i32| {
            let v = g.and_then(|g| g.offsets.get(&(topic.to_string(), partition)));
            OffsetEntry {
                topic: topic.to_string(),
                partition,
                offset: v.map(|v| v.offset).unwrap_or(-1),
                leader_epoch: v.map(|v| v.leader_epoch).unwrap_or(-1),
                metadata: v.map(|v| v.metadata.clone()).unwrap_or_default(),
                unstable: g.is_some_and(|g| g.offset_is_unstable(&(topic.to_string(), partition))),
            }
        };
        match partitions {
            Some(list) => list.iter().map(|(t, p)| entry(t, *p)).collect(),
            None => {
                let mut keys: Vec<_> = g.map(|g| g.offsets.keys().cloned().collect()).unwrap_or_default();
                keys.sort();
                keys.iter().map(|(t, p)| entry(t, *p)).collect()
            }
        }
    }

    /// OffsetDelete: one outcome per partition; an error for the whole request when the group is
    /// unknown or the tombstones could not be stored.
    pub(super) async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
        log: &impl GroupLog,
    ) -> Result<Vec<PartOutcome>, GroupError> {
        let (outcomes, records, removed) = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group_id) else { return Err(GroupError::GroupIdNotFound { group: group_id.to_string() }) };
            let subscribed = g.subscribed_topics();
            let mut records = Vec::new();
            let mut removed = Vec::new();
            let outcomes = partitions
                .iter()
                .map(|(t, p)| {
                    if subscribed.contains(t) {
                        return Err(GroupError::GroupSubscribedToTopic { topic: t.clone() });
                    }
                    if g.offsets.contains_key(&(t.clone(), *p)) {
                        let key = GroupKey::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p };
                        records.push((key.encode(), None));
                        removed.push((t.clone(), *p));
                    }
                    Ok(())
                })
                .collect();
            (outcomes, records, removed)
        };
        if !records.is_empty() {
            log.append(self.partition_of(group_id), records).await.map_err(GroupError::StateWrite)?;
            if let Some(g) = self.groups.borrow_mut().get_mut(group_id) {
                for k in removed {
                    g.offsets.remove(&k);
                }
            }
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codes::ErrorCode;
    use crate::config::GroupConfig;
    use crate::group::api::{GroupCall, GroupReply};
    use crate::group::testing::MemLog;

    fn commit_part(offset: i64) -> CommitPart {
        CommitPart { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: Some("m".into()) }
    }

    #[test]
    fn offsets_replay_and_expire_by_retention() {
        let log = MemLog::default();
        let config = GroupConfig { offsets_retention_minutes: 0, ..GroupConfig::default() };
        let c = GroupCoordinator::serving_all(config);
        let codes = futures::executor::block_on(c.commit("g", -1, "", None, vec![commit_part(7)], None, &log));
        assert_eq!(codes, vec![Ok(())]);
        let missing = futures::executor::block_on(c.commit(
            "g",
            -1,
            "",
            None,
            vec![CommitPart { topic: "nope".into(), ..commit_part(1) }],
            None,
            &log,
        ));
        assert_eq!(missing, vec![Err(GroupError::UnknownTopicOrPartition { topic: "nope".into(), partition: 0 })]);

        // A fresh coordinator rebuilds the offset from the records, metadata included.
        let replayed = GroupCoordinator::serving_all(GroupConfig::default());
        for (_, k, v) in log.records.borrow().iter() {
            replayed.replay(k, v.as_deref());
        }
        let got = replayed.fetch_offsets("g", Some(vec![("t".into(), 0)]));
        assert_eq!((got[0].offset, got[0].metadata.as_str()), (7, "m"));

        // offsets.retention.minutes = 0: an empty group's offsets expire at the next tick, with a tombstone.
        std::thread::sleep(Duration::from_millis(5));
        futures::executor::block_on(c.tick(&log));
        assert_eq!(c.fetch_offsets("g", Some(vec![("t".into(), 0)]))[0].offset, -1);
        let last = log.records.borrow().last().cloned().unwrap();
        assert_eq!(last.1, GroupKey::Offset { group: "g".into(), topic: "t".into(), partition: 0 }.encode());
        assert!(last.2.is_none(), "tombstone");
    }


    #[test]
    fn a_failed_write_fails_the_accepted_parts_with_the_logs_code() {
        let log = MemLog::failing(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        let c = GroupCoordinator::serving_all(GroupConfig::default());
        let parts = vec![commit_part(7), CommitPart { topic: "nope".into(), ..commit_part(1) }];
        let call = GroupCall::Commit { group: "g".into(), generation: -1, member_id: String::new(), instance_id: None, parts, txn: None };
        let reply = futures::executor::block_on(c.handle(call, &log));
        let GroupReply::Committed(codes) = reply else { panic!("not a commit reply: {reply:?}") };
        // A lost leadership tells the client to find the coordinator again (Kafka 4's mapping).
        assert_eq!(codes, vec![ErrorCode::NOT_COORDINATOR, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION]);
        assert_eq!(c.fetch_offsets("g", Some(vec![("t".into(), 0)]))[0].offset, -1, "nothing stored");
    }

    #[test]
    fn commit_checks_member_and_metadata_size() {
        let log = MemLog::default();
        let config = GroupConfig { offset_metadata_max_bytes: 4, ..GroupConfig::default() };
        let c = GroupCoordinator::serving_all(config);
        let too_long = CommitPart { metadata: Some("12345".into()), ..commit_part(1) };
        let got = futures::executor::block_on(c.commit("g", -1, "", None, vec![too_long], None, &log));
        assert_eq!(got, vec![Err(GroupError::OffsetMetadataTooLarge { size: 5, max: 4 })]);
        let got = futures::executor::block_on(c.commit("", -1, "", None, vec![commit_part(1)], None, &log));
        assert_eq!(got, vec![Err(GroupError::InvalidGroupId)]);
        // A member id the group does not know, in a generation: UNKNOWN_MEMBER_ID on the wire.
        let call = GroupCall::Commit { group: "g".into(), generation: 3, member_id: "m-1".into(), instance_id: None, parts: vec![commit_part(1)], txn: None };
        let reply = futures::executor::block_on(c.handle(call, &log));
        assert!(matches!(&reply, GroupReply::Committed(codes) if codes == &[ErrorCode::UNKNOWN_MEMBER_ID]), "{reply:?}");
    }

    #[test]
    fn offset_delete_of_an_unknown_group_is_group_id_not_found() {
        let c = GroupCoordinator::serving_all(GroupConfig::default());
        let call = GroupCall::DeleteOffsets { group: "nope".into(), partitions: vec![("t".into(), 0)] };
        let reply = futures::executor::block_on(c.handle(call, &MemLog::default()));
        assert!(matches!(&reply, GroupReply::Deleted(top, per) if *top == ErrorCode::GROUP_ID_NOT_FOUND && per.is_empty()), "{reply:?}");
    }
}
