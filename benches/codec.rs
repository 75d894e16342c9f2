//! Wire codec cost of the two big messages: what kafka-protocol (the vendored 0.18 copy) charges
//! per byte on the produce and fetch paths.
//!
//! - `decode/produce_v9_8x128KiB`: `ProduceRequest::decode` at v9 (flexible) of a request that
//!   carries 8 partitions of ~128 KiB record batches each, from `Bytes` as the connection hands it
//!   over (so the records are sliced, not copied: the cost should be near zero per byte).
//! - `encode/fetch_v12_8x1MiB`: `ringlog::protocol::frame_response` (the broker's own framing:
//!   size prefix, response header v1, body) of a FetchResponse v12 with 8 partitions of ~1 MiB
//!   records each. Encoding copies the records into the frame buffer, so this is a memcpy-bound
//!   figure.
//!
//! The record data are real v2 batches from `ringlog::storage::batch::build`. Throughput is in
//! bytes of the encoded message. Run with:
//!
//! ```sh
//! cargo bench --bench codec
//! ```

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchResponse, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use ringlog::storage::batch;

const PARTITIONS: i32 = 8;
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

/// A valid batch of `count` × 1 KiB records.
fn records(count: usize) -> Bytes {
    let value = vec![0x5au8; 1024];
    let recs: Vec<batch::RecordRef<'_>> = (0..count).map(|_| (None, Some(value.as_slice()))).collect();
    batch::build(&recs, 1_700_000_000_000, -1, -1)
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("bench-topic"))
}

fn bench_decode(c: &mut Criterion) {
    let data = records(128);
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default().with_name(topic()).with_partition_data(
            (0..PARTITIONS)
                .map(|i| PartitionProduceData::default().with_index(i).with_records(Some(data.clone())))
                .collect(),
        ),
    ]);
    let mut buf = BytesMut::with_capacity(req.compute_size(PRODUCE_VERSION).expect("size"));
    req.encode(&mut buf, PRODUCE_VERSION).expect("encode");
    let body = buf.freeze();
    // Round-trip once so the bench measures a decode that succeeds.
    let back = ProduceRequest::decode(&mut body.clone(), PRODUCE_VERSION).expect("decode");
    assert_eq!(back.topic_data[0].partition_data.len(), PARTITIONS as usize);

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("produce_v9_8x128KiB", |b| {
        b.iter(|| {
            // Cloning `Bytes` is a refcount bump: the connection hands the decoder the same kind.
            let mut body = black_box(&body).clone();
            ProduceRequest::decode(&mut body, PRODUCE_VERSION).expect("decode")
        })
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let data = records(1024);
    let resp = FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default().with_topic(topic()).with_partitions(
            (0..PARTITIONS)
                .map(|i| {
                    PartitionData::default()
                        .with_partition_index(i)
                        .with_high_watermark(1 << 20)
                        .with_last_stable_offset(1 << 20)
                        .with_log_start_offset(0)
                        .with_aborted_transactions(Some(Vec::new()))
                        .with_records(Some(data.clone()))
                })
                .collect(),
        ),
    ]);
    let header_version = FetchResponse::header_version(FETCH_VERSION);
    let frame = ringlog::protocol::frame_response(7, header_version, &resp, FETCH_VERSION).expect("encode");

    let mut group = c.benchmark_group("encode");
    // 1.6 ms an iteration: 50 samples fit criterion's default 5 s.
    group.sample_size(50);
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("fetch_v12_8x1MiB", |b| {
        b.iter(|| ringlog::protocol::frame_response(7, header_version, black_box(&resp), FETCH_VERSION).expect("encode"))
    });
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
