//! The `rdkafka` crate (librdkafka) against the real `ringlog` binary: produce with acks=all,
//! read back with assign(), restart the broker, read back again.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

mod common;

use common::Broker;

/// Auto-created topics get 4 partitions; joins complete without the initial rebalance delay.
const CONFIG: &str = "\"num.partitions\" = 4\n";

fn read_all(bootstrap: &str, topic: &str, partitions: i32, expect: usize) -> Vec<(i32, i64, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rdkafka-compat")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            out.push((m.partition(), m.offset(), m.payload().unwrap_or_default().to_vec()));
        }
    }
    out
}

#[test]
fn rdkafka_produces_and_consumes_across_restart() {
    const N: usize = 20_000;
    const PARTITIONS: i32 = 4;
    let broker = Broker::start_fresh("rdkafka", CONFIG);
    let dir = broker.dir().to_owned();
    let bootstrap = broker.bootstrap();

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    common::produce_all(&producer, "rd-topic", PARTITIONS, 0..N, |i| format!("record-{i:08}"));

    let check = |records: Vec<(i32, i64, Vec<u8>)>| {
        assert_eq!(records.len(), N, "all records read back");
        let mut next = vec![0i64; PARTITIONS as usize];
        let mut last_index = vec![-1i64; PARTITIONS as usize];
        for (p, offset, payload) in records {
            let text = String::from_utf8(payload).expect("utf8");
            let index: i64 = text.trim_start_matches("record-").parse().expect("index");
            assert_eq!(index % i64::from(PARTITIONS), i64::from(p), "record in its partition");
            assert_eq!(offset, next[p as usize], "offsets are dense");
            assert!(index > last_index[p as usize], "order kept within a partition");
            next[p as usize] += 1;
            last_index[p as usize] = index;
        }
    };
    check(read_all(&bootstrap, "rd-topic", PARTITIONS, N));
    let _broker = broker.restart();
    check(read_all(&bootstrap, "rd-topic", PARTITIONS, N));
    let _ = std::fs::remove_dir_all(&dir);
}
