//! Unit tests: dynamic broker configs (KIP-226) as metadata: the records AlterBrokerConfigs
//! plans, applying them, the checkpoint round trip, and which brokers must re-resolve.

use super::delta::{PartitionChange, partition_changes};
use super::image::{apply_all, to_records};
use super::records::{ConfigRecord, ConfigResource, MetadataRecord};
use super::tests_cluster::{Cluster, create_rf};
use super::*;

fn alter(broker_id: Option<i32>, changes: &[(&str, Option<&str>)], incremental: bool) -> MetadataMutation {
    MetadataMutation::AlterBrokerConfigs {
        broker_id,
        changes: changes.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect(),
        incremental,
    }
}

#[test]
fn per_broker_and_cluster_default_values_are_config_records() {
    let mut c = Cluster::new(&[1, 2, 3]);
    let records = c.run(alter(None, &[("log.retention.ms", Some("7000")), ("log.segment.bytes", Some("2000000"))], true)).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| matches!(r, MetadataRecord::Config(ConfigRecord { resource: ConfigResource::BrokerDefault, .. }))));
    c.run(alter(Some(2), &[("log.retention.ms", Some("1000"))], true)).unwrap();
    assert_eq!(c.snap.broker_default_configs["log.retention.ms"], "7000");
    assert_eq!(c.snap.broker_configs[&2]["log.retention.ms"], "1000");
    let layers = c.snap.dynamic_configs(2);
    assert_eq!(layers.get("log.retention.ms").map(|(v, _)| v), Some("1000"));
    assert_eq!(c.snap.dynamic_configs(1).get("log.retention.ms").map(|(v, _)| v), Some("7000"), "broker 1 follows the default");

    // Only the difference becomes records: setting a value again writes nothing.
    assert!(c.run(alter(None, &[("log.retention.ms", Some("7000"))], true)).unwrap().is_empty());
    // DELETE goes back to the next level.
    c.run(alter(Some(2), &[("log.retention.ms", None)], true)).unwrap();
    assert!(!c.snap.broker_configs.contains_key(&2), "an empty broker entry is dropped");
    // The legacy API replaces the whole set.
    let records = c.run(alter(None, &[("log.cleaner.backoff.ms", Some("200"))], false)).unwrap();
    assert_eq!(records.len(), 3, "two deletes and one set: {records:?}");
    assert_eq!(c.snap.broker_default_configs.len(), 1);
    assert_eq!(c.snap.broker_default_configs["log.cleaner.backoff.ms"], "200");
}

#[test]
fn a_checkpoint_keeps_the_dynamic_broker_configs() {
    let mut c = Cluster::new(&[1, 2, 3]);
    c.run(alter(None, &[("log.retention.ms", Some("7000"))], true)).unwrap();
    c.run(alter(Some(3), &[("log.cleanup.policy", Some("compact"))], true)).unwrap();
    let replayed = apply_all(&ClusterSnapshot::empty(c.snap.cluster_id.clone()), &to_records(&c.snap)).unwrap();
    assert_eq!(replayed, c.snap);
    // A record of the cluster default, as the log stores it (serde), reads back the same.
    let record = MetadataRecord::Config(ConfigRecord { resource: ConfigResource::BrokerDefault, name: "k".into(), value: None });
    let json = serde_json::to_string(&record).unwrap();
    assert_eq!(serde_json::from_str::<MetadataRecord>(&json).unwrap(), record);
}

#[test]
fn a_dynamic_broker_config_change_re_resolves_every_local_topic() {
    let mut c = Cluster::new(&[1, 2, 3, 4]);
    c.run(create_rf("t", 1, 3)).unwrap();
    c.run(create_rf("u", 1, 1)).unwrap();
    let holds = |c: &Cluster, name: &str, node: i32| c.p(name, 0).replicas.contains(&node);
    let before = c.snap.clone();
    c.run(alter(None, &[("log.retention.ms", Some("7000"))], true)).unwrap();
    for node in 1..=4 {
        let mut expected = Vec::new();
        for name in ["t", "u"] {
            if holds(&c, name, node) {
                expected.push(PartitionChange::ConfigChanged { topic: name.into(), topic_id: c.snap.topics[name].id });
            }
        }
        assert_eq!(partition_changes(&before, &c.snap, node), expected, "node {node}");
    }
    // A per-broker value concerns that broker only.
    let before = c.snap.clone();
    let node = c.p("t", 0).replicas[0];
    c.run(alter(Some(node), &[("log.segment.bytes", Some("2000000"))], true)).unwrap();
    for other in 1..=4 {
        let changes = partition_changes(&before, &c.snap, other);
        assert_eq!(!changes.is_empty(), other == node, "node {other}: {changes:?}");
    }
}
