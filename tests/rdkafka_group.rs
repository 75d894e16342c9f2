//! Consumer groups through the `rdkafka` crate (librdkafka) against the real `ringlog` binary: two
//! `BaseConsumer`s subscribe to one topic in one group and split its partitions, read everything,
//! commit with `commit_consumer_state`; the committed offsets survive a broker restart and a new
//! member of the group resumes right after them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::BaseProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPIC: &str = "rd-group";
const GROUP: &str = "rdkafka-group";
const PARTITIONS: i32 = 4;

mod common;

use common::Broker;

/// Auto-created topics get 4 partitions; joins complete without the initial rebalance delay.
const CONFIG: &str = "\"num.partitions\" = 4\n\"group.initial.rebalance.delay.ms\" = 0\n";

fn member(bootstrap: &str, client_id: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer")
}

/// Produces records `from..to`: "group-<index>" to partition index % PARTITIONS, all acknowledged.
fn produce(producer: &BaseProducer, from: usize, to: usize) {
    common::produce_all(producer, TOPIC, PARTITIONS, from..to, |i| format!("group-{i:08}"));
}

fn record_index(payload: Option<&[u8]>) -> usize {
    let text = std::str::from_utf8(payload.unwrap_or_default()).expect("utf8");
    text.trim_start_matches("group-").parse().expect("index")
}

/// The partitions currently assigned to `consumer`, sorted.
fn assigned(consumer: &BaseConsumer) -> Vec<i32> {
    let mut parts: Vec<i32> =
        consumer.assignment().expect("assignment").elements().iter().map(|e| e.partition()).collect();
    parts.sort_unstable();
    parts
}

/// Whether `consumer` has an assignment and has read each assigned partition up to its high watermark.
fn caught_up(consumer: &BaseConsumer, highs: &HashMap<i32, i64>) -> bool {
    let positions = consumer.position().expect("position");
    let elements = positions.elements();
    !elements.is_empty() && elements.iter().all(|e| e.offset() == Offset::Offset(highs[&e.partition()]))
}

/// Committed offsets of the group for every partition, read by a consumer that does not join.
fn group_committed(bootstrap: &str) -> HashMap<i32, Offset> {
    let reader = member(bootstrap, "rd-reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let committed = reader.committed_offsets(tpl, Duration::from_secs(15)).expect("committed offsets");
    let mut out = HashMap::new();
    for e in committed.elements() {
        out.insert(e.partition(), e.offset());
    }
    out
}

#[test]
fn rdkafka_group_members_split_partitions_and_commits_survive_restart() {
    const N: usize = 2_000;
    let broker = Broker::start_fresh("rdkafka-group", CONFIG);
    let dir = broker.dir().to_owned();
    let bootstrap = broker.bootstrap();

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    produce(&producer, 0, N);

    let a = member(&bootstrap, "rd-a");
    let b = member(&bootstrap, "rd-b");
    let mut highs = HashMap::new();
    for p in 0..PARTITIONS {
        let (_low, high) = a.fetch_watermarks(TOPIC, p, Duration::from_secs(15)).expect("watermarks");
        highs.insert(p, high);
    }
    assert_eq!(highs.values().sum::<i64>(), N as i64, "high watermarks {highs:?}");
    a.subscribe(&[TOPIC]).expect("subscribe a");
    b.subscribe(&[TOPIC]).expect("subscribe b");

    // Poll both members (one thread: each poll serves that member's rebalance callbacks) until the
    // group is split between them and each has read its partitions to the end. Nothing is committed
    // yet, so a partition that moves is read again from the start by its new owner.
    let consumers = [&a, &b];
    let mut seen: HashSet<(i32, i64)> = HashSet::new();
    let mut read_by = [0usize; 2];
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        for (idx, consumer) in consumers.iter().enumerate() {
            if let Some(result) = consumer.poll(Duration::from_millis(100)) {
                let m = result.expect("consumer error");
                assert_eq!(m.topic(), TOPIC);
                let index = record_index(m.payload());
                assert_eq!((index % PARTITIONS as usize) as i32, m.partition(), "record in its partition");
                assert_eq!(index / PARTITIONS as usize, m.offset() as usize, "offsets are dense");
                seen.insert((m.partition(), m.offset()));
                read_by[idx] += 1;
            }
        }
        let (pa, pb) = (assigned(&a), assigned(&b));
        let mut union: Vec<i32> = pa.iter().chain(pb.iter()).copied().collect();
        union.sort_unstable();
        let split = !pa.is_empty() && !pb.is_empty() && union == (0..PARTITIONS).collect::<Vec<i32>>();
        if seen.len() == N && split && caught_up(&a, &highs) && caught_up(&b, &highs) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "group did not settle: a={pa:?} b={pb:?} seen={} read_by={read_by:?}",
            seen.len()
        );
    }
    assert!(read_by[0] > 0 && read_by[1] > 0, "both members read records: {read_by:?}");

    // Commit what each member has read, as a member of the current generation.
    a.commit_consumer_state(CommitMode::Sync).expect("commit a");
    b.commit_consumer_state(CommitMode::Sync).expect("commit b");
    for consumer in consumers {
        let committed = consumer.committed(Duration::from_secs(15)).expect("committed");
        assert!(committed.count() > 0, "committed() of an assigned member lists its partitions");
        for e in committed.elements() {
            assert_eq!(e.offset(), Offset::Offset(highs[&e.partition()]), "partition {}", e.partition());
        }
    }

    // The coordinator describes the group: Stable, two members, the client ids we set.
    let groups = a.fetch_group_list(Some(GROUP), Duration::from_secs(15)).expect("group list");
    let group = groups.groups().iter().find(|g| g.name() == GROUP).expect("group described");
    assert_eq!(group.state(), "Stable");
    assert_eq!(group.protocol_type(), "consumer");
    let mut clients: Vec<&str> = group.members().iter().map(|m| m.client_id()).collect();
    clients.sort_unstable();
    assert_eq!(clients, ["rd-a", "rd-b"]);

    drop(a);
    drop(b);
    let expect: HashMap<i32, Offset> = highs.iter().map(|(p, h)| (*p, Offset::Offset(*h))).collect();
    assert_eq!(group_committed(&bootstrap), expect, "committed offsets before restart");

    let _broker = broker.restart();
    assert_eq!(group_committed(&bootstrap), expect, "committed offsets after restart");

    // A new member resumes right after the committed offsets: it sees only the new records.
    let c = member(&bootstrap, "rd-c");
    c.subscribe(&[TOPIC]).expect("subscribe c");
    produce(&producer, N, N + PARTITIONS as usize);
    let mut fresh = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fresh.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "resume timed out; got {fresh:?}");
        if let Some(result) = c.poll(Duration::from_millis(200)) {
            let m = result.expect("consumer error");
            fresh.push((m.partition(), m.offset(), record_index(m.payload())));
        }
    }
    fresh.sort_unstable();
    let want: Vec<(i32, i64, usize)> =
        (0..PARTITIONS).map(|p| (p, highs[&p], N + p as usize)).collect();
    assert_eq!(fresh, want, "the new member starts at the committed offsets");
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}
