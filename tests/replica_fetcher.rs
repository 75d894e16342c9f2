//! The follower's replica fetcher against the real `ringlog` binary as its leader: batches
//! produced through the inter-broker client reach an in-memory follower log whole, at the
//! leader's offsets, with the leader's high watermark; batches produced while it long-polls
//! arrive too; stopping it ends it at once.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, MetadataRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use ringlog::cluster::client::{BrokerPool, versions};
use ringlog::cluster::fetcher::memory::MemoryLog;
use ringlog::cluster::fetcher::{FetchTarget, FetcherExit, FetcherState, FollowerLog, PARTITION_MAX_BYTES, ReplicaFetcher, StopSignal};
use ringlog::codes::ErrorCode;
use ringlog::storage::batch::{BatchHeader, RecordRef, build, records, stamp};

#[allow(dead_code)]
mod common;

const TOPIC: &str = "replicated";
const LEADER_ID: i32 = 0;
const TIMEOUT: Duration = Duration::from_secs(10);

/// A batch of the values `first..first + n`, as a producer sends it.
fn batch_of(first: usize, n: usize) -> Bytes {
    let values: Vec<Vec<u8>> = (first..first + n).map(|i| format!("value-{i}").into_bytes()).collect();
    let recs: Vec<RecordRef<'_>> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    build(&recs, 1_700_000_000_000, -1, -1)
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// Produces one batch with acks=all and returns its base offset.
async fn produce(pool: &Rc<BrokerPool>, addr: &str, batch: Bytes) -> i64 {
    let part = PartitionProduceData::default().with_index(0).with_records(Some(batch));
    let topic = TopicProduceData::default().with_name(name(TOPIC)).with_partition_data(vec![part]);
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![topic]);
    let response = pool.send(LEADER_ID, addr, &request, versions::PRODUCE, TIMEOUT).await.expect("produce");
    let part = &response.responses[0].partition_responses[0];
    assert_eq!(ErrorCode::from_code(part.error_code), ErrorCode::NONE);
    part.base_offset
}

/// Creates the topic (auto-creation through Metadata) and returns its id and leader epoch.
async fn create_topic(pool: &Rc<BrokerPool>, addr: &str) -> (uuid::Uuid, i32) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(TOPIC)))]))
            .with_allow_auto_topic_creation(true);
        let response = pool.send(LEADER_ID, addr, &request, versions::METADATA, TIMEOUT).await.expect("metadata");
        let topic = &response.topics[0];
        if topic.error_code == 0 && !topic.partitions.is_empty() && !topic.topic_id.is_nil() {
            return (topic.topic_id, topic.partitions[0].leader_epoch);
        }
        assert!(Instant::now() < deadline, "topic not created: {:?}", ErrorCode::from_code(topic.error_code));
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

/// The values of every record in `batches`, in order.
fn values(batches: &[Bytes]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| records(b).expect("records"))
        .map(|r| String::from_utf8(r.value.expect("value").to_vec()).expect("utf8"))
        .collect()
}

#[test]
fn client_versions_are_ones_the_broker_serves() {
    for (key, version) in [
        (ApiKey::Fetch, versions::FETCH),
        (ApiKey::OffsetForLeaderEpoch, versions::OFFSET_FOR_LEADER_EPOCH),
        (ApiKey::ListOffsets, versions::LIST_OFFSETS),
        (ApiKey::Produce, versions::PRODUCE),
        (ApiKey::Metadata, versions::METADATA),
    ] {
        let (_, max) = ringlog::protocol::supported_versions(key).expect("served");
        assert_eq!(version, max, "{key:?}: the client speaks the highest version served");
    }
}

#[test]
fn fetcher_replicates_a_real_brokers_partition() {
    let broker = common::Broker::start_fresh("replica-fetcher", "\"num.partitions\" = 1\n");
    let addr = broker.bootstrap();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let pool = BrokerPool::new(9);
            let (topic_id, leader_epoch) = create_topic(&pool, &addr).await;
            // (first value, records) of each batch: two before the fetcher starts, two while it runs.
            let sizes = [(0, 3), (3, 1), (4, 5), (9, 2)];
            let mut bases = Vec::new();
            for &(first, n) in &sizes[..2] {
                bases.push(produce(&pool, &addr, batch_of(first, n)).await);
            }

            let log = Rc::new(MemoryLog::new());
            let stop = StopSignal::new();
            let target = FetchTarget {
                topic: TOPIC.into(),
                topic_id,
                partition: 0,
                leader_id: LEADER_ID,
                leader_addr: addr.clone(),
                leader_epoch,
                node_id: 9,
                max_bytes: PARTITION_MAX_BYTES,
            };
            let fetcher = ReplicaFetcher::new(target, log.clone(), Rc::clone(&pool), Rc::clone(&stop));
            let progress = fetcher.progress();
            let task = glommio::spawn_local(fetcher.run());
            let wait_for = |end: i64| {
                let progress = Rc::clone(&progress);
                async move {
                    let deadline = Instant::now() + TIMEOUT;
                    while progress.fetched_to() < end || progress.high_watermark() < end {
                        assert!(Instant::now() < deadline, "fetcher at {} hw {}, not {end}", progress.fetched_to(), progress.high_watermark());
                        glommio::timer::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            wait_for(4).await;
            // Now the fetcher long-polls at the log end: these arrive through the parked fetch.
            for &(first, n) in &sizes[2..] {
                bases.push(produce(&pool, &addr, batch_of(first, n)).await);
            }
            wait_for(11).await;
            glommio::timer::sleep(Duration::from_millis(100)).await;

            assert_eq!(bases, [0, 3, 4, 9], "the leader's offsets");
            assert_eq!(log.batch_offsets(), [(0, 2), (3, 3), (4, 8), (9, 10)], "every batch once, at the leader's offsets");
            let expected: Vec<String> = (0..11).map(|i| format!("value-{i}")).collect();
            assert_eq!(values(&log.batches()), expected);
            for b in log.batches() {
                let header = BatchHeader::parse(&b).expect("header");
                assert_eq!(header.leader_epoch, leader_epoch.max(0), "stamped by the leader");
            }
            assert_eq!((log.log_end(), log.high_watermark()), (11, 11));
            assert_eq!(progress.high_watermark(), 11);
            assert!(log.truncations().is_empty(), "nothing to truncate on a follower that starts empty");

            let asked = Instant::now();
            stop.stop();
            let exit = task.await;
            assert!(matches!(exit, FetcherExit::Stopped), "{exit:?}");
            assert!(asked.elapsed() < Duration::from_millis(400), "stop interrupts the long poll");
        })
        .expect("executor")
        .join()
        .expect("test thread");
    drop(broker);
}

#[test]
fn fetcher_truncates_a_divergent_tail_then_follows() {
    let broker = common::Broker::start_fresh("replica-fetcher-truncate", "\"num.partitions\" = 1\n");
    let addr = broker.bootstrap();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let pool = BrokerPool::new(9);
            let (topic_id, leader_epoch) = create_topic(&pool, &addr).await;
            let epoch = leader_epoch.max(0);
            // The leader has [0, 3) and [3, 5). The follower has the same, then [5, 9) that the
            // leader never committed (an old leader's tail, written in the same epoch).
            let mut follower = Vec::new();
            for (first, n) in [(0, 3), (3, 2)] {
                let base = produce(&pool, &addr, batch_of(first, n)).await;
                follower.push(stamp(&batch_of(first, n), base, epoch, None).to_bytes());
            }
            follower.push(stamp(&batch_of(100, 4), 5, epoch, None).to_bytes());
            let log = Rc::new(MemoryLog::with_batches(&follower).expect("follower log"));
            assert_eq!(log.log_end(), 9);

            let stop = StopSignal::new();
            let target = FetchTarget {
                topic: TOPIC.into(),
                topic_id,
                partition: 0,
                leader_id: LEADER_ID,
                leader_addr: addr.clone(),
                leader_epoch,
                node_id: 9,
                max_bytes: PARTITION_MAX_BYTES,
            };
            let fetcher = ReplicaFetcher::new(target, log.clone(), Rc::clone(&pool), Rc::clone(&stop));
            let progress = fetcher.progress();
            let task = glommio::spawn_local(fetcher.run());
            // Truncation first (the leader's end is still 5), then the leader's next batch lands
            // at 5, where the follower's ghost tail was.
            let deadline = Instant::now() + TIMEOUT;
            while progress.state() != FetcherState::Fetching {
                assert!(Instant::now() < deadline, "fetcher is {:?}", progress.state());
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(log.log_end(), 5);
            assert_eq!(produce(&pool, &addr, batch_of(5, 2)).await, 5);
            while progress.high_watermark() < 7 {
                assert!(Instant::now() < deadline, "fetcher at {} hw {}", progress.fetched_to(), progress.high_watermark());
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            stop.stop();
            assert!(matches!(task.await, FetcherExit::Stopped));

            assert_eq!(log.truncations(), [5], "cut to the leader's end of the epoch");
            assert_eq!(log.batch_offsets(), [(0, 2), (3, 4), (5, 6)]);
            let expected: Vec<String> = (0..7).map(|i| format!("value-{i}")).collect();
            assert_eq!(values(&log.batches()), expected, "the ghost records are gone");
        })
        .expect("executor")
        .join()
        .expect("test thread");
    drop(broker);
}
