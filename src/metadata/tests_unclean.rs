//! Unit tests: `unclean.leader.election.enable` (broker default and topic override) on each
//! path that may elect outside the ISR: FenceBroker, UnfenceBroker, AlterConfigs switching it
//! on, ElectLeaders of the UNCLEAN type, and a reassignment's cancellation.

use std::collections::BTreeMap;

use super::election::{Elected, NO_LEADER, elect_any_leader};
use super::tests_cluster::Cluster;
use super::*;

const UNCLEAN: &str = "unclean.leader.election.enable";

/// (leader, leader_epoch, partition_epoch, isr) of partition 0 of `t`.
fn state(c: &Cluster) -> (i32, i32, i32, Vec<i32>) {
    let p = c.p("t", 0);
    (p.leader, p.leader_epoch, p.partition_epoch, p.isr)
}

/// Brokers 1..=3 (broker default `broker_unclean` where given), topic `t` with one partition on
/// replicas [1, 2] (topic override `topic_unclean` where given), and its ISR shrunk to [1]:
/// leader 1, epochs (0, 1).
fn cluster(broker_unclean: Option<&str>, topic_unclean: Option<&str>) -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3]);
    if let Some(v) = broker_unclean {
        c.defaults.insert(UNCLEAN.into(), v.into());
    }
    let configs: BTreeMap<String, String> = topic_unclean.map(|v| (UNCLEAN.to_string(), v.to_string())).into_iter().collect();
    c.run(MetadataMutation::CreateTopic {
        name: "t".into(),
        partitions: -1,
        configs,
        validate_only: false,
        assignment: Some(vec![vec![1, 2]]),
        replication_factor: -1,
    })
    .unwrap();
    c.alter_isr("t", 0, vec![1]).unwrap();
    assert_eq!(state(&c), (1, 0, 1, vec![1]));
    c
}

fn set_topic_unclean(c: &mut Cluster, value: Option<&str>) -> Result<Vec<MetadataRecord>, MetadataError> {
    c.run(MetadataMutation::AlterConfigs {
        name: "t".into(),
        changes: vec![(UNCLEAN.into(), value.map(str::to_string))],
        incremental: true,
        validate_only: false,
    })
}

#[test]
fn elect_any_leader_prefers_the_isr_and_leaves_it_only_when_unclean() {
    let all = |_| true;
    assert_eq!(elect_any_leader(&[1, 2, 3], &[3, 2], true, all), Elected { leader: 2, isr: vec![3, 2] }, "clean first");
    assert_eq!(elect_any_leader(&[1, 2, 3], &[3], false, |r| r != 3), Elected { leader: NO_LEADER, isr: vec![3] });
    assert_eq!(elect_any_leader(&[1, 2, 3], &[3], true, |r| r != 3), Elected { leader: 1, isr: vec![1] }, "replica order");
    assert_eq!(elect_any_leader(&[1, 2, 3], &[3], true, |r| r == 2), Elected { leader: 2, isr: vec![2] });
    assert_eq!(elect_any_leader(&[1, 2], &[1], true, |_| false), Elected { leader: NO_LEADER, isr: vec![1] });
}

#[test]
fn without_the_config_fencing_the_last_isr_member_leaves_the_partition_leaderless() {
    let mut c = cluster(None, None);
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]), "2 is unfenced but out of the ISR");
    let mut c = cluster(Some("true"), Some("false"));
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]), "the topic's false overrides the broker's true");
}

#[test]
fn with_the_config_fencing_the_last_isr_member_elects_outside_the_isr() {
    for (broker, topic) in [(Some("true"), None), (None, Some("true")), (Some("false"), Some("TRUE"))] {
        let mut c = cluster(broker, topic);
        let records = c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
        assert_eq!(records.len(), 2, "the fence and one partition change ({broker:?}, {topic:?})");
        assert_eq!(state(&c), (2, 1, 2, vec![2]), "2 leads alone, in the next epochs ({broker:?}, {topic:?})");
    }
    // With every replica fenced there is no one to elect: the last member stays.
    let mut c = cluster(Some("true"), None);
    c.run(MetadataMutation::FenceBroker { broker_id: 2 }).unwrap();
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));
}

#[test]
fn an_unfenced_replica_outside_the_isr_leads_a_leaderless_partition_only_when_allowed() {
    // 2 fenced first, then 1: leaderless with ISR [1], no replica unfenced.
    let leaderless = |broker: Option<&str>, topic: Option<&str>| {
        let mut c = cluster(broker, topic);
        c.run(MetadataMutation::FenceBroker { broker_id: 2 }).unwrap();
        c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
        assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));
        c
    };
    let mut c = leaderless(None, None);
    let records = c.run(MetadataMutation::UnfenceBroker { broker_id: 2 }).unwrap();
    assert_eq!(records.len(), 1, "only the unfence record");
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));

    let mut c = leaderless(None, Some("true"));
    c.run(MetadataMutation::UnfenceBroker { broker_id: 2 }).unwrap();
    assert_eq!(state(&c), (2, 2, 3, vec![2]), "unclean on unfence");
    // The old leader comes back: it follows; it is not put back in the ISR by the controller.
    c.run(MetadataMutation::UnfenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(state(&c), (2, 2, 3, vec![2]));

    // Broker 3 holds no replica: unfencing it elects nothing.
    let mut c = leaderless(Some("true"), None);
    c.run(MetadataMutation::FenceBroker { broker_id: 3 }).unwrap();
    assert_eq!(c.run(MetadataMutation::UnfenceBroker { broker_id: 3 }).unwrap().len(), 1);
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));
    // An ISR member that returns wins over the unclean choice: the clean election comes first.
    c.run(MetadataMutation::UnfenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(state(&c), (1, 2, 3, vec![1]));
}

#[test]
fn switching_the_topic_config_on_elects_the_leaderless_partitions_in_the_same_frame() {
    let mut c = cluster(None, None);
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));
    // Setting it false (or something else) elects nothing.
    assert_eq!(set_topic_unclean(&mut c, Some("false")).unwrap().len(), 1);
    assert!(matches!(set_topic_unclean(&mut c, Some("yes")), Err(MetadataError::InvalidConfig { .. })));
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));

    let records = set_topic_unclean(&mut c, Some("true")).unwrap();
    assert!(matches!(&records[0], MetadataRecord::Config(r) if r.name == UNCLEAN && r.value.as_deref() == Some("true")));
    assert!(matches!(&records[1], MetadataRecord::Partition(r) if r.leader == 2 && r.isr == vec![2]));
    assert_eq!(records.len(), 2);
    assert_eq!(state(&c), (2, 2, 3, vec![2]));
    assert_eq!(c.snap.topics["t"].configs.get(UNCLEAN).map(String::as_str), Some("true"));
    // Switching it off again changes no leader.
    assert_eq!(set_topic_unclean(&mut c, None).unwrap().len(), 1);
    assert_eq!(state(&c), (2, 2, 3, vec![2]));
}

#[test]
fn switching_the_cluster_default_on_elects_the_leaderless_partitions_of_topics_that_allow_it() {
    let set_default = |c: &mut Cluster, broker_id: Option<i32>, value: &str| {
        c.run(MetadataMutation::AlterBrokerConfigs { broker_id, changes: vec![(UNCLEAN.into(), Some(value.into()))], incremental: true })
    };
    let mut c = cluster(None, None);
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));
    assert_eq!(set_default(&mut c, Some(2), "true").unwrap().len(), 1, "one broker's value is not the controller's");
    assert_eq!(set_default(&mut c, None, "false").unwrap().len(), 1);
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));
    let records = set_default(&mut c, None, "true").unwrap();
    assert_eq!(records.len(), 2, "the config and the election, in one frame");
    assert_eq!(state(&c), (2, 2, 3, vec![2]));

    let mut c = cluster(None, Some("false"));
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert_eq!(set_default(&mut c, None, "true").unwrap().len(), 1, "the topic's false wins");
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]));
}

#[test]
fn elect_leaders_unclean_elects_outside_the_isr_whatever_the_config() {
    let mut c = cluster(None, Some("false"));
    let elect = |c: &mut Cluster| c.run(MetadataMutation::ElectLeader { topic: "t".into(), partition: 0, preferred: false });
    assert!(matches!(elect(&mut c), Err(MetadataError::ElectionNotNeeded { .. })), "a leader is there");
    c.run(MetadataMutation::FenceBroker { broker_id: 2 }).unwrap();
    c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
    assert!(matches!(elect(&mut c), Err(MetadataError::EligibleLeadersNotAvailable { .. })), "no replica is unfenced");
    c.run(MetadataMutation::UnfenceBroker { broker_id: 2 }).unwrap();
    assert_eq!(state(&c), (NO_LEADER, 1, 2, vec![1]), "the config forbids it on unfence");
    let records = elect(&mut c).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(state(&c), (2, 2, 3, vec![2]), "the UNCLEAN type does not ask the config");
    assert!(matches!(elect(&mut c), Err(MetadataError::ElectionNotNeeded { .. })));
    // A preferred election still needs the preferred replica in the ISR.
    c.run(MetadataMutation::UnfenceBroker { broker_id: 1 }).unwrap();
    let preferred = c.run(MetadataMutation::ElectLeader { topic: "t".into(), partition: 0, preferred: true });
    assert!(matches!(preferred, Err(MetadataError::PreferredLeaderNotAvailable { preferred: 1, .. })));
}

#[test]
fn cancelling_a_reassignment_whose_isr_holds_only_adding_replicas_needs_unclean() {
    let stuck = |topic: Option<&str>| {
        let mut c = cluster(None, topic);
        c.run(MetadataMutation::ReassignPartition { topic: "t".into(), partition: 0, target: Some(vec![3, 2]) }).unwrap();
        // 3 caught up; 1 then left the ISR: only 3, an adding replica, is in sync.
        c.alter_isr("t", 0, vec![1, 3]).unwrap();
        let p = c.p("t", 0);
        assert_eq!((p.replicas.clone(), p.adding_replicas.clone()), (vec![3, 2, 1], vec![3]));
        c.run(MetadataMutation::FenceBroker { broker_id: 1 }).unwrap();
        assert_eq!((c.p("t", 0).leader, c.p("t", 0).isr), (3, vec![3]));
        c
    };
    let cancel = |c: &mut Cluster| c.run(MetadataMutation::ReassignPartition { topic: "t".into(), partition: 0, target: None });
    let mut c = stuck(None);
    assert!(matches!(cancel(&mut c), Err(MetadataError::InvalidReplicaAssignment { .. })));
    let mut c = stuck(Some("true"));
    let before = c.p("t", 0);
    cancel(&mut c).unwrap();
    let p = c.p("t", 0);
    // The revert keeps the original replicas in the reassignment's order ([2, 1]) and puts the
    // first of them in the ISR alone (Kafka's PartitionReassignmentRevert): 2 leads, 3 is gone.
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![2, 1], vec![2], 2));
    assert_eq!((p.leader_epoch, p.partition_epoch), (before.leader_epoch + 1, before.partition_epoch + 1));
    assert!(!p.reassigning());
}
