//! Record batch hot path: what every produce request pays per byte before it reaches the disk.
//!
//! Measures the crate's own `ringlog::storage::batch` functions on valid Kafka v2 batches built
//! with `batch::build`:
//! - `validate`: length, magic and the CRC32C over the whole batch (a ~128 KiB batch of 128 × 1 KiB
//!   records, and a single 1 KiB record);
//! - `split_batches`: slicing a produce request's records region (8 batches of ~128 KiB) into
//!   batches without copying;
//! - `stamp`: the copy that assigns base offset and leader epoch, with and without LogAppendTime
//!   (which recomputes the CRC).
//!
//! Throughput is in bytes of batch data. Run with:
//!
//! ```sh
//! cargo bench --bench batch
//! ```

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringlog::storage::batch;

/// One batch of `count` records of `value_len` bytes each, null keys: the shape a Java producer
/// sends with `batch.size` near 128 KiB.
fn make_batch(count: usize, value_len: usize) -> Bytes {
    // Varied bytes, so nothing about the CRC input is special.
    let values: Vec<Vec<u8>> =
        (0..count).map(|i| (0..value_len).map(|j| (i * 31 + j * 7) as u8).collect()).collect();
    let records: Vec<batch::RecordRef<'_>> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    batch::build(&records, 1_700_000_000_000, -1, -1)
}

fn bench_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    for (name, b) in [("128KiB_batch_1KiB_records", make_batch(128, 1024)), ("1KiB_single_record", make_batch(1, 1024))] {
        // Fail loudly if the input is not a valid batch: a benchmark of the error path is useless.
        batch::validate(&b).expect("bench batch must be valid");
        group.throughput(Throughput::Bytes(b.len() as u64));
        group.bench_function(name, |bench| bench.iter(|| batch::validate(black_box(&b)).expect("valid")));
    }
    group.finish();
}

fn bench_split(c: &mut Criterion) {
    let one = make_batch(128, 1024);
    let region = Bytes::from((0..8).flat_map(|_| one.iter().copied()).collect::<Vec<u8>>());
    assert_eq!(batch::split_batches(&region).expect("splits").len(), 8);
    let mut group = c.benchmark_group("split_batches");
    group.throughput(Throughput::Bytes(region.len() as u64));
    group.bench_function("8x128KiB", |bench| bench.iter(|| batch::split_batches(black_box(&region)).expect("splits")));
    group.finish();
}

fn bench_stamp(c: &mut Criterion) {
    let b = make_batch(128, 1024);
    let mut group = c.benchmark_group("stamp");
    group.throughput(Throughput::Bytes(b.len() as u64));
    // CreateTime topics: copy + two header fields, no CRC (the CRC does not cover them).
    group.bench_function("128KiB_create_time", |bench| {
        bench.iter(|| batch::stamp(black_box(&b), black_box(42), 3, None))
    });
    // LogAppendTime topics: the copy plus a fresh CRC32C over the batch.
    group.bench_function("128KiB_log_append_time", |bench| {
        bench.iter(|| batch::stamp(black_box(&b), black_box(42), 3, Some(1_700_000_000_123)))
    });
    group.finish();
}

criterion_group!(benches, bench_validate, bench_split, bench_stamp);
criterion_main!(benches);
