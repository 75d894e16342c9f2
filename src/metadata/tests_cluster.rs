//! Unit tests: broker fencing, leader election, AlterPartition and replica placement, planned
//! against snapshots of a multi-broker cluster (pure: plan, then apply, no I/O).

use std::collections::BTreeMap;

use uuid::Uuid;

use super::election::{NO_LEADER, elect_leader};
use super::image::{apply, apply_all, to_records};
use super::mutation::{PlanContext, Report, plan};
use super::placement::stripe;
use super::records::*;
use super::*;

/// A cluster's metadata as the active controller (node 1 of `voters`) plans it.
pub(super) struct Cluster {
    pub snap: ClusterSnapshot,
    pub voters: usize,
    pub node_id: i32,
    pub default_rf: i16,
    /// The broker's topic config defaults the controller plans with.
    pub defaults: BTreeMap<String, String>,
}

pub(super) fn registration(broker_id: i32) -> BrokerRegistration {
    BrokerRegistration { broker_id, incarnation_id: Uuid::new_v4(), endpoints: Vec::new(), rack: None }
}

pub(super) fn create_rf(name: &str, partitions: i32, replication_factor: i16) -> MetadataMutation {
    MetadataMutation::CreateTopic {
        name: name.into(),
        partitions,
        configs: BTreeMap::new(),
        validate_only: false,
        assignment: None,
        replication_factor,
    }
}

impl Cluster {
    /// Brokers `ids` registered and unfenced, on a quorum of three voters.
    pub fn new(ids: &[i32]) -> Self {
        let mut c = Cluster { snap: ClusterSnapshot::empty("c"), voters: 3, node_id: 1, default_rf: 3, defaults: BTreeMap::new() };
        for &id in ids {
            c.run(MetadataMutation::RegisterBroker(registration(id))).unwrap();
            c.run(MetadataMutation::UnfenceBroker { broker_id: id }).unwrap();
        }
        c
    }

    /// Plans `m`, applies its records, and returns them.
    pub fn run(&mut self, m: MetadataMutation) -> Result<Vec<MetadataRecord>, MetadataError> {
        let ctx = PlanContext {
            shards: 2,
            node_id: self.node_id,
            defaults: &self.defaults,
            producer_ids_left: false,
            voters: self.voters,
            default_replication_factor: self.default_rf,
        };
        let plan = plan(&self.snap, m, &ctx)?;
        self.snap = apply_all(&self.snap, &plan.records).unwrap();
        Ok(plan.records)
    }

    pub fn p(&self, topic: &str, partition: i32) -> PartitionMeta {
        self.snap.partition(topic, partition).unwrap().clone()
    }

    /// Sets a partition's ISR through AlterPartition from its leader, in its current epochs.
    pub fn alter_isr(&mut self, topic: &str, partition: i32, new_isr: Vec<i32>) -> Result<Vec<MetadataRecord>, MetadataError> {
        let p = self.p(topic, partition);
        let topic_id = self.snap.topics[topic].id;
        self.run(MetadataMutation::AlterPartition {
            topic_id,
            partition,
            leader_id: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr,
        })
    }
}

/// (leader, leader_epoch, partition_epoch, isr) of a partition.
fn state(p: &PartitionMeta) -> (i32, i32, i32, Vec<i32>) {
    (p.leader, p.leader_epoch, p.partition_epoch, p.isr.clone())
}

#[test]
fn a_registration_fences_in_a_cluster_and_unfences_on_a_single_node() {
    let mut c = Cluster::new(&[1, 2]);
    c.run(MetadataMutation::RegisterBroker(registration(3))).unwrap();
    assert!(c.snap.brokers.contains_key(&3) && !c.snap.is_unfenced(3), "a new registration is fenced");
    assert_eq!(c.snap.unfenced_brokers(), vec![1, 2]);
    let records = c.run(MetadataMutation::UnfenceBroker { broker_id: 3 }).unwrap();
    assert_eq!(records, vec![MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id: 3, fenced: false })]);
    assert!(c.snap.is_unfenced(3));
    assert!(matches!(c.run(MetadataMutation::UnfenceBroker { broker_id: 9 }), Err(MetadataError::UnknownBroker { broker_id: 9 })));

    // One voter, this broker alone: registering leaves it unfenced, in the same frame.
    let mut single = Cluster { voters: 1, node_id: 7, ..Cluster::new(&[]) };
    let records = single.run(MetadataMutation::RegisterBroker(registration(7))).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1], MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id: 7, fenced: false }));
    assert!(single.snap.is_unfenced(7));
    // Registering again (a restart) keeps it unfenced.
    single.run(MetadataMutation::RegisterBroker(registration(7))).unwrap();
    assert!(single.snap.is_unfenced(7));
    // One voter but another broker registered is a cluster: fenced.
    single.run(MetadataMutation::RegisterBroker(registration(8))).unwrap();
    assert!(!single.snap.is_unfenced(8));
}

#[test]
fn fence_records_apply_only_to_registered_brokers_and_checkpoints_keep_them() {
    let fence = |broker_id, fenced| MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id, fenced });
    let s = ClusterSnapshot::empty("c");
    assert!(matches!(apply(&s, &fence(1, false)), Err(MetadataError::UnknownBroker { broker_id: 1 })));
    let s = apply(&s, &MetadataRecord::RegisterBroker(registration(1))).unwrap();
    assert!(s.fenced.contains(&1));
    let s = apply(&s, &fence(1, false)).unwrap();
    assert!(s.is_unfenced(1));
    let s = apply(&s, &fence(1, true)).unwrap();
    assert!(!s.is_unfenced(1));

    // A checkpoint of fenced and unfenced brokers and a leaderless partition reads back equal.
    let mut c = Cluster::new(&[1, 2, 3]);
    c.run(create_rf("t", 3, 2)).unwrap();
    c.run(MetadataMutation::FenceBroker { broker_id: 2 }).unwrap();
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert!(c.snap.topics["t"].partitions.iter().any(|p| p.leader == NO_LEADER), "some partition had only 1 and 2");
    let rebuilt = apply_all(&ClusterSnapshot::empty("c"), &to_records(&c.snap)).unwrap();
    assert_eq!(rebuilt, c.snap);
    assert_eq!(rebuilt.fenced.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
}

#[test]
fn the_striped_assignment_spreads_leaders_and_followers() {
    assert_eq!(stripe(&[1, 2, 3], 0, 4, 2, 0), vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 3]]);
    assert_eq!(stripe(&[1, 2, 3], 0, 2, 3, 1), vec![vec![2, 1, 3], vec![3, 2, 1]]);
    assert_eq!(stripe(&[5], 0, 3, 1, 0), vec![vec![5], vec![5], vec![5]]);

    let mut c = Cluster::new(&[1, 2, 3]);
    c.run(create_rf("a", 6, 3)).unwrap();
    let parts = &c.snap.topics["a"].partitions;
    let mut leads = BTreeMap::new();
    for p in parts {
        let mut distinct = p.replicas.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct, vec![1, 2, 3], "three distinct replicas: {:?}", p.replicas);
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch), (p.replicas[0], p.replicas.clone(), 0, 0));
        *leads.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leads, BTreeMap::from([(1, 2), (2, 2), (3, 2)]), "leaders spread evenly");

    // -1: the topic's factor for CreatePartitions; the striping goes on from partition 0's leader.
    c.run(MetadataMutation::CreatePartitions { name: "a".into(), count: 9, validate_only: false, replication_factor: -1 }).unwrap();
    let parts = &c.snap.topics["a"].partitions;
    assert!(parts.iter().all(|p| p.replicas.len() == 3));
    for broker in [1, 2, 3] {
        assert_eq!(parts.iter().filter(|p| p.leader == broker).count(), 3, "broker {broker} leads 3 of 9");
    }

    // Single-partition topics start at a rotating broker.
    let leaders: Vec<i32> = ["b", "c", "d"]
        .iter()
        .map(|t| {
            c.run(create_rf(t, 1, 1)).unwrap();
            c.p(t, 0).leader
        })
        .collect();
    let mut sorted = leaders.clone();
    sorted.sort();
    assert_eq!(sorted, vec![1, 2, 3], "{leaders:?}");
}

#[test]
fn the_replication_factor_is_checked_against_unfenced_brokers() {
    let mut c = Cluster::new(&[1, 2, 3]);
    for bad in [4, 0, -2] {
        match c.run(create_rf("t", 1, bad)) {
            Err(MetadataError::InvalidReplicationFactor { factor, brokers: 3 }) => assert_eq!(factor, bad),
            other => panic!("RF {bad}: {other:?}"),
        }
    }
    c.default_rf = 2;
    c.run(create_rf("default", 4, -1)).unwrap();
    assert!(c.snap.topics["default"].partitions.iter().all(|p| p.replicas.len() == 2), "-1 is default.replication.factor");

    c.run(MetadataMutation::FenceBroker { broker_id: 3 }).unwrap();
    assert!(matches!(c.run(create_rf("t", 1, 3)), Err(MetadataError::InvalidReplicationFactor { factor: 3, brokers: 2 })));
    c.run(create_rf("t", 4, 2)).unwrap();
    assert!(c.snap.topics["t"].partitions.iter().all(|p| !p.replicas.contains(&3)), "no replica on a fenced broker");
    assert!(!c.snap.topics.contains_key("refused"));
}

#[test]
fn a_manual_assignment_leads_with_its_first_unfenced_replica() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.run(MetadataMutation::FenceBroker { broker_id: 3 }).unwrap();
    let assigned = |name: &str, assignment: Vec<Vec<i32>>| MetadataMutation::CreateTopic {
        name: name.into(),
        partitions: -1,
        configs: BTreeMap::new(),
        validate_only: false,
        assignment: Some(assignment),
        replication_factor: -1,
    };
    c.run(assigned("m", vec![vec![3, 2, 1], vec![1, 3]])).unwrap();
    assert_eq!((c.p("m", 0).leader, c.p("m", 0).isr), (2, vec![2, 1]));
    assert_eq!((c.p("m", 1).leader, c.p("m", 1).isr, c.p("m", 1).replicas), (1, vec![1], vec![1, 3]));
    match c.run(assigned("x", vec![vec![1], vec![3]])) {
        Err(MetadataError::InvalidReplicaAssignment { reason }) => assert!(reason.contains("fenced"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fencing_the_leader_elects_the_next_in_sync_replica_and_bumps_epochs() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.run(create_rf("t", 1, 3)).unwrap();
    let p = c.p("t", 0);
    let [first, second, third] = [p.replicas[0], p.replicas[1], p.replicas[2]];
    assert_eq!(p.leader, first);

    let records = c.run(MetadataMutation::FenceBroker { broker_id: first }).unwrap();
    assert_eq!(records[0], MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id: first, fenced: true }));
    assert_eq!(records.len(), 2, "the fence and one partition change");
    assert_eq!(state(&c.p("t", 0)), (second, 1, 1, vec![second, third]));
    assert!(c.run(MetadataMutation::FenceBroker { broker_id: first }).unwrap().is_empty(), "fenced already: no change");

    // A follower fenced: out of the ISR; the leader and its epoch stay.
    c.run(MetadataMutation::UnfenceBroker { broker_id: first }).unwrap();
    assert_eq!(state(&c.p("t", 0)), (second, 1, 1, vec![second, third]), "unfencing does not rejoin the ISR");
    c.run(MetadataMutation::FenceBroker { broker_id: third }).unwrap();
    assert_eq!(state(&c.p("t", 0)), (second, 1, 2, vec![second]));
    assert!(matches!(c.run(MetadataMutation::FenceBroker { broker_id: 9 }), Err(MetadataError::UnknownBroker { broker_id: 9 })));
}

#[test]
fn election_follows_the_preferred_replica_order_among_unfenced_isr_members() {
    assert_eq!(elect_leader(&[1, 2, 3], &[3, 2, 1], |_| true), 1);
    assert_eq!(elect_leader(&[1, 2, 3], &[3, 2], |_| true), 2);
    assert_eq!(elect_leader(&[1, 2, 3], &[1, 2, 3], |r| r == 3), 3);
    assert_eq!(elect_leader(&[1, 2, 3], &[1, 2], |r| r == 3), NO_LEADER, "never outside the ISR");

    let mut c = Cluster::new(&[1, 2, 3]);
    let assigned = MetadataMutation::CreateTopic {
        name: "t".into(),
        partitions: -1,
        configs: BTreeMap::new(),
        validate_only: false,
        assignment: Some(vec![vec![1, 2, 3]]),
        replication_factor: -1,
    };
    c.run(assigned).unwrap();
    c.alter_isr("t", 0, vec![1, 3, 2]).unwrap();
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(c.p("t", 0).leader, 2, "replica order, not ISR order");
}

#[test]
fn an_isr_never_empties_and_a_leaderless_partition_waits_for_its_last_member() {
    // KIP-966's case: the ISR shrank to the leader alone, then the leader died.
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
    c.alter_isr("t", 0, vec![1]).unwrap();
    assert_eq!(state(&c.p("t", 0)), (1, 0, 1, vec![1]));
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(state(&c.p("t", 0)), (NO_LEADER, 1, 2, vec![1]), "offline, and 1 stays in the ISR");
    // The other replicas come and go: none of them may lead (unclean elections are off by default).
    for id in [2, 3] {
        c.run(MetadataMutation::FenceBroker { broker_id: id }).unwrap();
        c.run(MetadataMutation::UnfenceBroker { broker_id: id }).unwrap();
    }
    assert_eq!(state(&c.p("t", 0)), (NO_LEADER, 1, 2, vec![1]));
    let records = c.run(MetadataMutation::UnfenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(state(&c.p("t", 0)), (1, 2, 3, vec![1]), "the last member leads again, in a new epoch");
}

#[test]
fn a_live_broker_that_registers_again_is_fenced_out_of_its_partitions() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.run(create_rf("t", 3, 3)).unwrap();
    c.run(MetadataMutation::RegisterBroker(registration(2))).unwrap();
    assert!(!c.snap.is_unfenced(2));
    for p in &c.snap.topics["t"].partitions {
        assert!(p.leader != 2 && !p.isr.contains(&2), "{p:?}");
        assert_eq!(p.leader_epoch, i32::from(p.replicas[0] == 2), "{p:?}");
    }
}

#[test]
fn alter_partition_refuses_as_kafka_does() {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.run(MetadataMutation::CreateTopic {
        name: "t".into(),
        partitions: -1,
        configs: BTreeMap::new(),
        validate_only: false,
        assignment: Some(vec![vec![1, 2, 3]]),
        replication_factor: -1,
    })
    .unwrap();
    let topic_id = c.snap.topics["t"].id;
    let alter = |partition, leader_id, leader_epoch, partition_epoch, new_isr: &[i32]| MetadataMutation::AlterPartition {
        topic_id,
        partition,
        leader_id,
        leader_epoch,
        partition_epoch,
        new_isr: new_isr.to_vec(),
    };
    let mut unknown = alter(0, 1, 0, 0, &[1]);
    if let MetadataMutation::AlterPartition { topic_id, .. } = &mut unknown {
        *topic_id = Uuid::new_v4();
    }
    assert!(matches!(c.run(unknown), Err(MetadataError::UnknownTopicId { .. })));
    for partition in [1, -1] {
        assert!(matches!(c.run(alter(partition, 1, 0, 0, &[1])), Err(MetadataError::UnknownPartition { .. })));
    }
    assert!(matches!(c.run(alter(0, 2, 5, 0, &[1])), Err(MetadataError::FencedLeaderEpoch { current: 0, requested: 5 })));
    assert!(matches!(c.run(alter(0, 2, 0, 0, &[1, 2])), Err(MetadataError::NotLeader { broker_id: 2, leader: 1 })));
    assert!(matches!(c.run(alter(0, 1, 0, 3, &[1])), Err(MetadataError::InvalidUpdateVersion { current: 0, requested: 3 })));
    assert!(matches!(c.run(alter(0, 1, 0, 0, &[2, 3])), Err(MetadataError::InvalidRequest { .. })), "without the leader");
    assert!(matches!(c.run(alter(0, 1, 0, 0, &[1, 1])), Err(MetadataError::InvalidRequest { .. })), "a member twice");
    assert!(matches!(c.run(alter(0, 1, 0, 0, &[1, 4])), Err(MetadataError::IneligibleReplica { broker_id: 4, .. })));
    assert!(matches!(c.run(alter(0, 1, 0, 0, &[1, 9])), Err(MetadataError::IneligibleReplica { broker_id: 9, .. })));
    assert_eq!(state(&c.p("t", 0)), (1, 0, 0, vec![1, 2, 3]), "refusals change nothing");

    // Shrink, then expand again: the partition epoch moves, the leader epoch does not.
    assert_eq!(c.run(alter(0, 1, 0, 0, &[1, 2])).unwrap().len(), 1);
    assert_eq!(state(&c.p("t", 0)), (1, 0, 1, vec![1, 2]));
    assert!(matches!(c.run(alter(0, 1, 0, 0, &[1, 2, 3])), Err(MetadataError::InvalidUpdateVersion { current: 1, .. })));
    c.run(MetadataMutation::FenceBroker { broker_id: 3 }).unwrap();
    assert!(matches!(c.run(alter(0, 1, 0, 1, &[1, 2, 3])), Err(MetadataError::IneligibleReplica { broker_id: 3, .. })));
    c.run(MetadataMutation::UnfenceBroker { broker_id: 3 }).unwrap();
    c.run(alter(0, 1, 0, 1, &[1, 2, 3])).unwrap();
    assert_eq!(state(&c.p("t", 0)), (1, 0, 2, vec![1, 2, 3]));
    assert!(c.run(alter(0, 1, 0, 2, &[1, 2, 3])).unwrap().is_empty(), "the same ISR: nothing to write");

    // The outcome reports the topic after the change.
    let ctx = PlanContext {
        shards: 1,
        node_id: 1,
        defaults: &BTreeMap::new(),
        producer_ids_left: false,
        voters: 3,
        default_replication_factor: 1,
    };
    let planned = plan(&c.snap, alter(0, 1, 0, 2, &[1, 3]), &ctx).unwrap();
    assert!(matches!(&planned.report, Report::TopicAfter(name) if name == "t"));
}

#[test]
fn the_new_mutations_cross_nodes_as_serde() {
    let m = MetadataMutation::AlterPartition {
        topic_id: Uuid::new_v4(),
        partition: 2,
        leader_id: 1,
        leader_epoch: 3,
        partition_epoch: 4,
        new_isr: vec![1, 2],
    };
    let back: MetadataMutation = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(format!("{back:?}"), format!("{m:?}"));
    let r = MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id: 2, fenced: true });
    assert_eq!(serde_json::from_str::<MetadataRecord>(&serde_json::to_string(&r).unwrap()).unwrap(), r);
}
