//! The admin surface's partition decisions, planned on the active controller: preferred and
//! unclean leader election, and KIP-455 reassignments, in the spirit of KRaft's
//! `ReplicationControlManager.electLeaders` / `alterPartitionReassignments` and its
//! `PartitionReassignmentReplicas` / `PartitionReassignmentRevert`.
//!
//! A reassignment of replicas `R` to a target `T` goes through two partition records:
//!
//! ```text
//!  start:     replicas = T ++ (R \ T), adding = T \ R, removing = R \ T    (leader, ISR as they were)
//!             ─► the adding brokers get Created and follow the leader
//!  complete:  (an AlterPartition whose ISR holds all of T) replicas = T, ISR = ISR \ removing,
//!             adding = removing = []; a leader outside T gives way to the first of T in the ISR
//!             ─► the removing brokers get Removed (their logs deleted)
//!  cancel:    replicas = R, ISR = ISR \ adding, adding = removing = []
//! ```
//!
//! A change that removes a replica or moves leadership bumps the leader epoch (as Kafka does), so
//! a removed replica's fetches are fenced; every change bumps the partition epoch.

use std::collections::BTreeMap;

use super::election::{NO_LEADER, elect_any_leader, elect_leader};
use super::image::partition_record;
use super::records::{MetadataRecord, PartitionRecord};
use super::{ClusterSnapshot, MetadataError, PartitionMeta, TopicMeta};
use crate::config::unclean_leader_election_enabled;

/// A partition by name and index: its topic, index and state, or UNKNOWN_TOPIC_OR_PARTITION.
fn lookup<'a>(current: &'a ClusterSnapshot, topic: &str, partition: i32) -> Result<(&'a TopicMeta, usize, &'a PartitionMeta), MetadataError> {
    let t = current.topics.get(topic).ok_or_else(|| MetadataError::UnknownTopic { name: topic.to_string() })?;
    let unknown = || MetadataError::UnknownPartition { topic: topic.to_string(), partition };
    let index = usize::try_from(partition).map_err(|_| unknown())?;
    let p = t.partitions.get(index).ok_or_else(unknown)?;
    Ok((t, index, p))
}

/// Sets the epochs of `record`, a change of `was`: the partition epoch always moves on, the
/// leader epoch when the leader changed or a replica left.
fn bump_epochs(was: &PartitionMeta, record: &mut PartitionRecord) {
    let replica_left = was.replicas.iter().any(|r| !record.replicas.contains(r));
    record.leader_epoch = was.leader_epoch + i32::from(record.leader != was.leader || replica_left);
    record.partition_epoch = was.partition_epoch + 1;
}

/// ElectLeaders for one partition. `preferred`: make the first replica leader when it is in the
/// ISR and unfenced (ELECTION_NOT_NEEDED when it leads already, PREFERRED_LEADER_NOT_AVAILABLE
/// otherwise). Else Kafka's UNCLEAN type: a leaderless partition gets its first unfenced ISR
/// member, or failing that its first unfenced replica with the ISR that replica alone, whatever
/// the topic's `unclean.leader.election.enable` (Kafka's `electLeader` ignores it for this type);
/// ELECTION_NOT_NEEDED when it has a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica is
/// unfenced. Returns the topic's name and the record.
pub fn elect_leaders(current: &ClusterSnapshot, topic: &str, partition: i32, preferred: bool) -> Result<(String, MetadataRecord), MetadataError> {
    let (t, index, p) = lookup(current, topic, partition)?;
    let (leader, isr) = if preferred {
        let first = p.replicas.first().copied().unwrap_or(NO_LEADER);
        if p.leader == first {
            return Err(MetadataError::ElectionNotNeeded { topic: topic.to_string(), partition });
        }
        if !p.isr.contains(&first) || !current.is_unfenced(first) {
            return Err(MetadataError::PreferredLeaderNotAvailable { topic: topic.to_string(), partition, preferred: first });
        }
        (first, p.isr.clone())
    } else {
        if p.leader != NO_LEADER {
            return Err(MetadataError::ElectionNotNeeded { topic: topic.to_string(), partition });
        }
        let elected = elect_any_leader(&p.replicas, &p.isr, true, |r| current.is_unfenced(r));
        if elected.leader == NO_LEADER {
            return Err(MetadataError::EligibleLeadersNotAvailable { topic: topic.to_string(), partition });
        }
        if !p.isr.contains(&elected.leader) {
            tracing::warn!(topic, partition, leader = elected.leader, old_isr = ?p.isr, cause = "elect_leaders", "unclean leader election");
        }
        (elected.leader, elected.isr)
    };
    let mut record = partition_record(t, index, p);
    record.leader = leader;
    record.isr = isr;
    bump_epochs(p, &mut record);
    Ok((t.name.clone(), MetadataRecord::Partition(record)))
}

/// AlterPartitionReassignments for one partition: `Some(target)` starts (or replaces) a
/// reassignment to `target`, `None` cancels the one in progress. Returns the topic's name and
/// the record (`None`: the partition already has exactly those replicas and nothing moves).
/// `defaults`: the broker's topic config defaults (a cancellation may need an unclean election).
pub fn reassign(
    current: &ClusterSnapshot,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    defaults: &BTreeMap<String, String>,
) -> Result<(String, Option<MetadataRecord>), MetadataError> {
    let (t, index, p) = lookup(current, topic, partition)?;
    if target.is_none() && !p.reassigning() {
        return Err(MetadataError::NoReassignmentInProgress { topic: topic.to_string(), partition });
    }
    if let Some(target) = &target {
        check_target(current, target)?;
    }
    // A new target replaces a reassignment in progress from where it started (Kafka reverts
    // first, then reassigns from the original replicas).
    let mut record = partition_record(t, index, p);
    revert(&mut record);
    let mut unclean = false;
    if record.isr.is_empty() {
        // Only adding replicas are in sync: the original replicas can lead only by an unclean
        // election. A new target is refused then; a cancellation follows Kafka's
        // PartitionReassignmentRevert: the first original replica joins the ISR, and it goes
        // ahead only where the topic allows unclean elections.
        if target.is_some() {
            return Err(MetadataError::EligibleLeadersNotAvailable { topic: topic.to_string(), partition });
        }
        if !unclean_leader_election_enabled(defaults, &t.configs) {
            return Err(MetadataError::InvalidReplicaAssignment {
                reason: format!("Unable to revert partition assignment for {topic}:{partition} because it would require an unclean leader election."),
            });
        }
        record.isr = record.replicas.first().copied().into_iter().collect();
        unclean = true;
    }
    if let Some(target) = target {
        let original = std::mem::take(&mut record.replicas);
        record.adding_replicas = target.iter().copied().filter(|r| !original.contains(r)).collect();
        record.removing_replicas = original.iter().copied().filter(|r| !target.contains(r)).collect();
        record.replicas = target;
        record.replicas.extend(record.removing_replicas.iter().copied());
        // A pure removal (or reorder) whose target is in sync completes at once.
        complete_if_in_sync(current, &mut record);
    }
    if !record.isr.contains(&record.leader) || !current.is_unfenced(record.leader) {
        let elected = elect_any_leader(&record.replicas, &record.isr, unclean, |r| current.is_unfenced(r));
        record.leader = elected.leader;
        record.isr = elected.isr;
    }
    if record.replicas == p.replicas && record.isr == p.isr && record.leader == p.leader && !p.reassigning() {
        return Ok((t.name.clone(), None));
    }
    bump_epochs(p, &mut record);
    Ok((t.name.clone(), Some(MetadataRecord::Partition(record))))
}

/// Takes a reassignment in progress out of `record`: the adding replicas leave the replicas and
/// the ISR, the removing ones stay. A leader among the adding replicas is left for the caller to
/// replace.
fn revert(record: &mut PartitionRecord) {
    let adding = std::mem::take(&mut record.adding_replicas);
    record.removing_replicas.clear();
    record.replicas.retain(|r| !adding.contains(r));
    record.isr.retain(|r| !adding.contains(r));
}

/// Kafka's checks of a reassignment target: non-empty, distinct, registered brokers.
fn check_target(current: &ClusterSnapshot, target: &[i32]) -> Result<(), MetadataError> {
    let invalid = |reason: String| Err(MetadataError::InvalidReplicaAssignment { reason });
    if target.is_empty() {
        return invalid("the target replicas are empty".into());
    }
    for (i, id) in target.iter().enumerate() {
        if target[..i].contains(id) {
            return invalid(format!("the target replicas name broker {id} more than once"));
        }
        if !current.brokers.contains_key(id) {
            return invalid(format!("the target replicas name broker {id}, but no such broker is registered"));
        }
    }
    Ok(())
}

/// Completes the reassignment in progress in `record` when its ISR holds every target replica
/// (Kafka's `maybeCompleteReassignment`): the removing replicas leave the replicas and the ISR,
/// and a leader among them gives way to the first target replica in the ISR that is unfenced.
/// Returns whether it completed. The caller sets the epochs.
pub fn complete_if_in_sync(current: &ClusterSnapshot, record: &mut PartitionRecord) -> bool {
    if record.adding_replicas.is_empty() && record.removing_replicas.is_empty() {
        return false;
    }
    let removing = &record.removing_replicas;
    let target: Vec<i32> = record.replicas.iter().copied().filter(|r| !removing.contains(r)).collect();
    let isr: Vec<i32> = record.isr.iter().copied().filter(|r| !removing.contains(r)).collect();
    if isr.is_empty() || !target.iter().all(|r| isr.contains(r)) {
        return false;
    }
    record.replicas = target;
    record.isr = isr;
    record.adding_replicas.clear();
    record.removing_replicas.clear();
    if !record.isr.contains(&record.leader) {
        record.leader = elect_leader(&record.replicas, &record.isr, |r| current.is_unfenced(r));
    }
    true
}

/// The epochs of an AlterPartition's record after [`complete_if_in_sync`] changed it (see
/// [`bump_epochs`]).
pub(super) fn after_completion(was: &PartitionMeta, record: &mut PartitionRecord) {
    bump_epochs(was, record);
}
