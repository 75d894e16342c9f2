//! Unit tests: the per-broker delta, [`partition_changes`], on RF=3 clusters.

use std::collections::BTreeMap;

use super::delta::{PartitionChange, partition_changes};
use super::image::apply;
use super::records::{MetadataRecord, PartitionRecord};
use super::tests_cluster::{Cluster, create_rf};
use super::*;
use crate::types::TopicPartition;

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new("t", partition)
}

/// A cluster of brokers 1..=3 with topic `t`: one partition, replicas [1, 2, 3], leader 1.
fn rf3() -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.run(MetadataMutation::CreateTopic {
        name: "t".into(),
        partitions: -1,
        configs: BTreeMap::new(),
        validate_only: false,
        assignment: Some(vec![vec![1, 2, 3]]),
        replication_factor: -1,
    })
    .unwrap();
    c
}

#[test]
fn new_replicas_are_created_only_where_they_are_placed() {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    let before = c.snap.clone();
    c.run(create_rf("t", 4, 2)).unwrap();
    for node in 1..=4 {
        let changes = partition_changes(&before, &c.snap, node);
        let mine: Vec<i32> =
            (0..4).filter(|i| c.snap.topics["t"].partitions[*i as usize].replicas.contains(&node)).collect();
        assert_eq!(changes.len(), mine.len(), "node {node}: {changes:?}");
        for (change, i) in changes.iter().zip(&mine) {
            let p = c.p("t", *i);
            let expected = PartitionChange::Created {
                tp: tp(*i),
                topic_id: c.snap.topics["t"].id,
                owner: p.owner,
                leader: p.leader,
                leader_epoch: 0,
                partition_epoch: 0,
                isr: p.isr.clone(),
                replicas: p.replicas.clone(),
            };
            assert_eq!(change, &expected);
        }
    }
    assert!(partition_changes(&c.snap, &c.snap, 1).is_empty(), "no change, nothing to do");
}

#[test]
fn a_fenced_leader_hands_over_and_every_replica_hears_its_part() {
    let mut c = rf3();
    let before = c.snap.clone();
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(
        partition_changes(&before, &c.snap, 2),
        vec![PartitionChange::BecameLeader { tp: tp(0), leader_epoch: 1, partition_epoch: 1, isr: vec![2, 3], replicas: vec![1, 2, 3] }]
    );
    let follow = vec![PartitionChange::BecameFollower { tp: tp(0), leader: 2, leader_epoch: 1 }];
    assert_eq!(partition_changes(&before, &c.snap, 3), follow);
    assert_eq!(partition_changes(&before, &c.snap, 1), follow, "the old leader steps down");
    assert!(partition_changes(&before, &c.snap, 4).is_empty());

    // Then the new leader's ISR shrinks too: only the leader hears of it.
    let before = c.snap.clone();
    c.run(MetadataMutation::FenceBroker { broker_id: 3 }).unwrap();
    assert_eq!(
        partition_changes(&before, &c.snap, 2),
        vec![PartitionChange::IsrChanged { tp: tp(0), isr: vec![2], replicas: vec![1, 2, 3], partition_epoch: 2 }]
    );
    assert!(partition_changes(&before, &c.snap, 3).is_empty());
    assert!(partition_changes(&before, &c.snap, 1).is_empty());

    // The last member goes: offline, and everyone stops following.
    let before = c.snap.clone();
    c.run(MetadataMutation::FenceBroker { broker_id: 2 }).unwrap();
    let offline = vec![PartitionChange::BecameFollower { tp: tp(0), leader: -1, leader_epoch: 2 }];
    for node in 1..=3 {
        assert_eq!(partition_changes(&before, &c.snap, node), offline, "node {node}");
    }
    // It comes back and leads again.
    let before = c.snap.clone();
    c.run(MetadataMutation::UnfenceBroker { broker_id: 2 }).unwrap();
    assert!(matches!(
        partition_changes(&before, &c.snap, 2).as_slice(),
        [PartitionChange::BecameLeader { leader_epoch: 3, partition_epoch: 4, .. }]
    ));
    assert!(matches!(partition_changes(&before, &c.snap, 1).as_slice(), [PartitionChange::BecameFollower { leader: 2, leader_epoch: 3, .. }]));
}

#[test]
fn an_alter_partition_reaches_the_leader_only() {
    let mut c = rf3();
    let before = c.snap.clone();
    c.alter_isr("t", 0, vec![1, 2]).unwrap();
    assert_eq!(
        partition_changes(&before, &c.snap, 1),
        vec![PartitionChange::IsrChanged { tp: tp(0), isr: vec![1, 2], replicas: vec![1, 2, 3], partition_epoch: 1 }]
    );
    assert!(partition_changes(&before, &c.snap, 2).is_empty());
    assert!(partition_changes(&before, &c.snap, 3).is_empty());
}

#[test]
fn deleted_recreated_and_moved_replicas_are_removed_first() {
    let mut c = rf3();
    let old_id = c.snap.topics["t"].id;
    let before = c.snap.clone();
    c.run(MetadataMutation::DeleteTopic { name: "t".into() }).unwrap();
    for node in 1..=3 {
        assert_eq!(partition_changes(&before, &c.snap, node), vec![PartitionChange::Removed { tp: tp(0), topic_id: old_id }]);
    }
    assert!(partition_changes(&before, &c.snap, 4).is_empty());

    // Deleted and created again under the name, in one step: the old log goes, then a new one.
    c.run(create_rf("t", 1, 3)).unwrap();
    let changes = partition_changes(&before, &c.snap, 2);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0], PartitionChange::Removed { tp: tp(0), topic_id: old_id });
    assert!(matches!(&changes[1], PartitionChange::Created { topic_id, .. } if *topic_id == c.snap.topics["t"].id));

    // A replica moves from broker 1 to broker 4.
    let mut c = rf3();
    c.run(MetadataMutation::RegisterBroker(super::tests_cluster::registration(4))).unwrap();
    let before = c.snap.clone();
    let topic_id = c.snap.topics["t"].id;
    let p = c.p("t", 0);
    let moved = MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition: 0,
        replicas: vec![4, 2, 3],
        isr: vec![2, 3],
        leader: 2,
        leader_epoch: 1,
        partition_epoch: 1,
        owner_shard: p.owner,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    });
    let after = apply(&before, &moved).unwrap();
    assert_eq!(partition_changes(&before, &after, 1), vec![PartitionChange::Removed { tp: tp(0), topic_id }]);
    assert!(matches!(partition_changes(&before, &after, 4).as_slice(), [PartitionChange::Created { leader: 2, leader_epoch: 1, .. }]));
    assert!(matches!(partition_changes(&before, &after, 2).as_slice(), [PartitionChange::BecameLeader { leader_epoch: 1, .. }]));
}

#[test]
fn a_config_change_reaches_the_brokers_holding_the_topic() {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.run(create_rf("t", 1, 3)).unwrap();
    let holders = c.p("t", 0).replicas;
    let before = c.snap.clone();
    c.run(MetadataMutation::AlterConfigs {
        name: "t".into(),
        changes: vec![("retention.ms".into(), Some("1000".into()))],
        incremental: true,
        validate_only: false,
    })
    .unwrap();
    let topic_id = c.snap.topics["t"].id;
    for node in 1..=4 {
        let expected = if holders.contains(&node) {
            vec![PartitionChange::ConfigChanged { topic: "t".into(), topic_id }]
        } else {
            Vec::new()
        };
        assert_eq!(partition_changes(&before, &c.snap, node), expected, "node {node}");
    }
}
