//! Unit tests: the state machine record by record, planning, and the log's durability rules
//! (replay, torn tail, checkpoint, legacy conversion), with std and glommio I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;

use uuid::Uuid;

use super::image::{apply, apply_all, to_records};
use super::log::{CHECKPOINT_FILE, LOG_FILE, scan};
use super::records::*;
use super::*;

/// A fresh directory per test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ringlog-meta-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn log(&self) -> PathBuf {
        self.0.join("meta").join(LOG_FILE)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn create(name: &str, partitions: i32) -> MetadataMutation {
    MetadataMutation::CreateTopic { name: name.into(), partitions, configs: BTreeMap::new(), validate_only: false, assignment: None, replication_factor: -1 }
}

fn no_defaults() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn partition(topic_id: Uuid, partition: i32, owner: usize) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        topic_id,
        partition,
        replicas: vec![7],
        isr: vec![7],
        leader: 7,
        leader_epoch: 0,
        partition_epoch: 0,
        owner_shard: ShardId(owner),
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    })
}

#[test]
fn placement_is_even() {
    let owners = place(&[0, 0], 8);
    assert_eq!(owners.iter().filter(|s| s.0 == 0).count(), 4);
    assert_eq!(owners.iter().filter(|s| s.0 == 1).count(), 4);
    let owners = place(&[3, 0, 0], 3);
    assert_eq!(owners, vec![ShardId(1), ShardId(2), ShardId(1)]);
}

#[test]
fn topic_names_follow_kafka_rules() {
    assert!(valid_topic_name("orders.v1_x-2"));
    assert!(!valid_topic_name(""));
    assert!(!valid_topic_name(".."));
    assert!(!valid_topic_name("bad/name"));
    assert!(!valid_topic_name(&"x".repeat(250)));
}

#[test]
fn apply_topic_and_partition_records() {
    let id = Uuid::new_v4();
    let s = apply(&ClusterSnapshot::empty("c"), &MetadataRecord::Topic(TopicRecord { name: "t".into(), topic_id: id })).unwrap();
    assert!(s.topics["t"].partitions.is_empty());
    assert_eq!(s.topic_by_id(id).unwrap().name, "t");
    let s = apply(&s, &partition(id, 0, 1)).unwrap();
    let p = &s.topics["t"].partitions[0];
    assert_eq!((p.owner, p.leader, p.replicas.clone(), p.isr.clone()), (ShardId(1), 7, vec![7], vec![7]));
    // The same index again changes the partition (the PartitionChangeRecord role).
    let mut change = partition(id, 0, 1);
    if let MetadataRecord::Partition(p) = &mut change {
        p.leader_epoch = 3;
        p.partition_epoch = 1;
    }
    let s2 = apply(&s, &change).unwrap();
    assert_eq!((s2.topics["t"].partitions[0].leader_epoch, s2.topics["t"].partitions[0].partition_epoch), (3, 1));
    assert_eq!(s.topics["t"].partitions[0].leader_epoch, 0, "apply leaves the old snapshot alone");
    // A gap in partition indexes, an unknown topic id and a second topic of the same name are refused.
    assert!(matches!(apply(&s, &partition(id, 5, 0)), Err(MetadataError::InvalidRecord { .. })));
    assert!(matches!(apply(&s, &partition(Uuid::new_v4(), 0, 0)), Err(MetadataError::UnknownTopicId { .. })));
    let again = MetadataRecord::Topic(TopicRecord { name: "t".into(), topic_id: Uuid::new_v4() });
    assert!(matches!(apply(&s, &again), Err(MetadataError::TopicAlreadyExists { .. })));
}

#[test]
fn apply_config_remove_producer_and_broker_records() {
    let id = Uuid::new_v4();
    let s = apply_all(
        &ClusterSnapshot::empty("c"),
        &[MetadataRecord::Topic(TopicRecord { name: "t".into(), topic_id: id }), partition(id, 0, 0)],
    )
    .unwrap();
    let set = |value: Option<&str>| {
        MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Topic { name: "t".into() },
            name: "retention.ms".into(),
            value: value.map(str::to_string),
        })
    };
    let s = apply(&s, &set(Some("1000"))).unwrap();
    assert_eq!(s.topics["t"].configs["retention.ms"], "1000");
    let s = apply(&s, &set(None)).unwrap();
    assert!(s.topics["t"].configs.is_empty());
    let broker_cfg = MetadataRecord::Config(ConfigRecord {
        resource: ConfigResource::Broker { broker_id: 7 },
        name: "log.retention.ms".into(),
        value: Some("5".into()),
    });
    let s = apply(&s, &broker_cfg).unwrap();
    assert_eq!(s.broker_configs[&7]["log.retention.ms"], "5");

    let ids = |next| MetadataRecord::ProducerIds(ProducerIdsRecord { broker_id: 7, next_producer_id_block: next });
    let s = apply(&s, &ids(1000)).unwrap();
    assert_eq!(s.next_producer_id_block, 1000);
    assert!(matches!(apply(&s, &ids(1000)), Err(MetadataError::InvalidRecord { .. })), "blocks only move forward");

    let reg = BrokerRegistration {
        broker_id: 7,
        incarnation_id: Uuid::new_v4(),
        endpoints: vec![BrokerEndpoint { listener: "PLAINTEXT".into(), host: "h".into(), port: 9092, security_protocol: "PLAINTEXT".into() }],
        rack: None,
    };
    let s = apply(&s, &MetadataRecord::RegisterBroker(reg.clone())).unwrap();
    assert_eq!(s.brokers[&7], reg);

    let s = apply(&s, &MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id })).unwrap();
    assert!(s.topics.is_empty() && s.topic_by_id(id).is_none());
    assert!(matches!(apply(&s, &set(Some("1"))), Err(MetadataError::UnknownTopic { .. })));
    assert!(matches!(
        apply(&s, &MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id: id })),
        Err(MetadataError::UnknownTopicId { .. })
    ));
}

#[test]
fn snapshot_round_trips_through_records() {
    let dir = TempDir::new("roundtrip");
    let mut boot = MetadataBootstrap::load(&dir.0, 3, 7).unwrap();
    boot.apply(create("a", 4), &no_defaults()).unwrap();
    let configs = [("retention.ms".to_string(), "10".to_string())].into();
    boot.apply(MetadataMutation::CreateTopic { name: "b".into(), partitions: 2, configs, validate_only: false, assignment: None, replication_factor: -1 }, &no_defaults())
        .unwrap();
    boot.apply(MetadataMutation::AllocateProducerId, &no_defaults()).unwrap();
    let snapshot = boot.handle().load_full();
    let rebuilt = apply_all(&ClusterSnapshot::empty(snapshot.cluster_id.clone()), &to_records(&snapshot)).unwrap();
    assert_eq!(rebuilt, *snapshot);
}

#[test]
fn mutations_keep_the_json_store_error_order() {
    let dir = TempDir::new("errors");
    let mut boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
    let d = no_defaults();
    assert!(matches!(boot.apply(create("bad/name", 1), &d), Err(MetadataError::InvalidTopic { .. })));
    assert!(matches!(boot.apply(create("t", 0), &d), Err(MetadataError::InvalidPartitions { .. })));
    let bad_cfg = [("retention.ms".to_string(), "soon".to_string())].into();
    let r = boot.apply(MetadataMutation::CreateTopic { name: "t".into(), partitions: 1, configs: bad_cfg, validate_only: false, assignment: None, replication_factor: -1 }, &d);
    assert!(matches!(r, Err(MetadataError::InvalidConfig { .. })), "{r:?}");
    let t = boot.apply(create("t", 4), &d).unwrap().topic.unwrap();
    assert_eq!(t.partitions.len(), 4);
    assert!(t.partitions.iter().all(|p| p.replicas == [7] && p.isr == [7] && p.leader == 7));
    assert!(matches!(boot.apply(create("t", 4), &d), Err(MetadataError::TopicAlreadyExists { .. })));
    let grow = |count| MetadataMutation::CreatePartitions { name: "t".into(), count, validate_only: false, replication_factor: -1 };
    assert!(matches!(boot.apply(grow(4), &d), Err(MetadataError::InvalidPartitions { .. })));
    assert_eq!(boot.apply(grow(6), &d).unwrap().topic.unwrap().partitions.len(), 6);
    let missing = MetadataMutation::DeleteTopic { name: "nope".into() };
    assert!(matches!(boot.apply(missing, &d), Err(MetadataError::UnknownTopic { .. })));
    // Validate-only changes nothing, and writes nothing.
    let before = std::fs::metadata(dir.log()).unwrap().len();
    let dry = MetadataMutation::CreateTopic { name: "dry".into(), partitions: 3, configs: BTreeMap::new(), validate_only: true, assignment: None, replication_factor: -1 };
    assert_eq!(boot.apply(dry, &d).unwrap().topic.unwrap().partitions.len(), 3);
    assert!(!boot.handle().load().topics.contains_key("dry"));
    assert_eq!(std::fs::metadata(dir.log()).unwrap().len(), before);
}

#[test]
fn alter_configs_replace_and_patch() {
    let dir = TempDir::new("configs");
    let mut boot = MetadataBootstrap::load(&dir.0, 1, 0).unwrap();
    let d = no_defaults();
    boot.apply(create("t", 1), &d).unwrap();
    let alter = |changes: &[(&str, Option<&str>)], incremental| MetadataMutation::AlterConfigs {
        name: "t".into(),
        changes: changes.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect(),
        incremental,
        validate_only: false,
    };
    boot.apply(alter(&[("retention.ms", Some("10")), ("segment.bytes", Some("1048576"))], true), &d).unwrap();
    let t = boot.apply(alter(&[("segment.ms", Some("5"))], false), &d).unwrap().topic.unwrap();
    assert_eq!(t.configs, [("segment.ms".to_string(), "5".to_string())].into(), "non-incremental replaces all");
    let t = boot.apply(alter(&[("segment.ms", None)], true), &d).unwrap().topic.unwrap();
    assert!(t.configs.is_empty());
}

#[test]
fn records_replay_after_restart() {
    let dir = TempDir::new("replay");
    let (id, cluster_id) = {
        let mut boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
        let d = no_defaults();
        boot.apply(create("t", 4), &d).unwrap();
        boot.apply(create("gone", 1), &d).unwrap();
        boot.apply(MetadataMutation::DeleteTopic { name: "gone".into() }, &d).unwrap();
        assert_eq!(boot.apply(MetadataMutation::AllocateProducerId, &d).unwrap().producer_id, Some(0));
        assert_eq!(boot.apply(MetadataMutation::AllocateProducerId, &d).unwrap().producer_id, Some(1));
        let s = boot.handle().load_full();
        (s.topics["t"].id, s.cluster_id.clone())
    };
    let boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
    let s = boot.handle().load_full();
    assert_eq!((s.cluster_id.clone(), s.topics["t"].id, s.topics["t"].partitions.len()), (cluster_id, id, 4));
    assert!(!s.topics.contains_key("gone"));
    assert_eq!(s.next_producer_id_block, mutation::PRODUCER_ID_BLOCK);
    let mut boot = boot;
    let next = boot.apply(MetadataMutation::AllocateProducerId, &no_defaults()).unwrap().producer_id;
    assert_eq!(next, Some(mutation::PRODUCER_ID_BLOCK), "a restart never hands out an id of the last block again");
}

#[test]
fn a_mutation_is_one_frame() {
    let dir = TempDir::new("frame");
    let mut boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
    boot.apply(create("t", 50), &no_defaults()).unwrap();
    let bytes = std::fs::read(dir.log()).unwrap();
    let found = scan(&bytes);
    assert_eq!((found.frames.len(), found.stopped.as_deref()), (1, None));
    let frame: log::LogFrame = serde_json::from_slice(found.frames[0].1).unwrap();
    assert_eq!((frame.offset, frame.records.len()), (0, 51));
}

#[test]
fn torn_tail_is_truncated_and_never_applied() {
    let dir = TempDir::new("torn");
    {
        let mut boot = MetadataBootstrap::load(&dir.0, 1, 7).unwrap();
        boot.apply(create("a", 1), &no_defaults()).unwrap();
        boot.apply(create("b", 3), &no_defaults()).unwrap();
    }
    let bytes = std::fs::read(dir.log()).unwrap();
    let frames = scan(&bytes).frames;
    let second_at = frames[1].0 as usize;
    // Cut the second frame in the middle of its payload.
    std::fs::write(dir.log(), &bytes[..second_at + 20]).unwrap();
    let mut boot = MetadataBootstrap::load(&dir.0, 1, 7).unwrap();
    let s = boot.handle().load_full();
    assert!(s.topics.contains_key("a") && !s.topics.contains_key("b"));
    assert_eq!(std::fs::metadata(dir.log()).unwrap().len(), second_at as u64, "the torn frame is cut off");
    // The log goes on from there, and so does replay.
    boot.apply(create("c", 1), &no_defaults()).unwrap();
    drop(boot);
    let s = MetadataBootstrap::load(&dir.0, 1, 7).unwrap().handle().load_full();
    assert_eq!(s.topics.keys().collect::<Vec<_>>(), ["a", "c"]);
}

#[test]
fn corrupt_or_garbage_tail_is_truncated() {
    let dir = TempDir::new("garbage");
    {
        let mut boot = MetadataBootstrap::load(&dir.0, 1, 7).unwrap();
        boot.apply(create("a", 2), &no_defaults()).unwrap();
        boot.apply(create("b", 2), &no_defaults()).unwrap();
    }
    let good = std::fs::read(dir.log()).unwrap();
    let second_at = scan(&good).frames[1].0 as usize;
    // A flipped bit in the last frame: its CRC fails, it is dropped.
    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    std::fs::write(dir.log(), &flipped).unwrap();
    let s = MetadataBootstrap::load(&dir.0, 1, 7).unwrap().handle().load_full();
    assert!(s.topics.contains_key("a") && !s.topics.contains_key("b"));
    assert_eq!(std::fs::metadata(dir.log()).unwrap().len(), second_at as u64);
    // Garbage after whole frames (a huge length, then a small one with a wrong CRC).
    for garbage in [vec![0xff; 37], vec![5, 0, 0, 0, 1, 2, 3, 4, b'{', b'}', b'x', b'y', b'z']] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(&garbage);
        std::fs::write(dir.log(), &bytes).unwrap();
        let s = MetadataBootstrap::load(&dir.0, 1, 7).unwrap().handle().load_full();
        assert!(s.topics.contains_key("a") && s.topics.contains_key("b"));
        assert_eq!(std::fs::read(dir.log()).unwrap(), good);
    }
}

#[test]
fn checkpoint_then_more_records_then_reload() {
    let dir = TempDir::new("checkpoint");
    let d = no_defaults();
    {
        let mut boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
        boot.set_checkpoint_every(10);
        for i in 0..4 {
            boot.apply(create(&format!("t{i}"), 2), &d).unwrap(); // 3 records each: checkpoint after the 4th
        }
        assert_eq!(std::fs::metadata(dir.log()).unwrap().len(), 0, "the log restarts after a checkpoint");
        boot.apply(create("after", 1), &d).unwrap();
        boot.apply(MetadataMutation::DeleteTopic { name: "t0".into() }, &d).unwrap();
    }
    let bytes = std::fs::read(dir.0.join("meta").join(CHECKPOINT_FILE)).unwrap();
    assert_eq!(scan(&bytes).frames.len(), 1);
    let s = MetadataBootstrap::load(&dir.0, 2, 7).unwrap().handle().load_full();
    assert_eq!(s.topics.keys().collect::<Vec<_>>(), ["after", "t1", "t2", "t3"]);
    assert_eq!(s.topics["t3"].partitions.len(), 2);
}

#[test]
fn log_frames_covered_by_the_checkpoint_are_skipped() {
    // A crash after the checkpoint's rename but before the log was emptied.
    let dir = TempDir::new("covered");
    let d = no_defaults();
    let old_log = {
        let mut boot = MetadataBootstrap::load(&dir.0, 1, 7).unwrap();
        boot.set_checkpoint_every(3);
        boot.apply(create("a", 1), &d).unwrap();
        let log = std::fs::read(dir.log()).unwrap();
        boot.apply(create("b", 1), &d).unwrap(); // checkpoint: a and b
        log
    };
    std::fs::write(dir.log(), &old_log).unwrap();
    let mut boot = MetadataBootstrap::load(&dir.0, 1, 7).unwrap();
    assert_eq!(boot.handle().load().topics.len(), 2);
    boot.apply(create("c", 1), &d).unwrap();
    drop(boot);
    let s = MetadataBootstrap::load(&dir.0, 1, 7).unwrap().handle().load_full();
    assert_eq!(s.topics.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
}

#[test]
fn a_log_without_its_checkpoint_is_refused() {
    let dir = TempDir::new("nockpt");
    MetadataBootstrap::load(&dir.0, 1, 7).unwrap().apply(create("a", 1), &no_defaults()).unwrap();
    std::fs::remove_file(dir.0.join("meta").join(CHECKPOINT_FILE)).unwrap();
    let err = MetadataBootstrap::load(&dir.0, 1, 7).unwrap_err();
    assert!(matches!(err, MetadataError::Corrupt { .. }), "{err:?}");
}

#[test]
fn old_cluster_json_is_converted_once() {
    let dir = TempDir::new("legacy");
    let meta = dir.0.join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    let id = Uuid::new_v4();
    let old = serde_json::json!({
        "cluster_id": "old-cluster-id",
        "topics": {"t": {"name": "t", "id": id, "partitions": [{"owner": 1, "leader_epoch": 2}, {"owner": 0, "leader_epoch": 0}],
                         "configs": {"retention.ms": "100"}}},
        "next_producer_id": 1234,
    });
    std::fs::write(meta.join(legacy::LEGACY_FILE), serde_json::to_vec(&old).unwrap()).unwrap();
    let mut boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
    let s = boot.handle().load_full();
    assert_eq!(s.cluster_id, "old-cluster-id");
    let t = &s.topics["t"];
    assert_eq!((t.id, t.partitions[0].owner, t.partitions[0].leader_epoch, t.partitions[1].owner), (id, ShardId(1), 2, ShardId(0)));
    assert_eq!((t.partitions[0].leader, t.partitions[0].replicas.clone()), (7, vec![7]));
    assert_eq!(t.configs["retention.ms"], "100");
    assert_eq!(boot.apply(MetadataMutation::AllocateProducerId, &no_defaults()).unwrap().producer_id, Some(2000));
    assert!(!meta.join(legacy::LEGACY_FILE).exists() && meta.join(legacy::LEGACY_CONVERTED_FILE).exists());
    boot.apply(create("new", 1), &no_defaults()).unwrap();
    drop(boot);
    let s = MetadataBootstrap::load(&dir.0, 2, 7).unwrap().handle().load_full();
    assert_eq!(s.topics.keys().collect::<Vec<_>>(), ["new", "t"]);
}

/// Runs `f` on a fresh glommio executor.
fn on_executor<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::default().spawn(f).unwrap().join().unwrap();
}

#[test]
fn async_store_appends_checkpoints_and_reloads() {
    let dir = TempDir::new("async");
    let data = dir.0.clone();
    on_executor(move || async move {
        let d = no_defaults();
        let mut boot = MetadataBootstrap::load(&data, 2, 7).unwrap();
        boot.apply(create("boot", 1), &d).unwrap();
        boot.set_checkpoint_every(20);
        let handle = boot.handle();
        let store = boot.start().await.unwrap();
        // Concurrent mutations run one at a time: every one is answered and lands exactly once.
        let store = std::rc::Rc::new(store);
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let store = std::rc::Rc::clone(&store);
                glommio::spawn_local(async move { store.apply(create(&format!("t{i}"), 2), &no_defaults()).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().topic.unwrap().partitions.len(), 2);
        }
        let err = store.apply(create("t3", 1), &d).await.unwrap_err();
        assert!(matches!(err, MetadataError::TopicAlreadyExists { .. }));
        assert_eq!(store.apply(MetadataMutation::AllocateProducerId, &d).await.unwrap().producer_id, Some(0));
        assert_eq!(store.apply(MetadataMutation::AllocateProducerId, &d).await.unwrap().producer_id, Some(1));
        assert_eq!(handle.load().topics.len(), 13);
        assert_eq!(store.snapshot().topics.len(), 13);
    });
    // 2 + 36 records: at least one checkpoint was written by the async path, then more frames.
    let ckpt = std::fs::read(dir.0.join("meta").join(CHECKPOINT_FILE)).unwrap();
    assert!(ckpt.len() > 1000, "checkpoint holds the topics");
    let s = MetadataBootstrap::load(&dir.0, 2, 7).unwrap().handle().load_full();
    assert_eq!(s.topics.len(), 13);
    assert_eq!(s.next_producer_id_block, mutation::PRODUCER_ID_BLOCK);
}

#[test]
fn a_manual_replica_assignment_is_checked_and_kept() {
    let dir = TempDir::new("assignment");
    let mut boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
    let reg = BrokerRegistration { broker_id: 7, incarnation_id: Uuid::new_v4(), endpoints: Vec::new(), rack: None };
    boot.apply(MetadataMutation::RegisterBroker(reg), &no_defaults()).unwrap();
    let assigned = |name: &str, assignment: Vec<Vec<i32>>| MetadataMutation::CreateTopic {
        name: name.into(),
        partitions: -1,
        configs: BTreeMap::new(),
        validate_only: false,
        assignment: Some(assignment),
        replication_factor: -1,
    };
    // Two partitions, as many as the assignment names, whatever `partitions` says.
    let topic = boot.apply(assigned("manual", vec![vec![7], vec![7]]), &no_defaults()).unwrap().topic.unwrap();
    assert_eq!(topic.partitions.len(), 2);
    for p in &topic.partitions {
        assert_eq!((p.replicas.as_slice(), p.isr.as_slice(), p.leader), (&[7][..], &[7][..], 7));
    }
    for (bad, why) in [
        (vec![], "no partition"),
        (vec![vec![7], vec![]], "is empty"),
        (vec![vec![7, 7]], "more than once"),
        (vec![vec![7], vec![5]], "no such broker"),
    ] {
        match boot.apply(assigned("refused", bad), &no_defaults()) {
            Err(MetadataError::InvalidReplicaAssignment { reason }) => assert!(reason.contains(why), "{reason}"),
            other => panic!("expected INVALID_REPLICA_ASSIGNMENT ({why}), got {other:?}"),
        }
    }
    assert!(!boot.handle().load().topics.contains_key("refused"));
}

#[test]
fn a_single_node_stays_unfenced_across_restarts() {
    let dir = TempDir::new("single-unfenced");
    let register = || MetadataMutation::RegisterBroker(BrokerRegistration { broker_id: 7, incarnation_id: Uuid::new_v4(), endpoints: Vec::new(), rack: None });
    {
        let mut boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
        boot.apply(create("t", 2), &no_defaults()).unwrap();
        boot.apply(register(), &no_defaults()).unwrap();
        assert!(boot.handle().load().is_unfenced(7));
    }
    let mut boot = MetadataBootstrap::load(&dir.0, 2, 7).unwrap();
    assert!(boot.handle().load().is_unfenced(7), "replayed: the registration and its unfence");
    boot.apply(register(), &no_defaults()).unwrap();
    let s = boot.handle().load_full();
    assert!(s.is_unfenced(7));
    assert!(s.topics["t"].partitions.iter().all(|p| (p.leader, p.leader_epoch, p.isr.as_slice()) == (7, 0, &[7][..])), "a restart moves nothing");
}
