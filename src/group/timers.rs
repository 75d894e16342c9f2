//! The coordinator's timers: member sessions, rebalance timeouts, the initial rebalance delay,
//! and the retention of an empty group's committed offsets.

use std::time::Instant;

use super::coordinator::{GroupCoordinator, GroupLog, GroupWrite};
use super::partition_for;
use super::records::GroupKey;
use super::state::GroupState;
use crate::types::now_ms;

impl GroupCoordinator {
    /// Timers: session expiry, rebalance timeouts, the initial rebalance delay, offset retention.
    pub async fn tick(&self, log: &impl GroupLog) {
        if !self.consumer_groups.borrow().is_empty() {
            let topics = log.topics();
            for (id, g) in self.consumer_groups.borrow_mut().iter_mut() {
                // Groups of a partition still loading wait for their load.
                if !self.serves(id) {
                    continue;
                }
                g.expire(&topics);
            }
        }
        let now = Instant::now();
        let retention_ms = self.config.offsets_retention_minutes.saturating_mul(60_000);
        let mut writes: Vec<GroupWrite> = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            for g in groups.values_mut().filter(|g| self.serves(&g.id)) {
                let expired: Vec<String> = g
                    .members
                    .values()
                    .filter(|m| {
                        // A member parked in JoinGroup is waiting on us, not silent.
                        m.join_waiter.is_none() && now.duration_since(m.last_heartbeat) > m.session_timeout
                    })
                    .map(|m| m.id.clone())
                    .collect();
                let was_empty = g.state == GroupState::Empty;
                if !expired.is_empty() {
                    for id in &expired {
                        tracing::info!(group = %g.id, member = %id, "member session expired");
                    }
                    g.remove_members(&expired, self.initial_delay());
                }
                if g.state == GroupState::PreparingRebalance {
                    let deadline_passed = g.rebalance_deadline.is_some_and(|d| now >= d);
                    let delay_over = g.join_not_before.is_none_or(|t| now >= t);
                    if deadline_passed || (delay_over && g.all_joined()) {
                        g.complete_join();
                    }
                }
                let mut records = Vec::new();
                if g.state == GroupState::Empty && !was_empty {
                    records.push(g.metadata_record());
                }
                if g.state == GroupState::Empty {
                    let cutoff = now_ms() - retention_ms;
                    let old: Vec<(String, i32)> =
                        g.offsets.iter().filter(|(_, v)| v.commit_timestamp < cutoff).map(|(k, _)| k.clone()).collect();
                    for (t, p) in old {
                        g.offsets.remove(&(t.clone(), p));
                        tracing::info!(group = %g.id, topic = %t, partition = p, "committed offset expired");
                        records.push((GroupKey::Offset { group: g.id.clone(), topic: t, partition: p }.encode(), None));
                    }
                }
                if !records.is_empty() {
                    writes.push((partition_for(&g.id, self.config.offsets_topic_partitions), records));
                }
            }
        }
        for (partition, records) in writes {
            if let Err(e) = log.append(partition, records).await {
                tracing::warn!(partition, error = ?e, "group state write failed");
            }
        }
    }
}
