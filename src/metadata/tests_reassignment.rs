//! Unit tests: preferred leader election and KIP-455 reassignments, planned against snapshots of
//! a multi-broker cluster, and what each broker is told to do (pure: plan, apply, delta).

use std::collections::BTreeMap;

use super::delta::{PartitionChange, partition_changes};
use super::image::{apply_all, to_records};
use super::tests_cluster::Cluster;
use super::*;
use crate::types::TopicPartition;

/// Brokers 1..=4 with topic `t`: partition 0 on `replicas` (leader: the first).
fn cluster(replicas: Vec<i32>) -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.run(MetadataMutation::CreateTopic {
        name: "t".into(),
        partitions: -1,
        configs: BTreeMap::new(),
        validate_only: false,
        assignment: Some(vec![replicas]),
        replication_factor: -1,
    })
    .unwrap();
    c
}

fn elect(c: &mut Cluster, preferred: bool) -> Result<Vec<MetadataRecord>, MetadataError> {
    c.run(MetadataMutation::ElectLeader { topic: "t".into(), partition: 0, preferred })
}

fn reassign(c: &mut Cluster, target: Option<Vec<i32>>) -> Result<Vec<MetadataRecord>, MetadataError> {
    c.run(MetadataMutation::ReassignPartition { topic: "t".into(), partition: 0, target })
}

/// (replicas, isr, leader, adding, removing) of partition 0.
fn shape(c: &Cluster) -> (Vec<i32>, Vec<i32>, i32, Vec<i32>, Vec<i32>) {
    let p = c.p("t", 0);
    (p.replicas, p.isr, p.leader, p.adding_replicas, p.removing_replicas)
}

#[test]
fn preferred_election_moves_leadership_back_to_the_first_replica() {
    let mut c = cluster(vec![1, 2, 3]);
    assert!(matches!(elect(&mut c, true), Err(MetadataError::ElectionNotNeeded { partition: 0, .. })));
    // Broker 1 fenced: leadership moves to 2; 1 is out of the ISR, so it cannot be preferred yet.
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(c.p("t", 0).leader, 2);
    assert!(matches!(elect(&mut c, true), Err(MetadataError::PreferredLeaderNotAvailable { preferred: 1, .. })));
    // Back, unfenced and in sync again: the preferred election makes it leader, in a new epoch.
    c.run(MetadataMutation::UnfenceBroker { broker_id: 1 }).unwrap();
    assert!(matches!(elect(&mut c, true), Err(MetadataError::PreferredLeaderNotAvailable { .. })), "unfenced, not in the ISR");
    c.alter_isr("t", 0, vec![2, 3, 1]).unwrap();
    let before = c.p("t", 0);
    let records = elect(&mut c, true).unwrap();
    assert_eq!(records.len(), 1);
    let after = c.p("t", 0);
    assert_eq!((after.leader, after.leader_epoch, after.partition_epoch), (1, before.leader_epoch + 1, before.partition_epoch + 1));
    assert_eq!(after.isr, before.isr, "the ISR is untouched");
    assert!(matches!(elect(&mut c, true), Err(MetadataError::ElectionNotNeeded { .. })));
}

#[test]
fn unclean_election_type_elects_outside_the_isr() {
    let mut c = cluster(vec![1, 2]);
    assert!(matches!(elect(&mut c, false), Err(MetadataError::ElectionNotNeeded { .. })), "a leader is there");
    c.run(MetadataMutation::FenceBroker { broker_id: 2 }).unwrap();
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!((c.p("t", 0).leader, c.p("t", 0).isr.clone()), (-1, vec![1]), "the last ISR member stays");
    assert!(matches!(elect(&mut c, false), Err(MetadataError::EligibleLeadersNotAvailable { .. })), "no replica is unfenced");
    // Broker 2 is alive but out of the ISR: only an unclean election picks it (the topic's
    // config is false by default; the UNCLEAN type elects regardless, as in Kafka).
    c.run(MetadataMutation::UnfenceBroker { broker_id: 2 }).unwrap();
    assert_eq!(c.p("t", 0).leader, -1);
    elect(&mut c, false).unwrap();
    assert_eq!((c.p("t", 0).leader, c.p("t", 0).isr), (2, vec![2]));
}

#[test]
fn unknown_partitions_are_refused() {
    let mut c = cluster(vec![1, 2]);
    let unknown = c.run(MetadataMutation::ElectLeader { topic: "t".into(), partition: 5, preferred: true });
    assert!(matches!(unknown, Err(MetadataError::UnknownPartition { partition: 5, .. })));
    let unknown = c.run(MetadataMutation::ReassignPartition { topic: "nope".into(), partition: 0, target: Some(vec![1]) });
    assert!(matches!(unknown, Err(MetadataError::UnknownTopic { .. })));
}

#[test]
fn a_reassignment_adds_then_completes_when_the_target_is_in_sync() {
    let mut c = cluster(vec![1, 2]);
    let before = c.snap.clone();
    let p0 = c.p("t", 0);
    reassign(&mut c, Some(vec![2, 3])).unwrap();
    assert_eq!(shape(&c), (vec![2, 3, 1], vec![1, 2], 1, vec![3], vec![1]));
    let started = c.p("t", 0);
    assert_eq!((started.leader_epoch, started.partition_epoch), (p0.leader_epoch, p0.partition_epoch + 1), "no replica left yet");
    // Broker 3 opens a log and follows 1; the leader tracks the new replica.
    let tp = TopicPartition::new("t", 0);
    assert!(matches!(partition_changes(&before, &c.snap, 3).as_slice(), [PartitionChange::Created { leader: 1, .. }]));
    assert!(
        matches!(partition_changes(&before, &c.snap, 1).as_slice(), [PartitionChange::IsrChanged { replicas, .. }] if replicas == &vec![2, 3, 1])
    );
    assert!(partition_changes(&before, &c.snap, 2).is_empty());

    // The leader's AlterPartition that brings 3 in sync completes it: 1 leaves, 2 leads.
    let mid = c.snap.clone();
    c.alter_isr("t", 0, vec![1, 2, 3]).unwrap();
    assert_eq!(shape(&c), (vec![2, 3], vec![2, 3], 2, vec![], vec![]));
    let done = c.p("t", 0);
    assert_eq!((done.leader_epoch, done.partition_epoch), (started.leader_epoch + 1, started.partition_epoch + 1));
    assert_eq!(partition_changes(&mid, &c.snap, 1), vec![PartitionChange::Removed { tp: tp.clone(), topic_id: c.snap.topics["t"].id }]);
    assert!(matches!(partition_changes(&mid, &c.snap, 2).as_slice(), [PartitionChange::BecameLeader { .. }]));
    assert!(matches!(partition_changes(&mid, &c.snap, 3).as_slice(), [PartitionChange::BecameFollower { leader: 2, .. }]));
    assert!(matches!(reassign(&mut c, None), Err(MetadataError::NoReassignmentInProgress { .. })));
}

#[test]
fn an_isr_change_short_of_the_target_does_not_complete() {
    let mut c = cluster(vec![1, 2]);
    reassign(&mut c, Some(vec![3, 4])).unwrap();
    assert_eq!(shape(&c), (vec![3, 4, 1, 2], vec![1, 2], 1, vec![3, 4], vec![1, 2]));
    c.alter_isr("t", 0, vec![1, 2, 3]).unwrap();
    assert_eq!(shape(&c), (vec![3, 4, 1, 2], vec![1, 2, 3], 1, vec![3, 4], vec![1, 2]), "4 is not in sync yet");
    c.alter_isr("t", 0, vec![1, 2, 3, 4]).unwrap();
    assert_eq!(shape(&c), (vec![3, 4], vec![3, 4], 3, vec![], vec![]));
}

#[test]
fn cancelling_reverts_and_a_new_target_replaces_the_old_one() {
    let mut c = cluster(vec![1, 2]);
    let p0 = c.p("t", 0);
    reassign(&mut c, Some(vec![2, 3])).unwrap();
    // A new target starts from the original replicas, not from the reassignment's union.
    reassign(&mut c, Some(vec![1, 4])).unwrap();
    assert_eq!(shape(&c), (vec![1, 4, 2], vec![1, 2], 1, vec![4], vec![2]));
    reassign(&mut c, None).unwrap();
    assert_eq!(shape(&c), (vec![1, 2], vec![1, 2], 1, vec![], vec![]));
    // Replicas that leave (3, then 4) are fenced by a new leader epoch each time, as in Kafka.
    assert_eq!(c.p("t", 0).leader_epoch, p0.leader_epoch + 2);

    // An adding replica that joined the ISR leaves it again on cancel.
    reassign(&mut c, Some(vec![3, 4])).unwrap();
    c.alter_isr("t", 0, vec![1, 2, 3]).unwrap();
    reassign(&mut c, None).unwrap();
    assert_eq!(shape(&c), (vec![1, 2], vec![1, 2], 1, vec![], vec![]));

    // A pure addition completes once the new replica is in sync.
    reassign(&mut c, Some(vec![1, 2, 3])).unwrap();
    assert_eq!(shape(&c), (vec![1, 2, 3], vec![1, 2], 1, vec![3], vec![]));
    c.alter_isr("t", 0, vec![1, 2, 3]).unwrap();
    assert_eq!(shape(&c), (vec![1, 2, 3], vec![1, 2, 3], 1, vec![], vec![]));
}

#[test]
fn a_removal_whose_target_is_in_sync_completes_at_once() {
    let mut c = cluster(vec![1, 2, 3]);
    let p0 = c.p("t", 0);
    let records = reassign(&mut c, Some(vec![2, 3])).unwrap();
    assert_eq!(records.len(), 1, "one record: no intermediate state");
    assert_eq!(shape(&c), (vec![2, 3], vec![2, 3], 2, vec![], vec![]));
    assert_eq!(c.p("t", 0).leader_epoch, p0.leader_epoch + 1);
    // The same replicas again: nothing to do.
    assert!(reassign(&mut c, Some(vec![2, 3])).unwrap().is_empty());
}

#[test]
fn reassignment_targets_are_checked() {
    let mut c = cluster(vec![1, 2]);
    for bad in [vec![], vec![2, 2], vec![2, 9]] {
        let r = reassign(&mut c, Some(bad.clone()));
        assert!(matches!(r, Err(MetadataError::InvalidReplicaAssignment { .. })), "{bad:?}: {r:?}");
    }
    assert!(matches!(reassign(&mut c, None), Err(MetadataError::NoReassignmentInProgress { .. })));
}

#[test]
fn a_reassignment_in_progress_round_trips_through_a_checkpoint_and_old_records_read() {
    let mut c = cluster(vec![1, 2]);
    reassign(&mut c, Some(vec![2, 3])).unwrap();
    let records = to_records(&c.snap);
    let back = apply_all(&ClusterSnapshot::empty("c"), &records).unwrap();
    assert_eq!(back, c.snap);
    let json = serde_json::to_string(&records.iter().find(|r| matches!(r, MetadataRecord::Partition(_))).unwrap()).unwrap();
    assert!(json.contains("\"adding_replicas\":[3]") && json.contains("\"removing_replicas\":[1]"), "{json}");
    // A record written before reassignments existed has neither field.
    let old = json.replace(",\"adding_replicas\":[3]", "").replace(",\"removing_replicas\":[1]", "");
    let MetadataRecord::Partition(p) = serde_json::from_str::<MetadataRecord>(&old).unwrap() else { panic!("not a partition") };
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
}
