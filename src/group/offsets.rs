//! Committed offsets: OffsetCommit, OffsetFetch and OffsetDelete.

use std::time::Instant;

use super::api::{CommitPart, OffsetEntry};
use super::coordinator::{GroupCoordinator, GroupLog};
use super::gcode;
use super::records::{GroupKey, OffsetValue};
use super::state::{Group, GroupState};
use crate::error::code;
use crate::types::now_ms;

impl GroupCoordinator {
    pub(super) async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        parts: Vec<CommitPart>,
        log: &impl GroupLog,
    ) -> Vec<i16> {
        let all = |code| vec![code; parts.len()];
        if group_id.is_empty() {
            return all(gcode::INVALID_GROUP_ID);
        }
        let consumer_check = self.consumer_groups.borrow().get(group_id).map(|g| g.check_commit(member_id, generation));
        if let Some(Err(e)) = consumer_check.filter(|_| !member_id.is_empty()) {
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
                    return all(gcode::ILLEGAL_GENERATION);
                }
                if g.state == GroupState::CompletingRebalance {
                    return all(gcode::REBALANCE_IN_PROGRESS);
                }
                if let Some(m) = g.member_mut(member_id) {
                    m.last_heartbeat = Instant::now();
                }
            } else if !g.members.is_empty() {
                // Kafka: a commit from outside the group while it has members names no member.
                return all(gcode::UNKNOWN_MEMBER_ID);
            }
        }
        let now = now_ms();
        let mut codes = Vec::with_capacity(parts.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for p in &parts {
            let c = if !log.partition_exists(&p.topic, p.partition) {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else if p.metadata.as_ref().is_some_and(|m| m.len() > self.config.offset_metadata_max_bytes) {
                gcode::OFFSET_METADATA_TOO_LARGE
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
                code::NONE
            };
            codes.push(c);
        }
        if records.is_empty() {
            return codes;
        }
        match log.append(self.partition_of(group_id), records).await {
            Ok(()) => {
                let mut groups = self.groups.borrow_mut();
                let g = groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id));
                for (k, v) in accepted {
                    g.offsets.insert(k, v);
                }
                codes
            }
            Err(e) => codes.into_iter().map(|c| if c == code::NONE { e } else { c }).collect(),
        }
    }

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

    pub(super) async fn delete_offsets(&self, group_id: &str, partitions: Vec<(String, i32)>, log: &impl GroupLog) -> (i16, Vec<i16>) {
        let (codes, records, removed) = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group_id) else { return (gcode::GROUP_ID_NOT_FOUND, Vec::new()) };
            let subscribed = g.subscribed_topics();
            let mut records = Vec::new();
            let mut removed = Vec::new();
            let codes = partitions
                .iter()
                .map(|(t, p)| {
                    if subscribed.contains(t) {
                        return gcode::GROUP_SUBSCRIBED_TO_TOPIC;
                    }
                    if g.offsets.contains_key(&(t.clone(), *p)) {
                        let key = GroupKey::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p };
                        records.push((key.encode(), None));
                        removed.push((t.clone(), *p));
                    }
                    code::NONE
                })
                .collect();
            (codes, records, removed)
        };
        if !records.is_empty() {
            if let Err(e) = log.append(self.partition_of(group_id), records).await {
                return (e, Vec::new());
            }
            if let Some(g) = self.groups.borrow_mut().get_mut(group_id) {
                for k in removed {
                    g.offsets.remove(&k);
                }
            }
        }
        (code::NONE, codes)
    }
}


#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::config::GroupConfig;
    use crate::group::consumer;

    /// An in-memory `__consumer_offsets` for coordinator unit tests.
    #[derive(Default)]
    struct MemLog {
        records: RefCell<Vec<(i32, Bytes, Option<Bytes>)>>,
    }

    impl GroupLog for MemLog {
        async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), i16> {
            self.records.borrow_mut().extend(records.into_iter().map(|(k, v)| (partition, k, v)));
            Ok(())
        }
        fn partition_exists(&self, topic: &str, _partition: i32) -> bool {
            topic == "t"
        }
        fn topics(&self) -> consumer::TopicInfo {
            Default::default()
        }
    }

    fn commit_part(offset: i64) -> CommitPart {
        CommitPart { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: Some("m".into()) }
    }

    #[test]
    fn offsets_replay_and_expire_by_retention() {
        let log = MemLog::default();
        let config = GroupConfig { offsets_retention_minutes: 0, ..GroupConfig::default() };
        let c = GroupCoordinator::new(config);
        let codes = futures::executor::block_on(c.commit("g", -1, "", None, vec![commit_part(7)], &log));
        assert_eq!(codes, vec![code::NONE]);
        let missing = futures::executor::block_on(c.commit(
            "g",
            -1,
            "",
            None,
            vec![CommitPart { topic: "nope".into(), ..commit_part(1) }],
            &log,
        ));
        assert_eq!(missing, vec![code::UNKNOWN_TOPIC_OR_PARTITION]);

        // A fresh coordinator rebuilds the offset from the records, metadata included.
        let replayed = GroupCoordinator::new(GroupConfig::default());
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

}
