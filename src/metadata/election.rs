//! The controller's partition decisions as records, in the spirit of KRaft's
//! `ReplicationControlManager` and `PartitionChangeBuilder`: fencing a broker takes it out of
//! ISRs and moves its leaderships, unfencing gives leaderless partitions their leader back, and a
//! leader's AlterPartition changes an ISR.
//!
//! Rules every change here keeps:
//! - an ISR never becomes empty: its last member stays, fenced or not, because it may be the only
//!   copy of acknowledged writes (KIP-966's point: with `unclean.leader.election.enable=false`
//!   the partition waits, leaderless, for that broker to come back);
//! - a leader is elected from the ISR, among unfenced brokers, in replica (preferred) order;
//! - only when no ISR member may lead and the topic's `unclean.leader.election.enable` is true
//!   (or an ElectLeaders of the UNCLEAN type asks) is the first unfenced replica outside the ISR
//!   elected, and the ISR becomes that replica alone: records only it had are lost (Kafka's
//!   `Election.UNCLEAN`);
//! - a leader change bumps `leader_epoch`; every change bumps `partition_epoch`.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::image::partition_record;
use super::records::{BrokerFenceRecord, MetadataRecord};
use super::{ClusterSnapshot, MetadataError, PartitionMeta, TopicMeta};
use crate::config::unclean_leader_election_enabled;

/// No leader: the partition is offline.
pub const NO_LEADER: i32 = -1;

/// The first replica, in preferred order, that is in `isr` and `eligible`; [`NO_LEADER`] if none.
pub fn elect_leader(replicas: &[i32], isr: &[i32], eligible: impl Fn(i32) -> bool) -> i32 {
    replicas.iter().copied().find(|r| isr.contains(r) && eligible(*r)).unwrap_or(NO_LEADER)
}

/// The outcome of an election that may leave the ISR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elected {
    /// The new leader ([`NO_LEADER`]: none may lead).
    pub leader: i32,
    /// The ISR with it: unchanged after a clean election, the leader alone after an unclean one.
    pub isr: Vec<i32>,
}

/// Kafka's `electAnyLeader`: the first eligible ISR member in replica order; failing that, when
/// `unclean`, the first eligible replica outside the ISR, which becomes the ISR alone (what only
/// the old ISR had is lost); failing that, no leader and the ISR as it was.
pub fn elect_any_leader(replicas: &[i32], isr: &[i32], unclean: bool, eligible: impl Fn(i32) -> bool) -> Elected {
    let clean = elect_leader(replicas, isr, &eligible);
    if clean != NO_LEADER || !unclean {
        return Elected { leader: clean, isr: isr.to_vec() };
    }
    match replicas.iter().copied().find(|r| eligible(*r)) {
        Some(leader) => Elected { leader, isr: vec![leader] },
        None => Elected { leader: NO_LEADER, isr: isr.to_vec() },
    }
}

/// Logs an unclean election, once per partition it changes: it can lose acknowledged records.
fn log_if_unclean(topic: &TopicMeta, index: usize, p: &PartitionMeta, elected: &Elected, cause: &str) {
    if elected.leader != NO_LEADER && !p.isr.contains(&elected.leader) {
        tracing::warn!(topic = %topic.name, partition = index, leader = elected.leader, old_isr = ?p.isr, cause, "unclean leader election");
    }
}

/// The record for `p` with a new ISR and leader, or `None` when neither changes.
fn change(topic: &TopicMeta, index: usize, p: &PartitionMeta, isr: Vec<i32>, leader: i32) -> Option<MetadataRecord> {
    if isr == p.isr && leader == p.leader {
        return None;
    }
    let mut record = partition_record(topic, index, p);
    if leader != p.leader {
        record.leader_epoch += 1;
    }
    record.leader = leader;
    record.isr = isr;
    record.partition_epoch += 1;
    Some(MetadataRecord::Partition(record))
}

/// The partition changes that fencing `broker_id` makes (without the fence record itself): out
/// of every ISR it is in unless it is the last member, and each partition it led gets the next
/// unfenced ISR member as leader, or, where the topic allows unclean elections, the first
/// unfenced replica outside the ISR, or none. `defaults`: the broker's topic config defaults.
pub fn fence_partition_changes(current: &ClusterSnapshot, broker_id: i32, defaults: &BTreeMap<String, String>) -> Vec<MetadataRecord> {
    let eligible = |r: i32| r != broker_id && current.is_unfenced(r);
    let mut out = Vec::new();
    for topic in current.topics.values() {
        let unclean = unclean_leader_election_enabled(defaults, &topic.configs);
        for (index, p) in topic.partitions.iter().enumerate() {
            if !p.isr.contains(&broker_id) && p.leader != broker_id {
                continue;
            }
            let mut isr = p.isr.clone();
            if isr.len() > 1 {
                isr.retain(|r| *r != broker_id);
            }
            let elected = if p.leader == broker_id || p.leader == NO_LEADER {
                elect_any_leader(&p.replicas, &isr, unclean, eligible)
            } else {
                Elected { leader: p.leader, isr }
            };
            log_if_unclean(topic, index, p, &elected, "fence");
            out.extend(change(topic, index, p, elected.isr, elected.leader));
        }
    }
    out
}

/// Records of FenceBroker: the fence record and its partition changes; nothing when the broker
/// is fenced already (its partitions were changed when it was fenced).
pub fn fence_broker(current: &ClusterSnapshot, broker_id: i32, defaults: &BTreeMap<String, String>) -> Result<Vec<MetadataRecord>, MetadataError> {
    if !current.brokers.contains_key(&broker_id) {
        return Err(MetadataError::UnknownBroker { broker_id });
    }
    if current.fenced.contains(&broker_id) {
        return Ok(Vec::new());
    }
    let mut records = vec![MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id, fenced: true })];
    records.extend(fence_partition_changes(current, broker_id, defaults));
    Ok(records)
}

/// The partition changes that unfencing `broker_id` makes (without the unfence record): every
/// leaderless partition elects a leader again, now that it may lead: from the ISR, or, where the
/// topic allows unclean elections, from outside it (Kafka's `handleBrokerUnfenced`).
pub fn unfence_partition_changes(current: &ClusterSnapshot, broker_id: i32, defaults: &BTreeMap<String, String>) -> Vec<MetadataRecord> {
    let eligible = |r: i32| r == broker_id || current.is_unfenced(r);
    let mut out = Vec::new();
    for topic in current.topics.values() {
        let unclean = unclean_leader_election_enabled(defaults, &topic.configs);
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.leader == NO_LEADER {
                let elected = elect_any_leader(&p.replicas, &p.isr, unclean, eligible);
                log_if_unclean(topic, index, p, &elected, "unfence");
                out.extend(change(topic, index, p, elected.isr, elected.leader));
            }
        }
    }
    out
}

/// The elections of a topic whose `unclean.leader.election.enable` is (about to be) true: each
/// leaderless partition gets the first unfenced ISR member as leader, else the first unfenced
/// replica (Kafka's controller runs these for leaderless partitions whose topic allows them).
/// The caller has checked the config.
pub fn unclean_elections_for_topic(current: &ClusterSnapshot, topic: &TopicMeta) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for (index, p) in topic.partitions.iter().enumerate() {
        if p.leader == NO_LEADER {
            let elected = elect_any_leader(&p.replicas, &p.isr, true, |r| current.is_unfenced(r));
            log_if_unclean(topic, index, p, &elected, "config");
            out.extend(change(topic, index, p, elected.isr, elected.leader));
        }
    }
    out
}

/// Records of UnfenceBroker: the unfence record (when it is fenced) and its partition changes.
pub fn unfence_broker(current: &ClusterSnapshot, broker_id: i32, defaults: &BTreeMap<String, String>) -> Result<Vec<MetadataRecord>, MetadataError> {
    if !current.brokers.contains_key(&broker_id) {
        return Err(MetadataError::UnknownBroker { broker_id });
    }
    let mut records = Vec::new();
    if current.fenced.contains(&broker_id) {
        records.push(MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id, fenced: false }));
    }
    records.extend(unfence_partition_changes(current, broker_id, defaults));
    Ok(records)
}

/// What a partition leader asks in AlterPartition (one partition of Kafka's request).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionRequest {
    /// The topic's id.
    pub topic_id: Uuid,
    /// Partition index.
    pub partition: i32,
    /// The sender, which must be the leader.
    pub leader_id: i32,
    /// The leader epoch the sender leads in.
    pub leader_epoch: i32,
    /// The partition epoch the sender last saw.
    pub partition_epoch: i32,
    /// The ISR the leader proposes.
    pub new_isr: Vec<i32>,
}

/// Checks an AlterPartition against the partition's state, in Kafka's order, and returns the
/// topic's name and the record of the new ISR (`None`: the ISR is already that).
pub fn alter_partition(
    current: &ClusterSnapshot,
    req: &AlterPartitionRequest,
) -> Result<(String, Option<MetadataRecord>), MetadataError> {
    let topic = current.topic_by_id(req.topic_id).ok_or(MetadataError::UnknownTopicId { id: req.topic_id })?;
    let unknown = || MetadataError::UnknownPartition { topic: topic.name.clone(), partition: req.partition };
    let index = usize::try_from(req.partition).map_err(|_| unknown())?;
    let p = topic.partitions.get(index).ok_or_else(unknown)?;
    if req.leader_epoch != p.leader_epoch {
        return Err(MetadataError::FencedLeaderEpoch { current: p.leader_epoch, requested: req.leader_epoch });
    }
    if req.leader_id != p.leader {
        return Err(MetadataError::NotLeader { broker_id: req.leader_id, leader: p.leader });
    }
    if req.partition_epoch != p.partition_epoch {
        return Err(MetadataError::InvalidUpdateVersion { current: p.partition_epoch, requested: req.partition_epoch });
    }
    for (i, r) in req.new_isr.iter().enumerate() {
        if req.new_isr[..i].contains(r) {
            return Err(MetadataError::InvalidRequest { reason: format!("the proposed ISR names broker {r} twice") });
        }
    }
    if !req.new_isr.contains(&p.leader) {
        return Err(MetadataError::InvalidRequest {
            reason: format!("the proposed ISR {:?} does not hold the leader {}", req.new_isr, p.leader),
        });
    }
    for &r in &req.new_isr {
        let reason = if !p.replicas.contains(&r) {
            "it holds no replica of the partition"
        } else if !current.is_unfenced(r) {
            "it is fenced"
        } else {
            continue;
        };
        return Err(MetadataError::IneligibleReplica { broker_id: r, reason: reason.into() });
    }
    let mut record = change(topic, index, p, req.new_isr.clone(), p.leader);
    // The ISR change that brings a reassignment's last target replica in sync completes it
    // (KIP-455): one record, so no state between the two is ever published.
    if let Some(MetadataRecord::Partition(r)) = &mut record
        && super::reassignment::complete_if_in_sync(current, r)
    {
        super::reassignment::after_completion(p, r);
    }
    Ok((topic.name.clone(), record))
}
