//! Partition log append throughput and latency on a real disk: `PartitionLog::append` of 128 KiB
//! batches (128 × 1 KiB records, built with `batch::build`), waiting for what each acks level
//! waits for in the broker:
//! - `acks=1`: the O_DIRECT write has completed;
//! - `acks=-1`: the write and its `fdatasync` have completed.
//!
//! Each is run with one append in flight (the latency a lone producer sees) and with 8 in flight
//! (so the group commit shares writes and fdatasyncs between appends). Every scenario opens a
//! fresh partition in a temp directory under `$TMPDIR` (default `/tmp`, which must be a real disk:
//! O_DIRECT is refused on tmpfs), inside one glommio `LocalExecutor` with 512 KiB of io_memory
//! (RLIMIT_MEMLOCK is 8 MiB here), as a broker shard would.
//!
//! It is a plain `main()` (`harness = false`), not criterion: a partition log belongs to one
//! long-lived executor, which criterion's iteration model does not fit. Each scenario runs for
//! `APPEND_SECS` seconds (default 4) or `APPEND_MAX` appends (default 4000), whichever ends first,
//! and prints MB/s (10^6 bytes) and p50/p99/p99.9 append latency from hdrhistogram. Run with:
//!
//! ```sh
//! cargo bench --bench segment_append
//! ```

mod common;

use common::{check_real_disk, env_or};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use ringlog::config::{BrokerConfig, TopicConfig};
use ringlog::metrics::ShardMetrics;
use ringlog::storage::cache::BatchCache;
use ringlog::storage::journal::AppendJournal;
use ringlog::storage::{PartitionLog, ShardLogContext, SyncRounds, prime_dma_probe};
use ringlog::types::TopicPartition;

/// Appends before timing starts in each scenario: the first writes pay for a new file's first
/// blocks and a cold ring.
const WARMUP: usize = 16;

struct Scenario {
    acks: i16,
    in_flight: usize,
}


async fn run_scenario(dir: &Path, s: &Scenario, batch: &Bytes, secs: f64, max: usize) {
    let defaults = BrokerConfig::new(([127, 0, 0, 1], 0).into());
    let config = TopicConfig::resolve(&defaults.topic_defaults, &BTreeMap::new());
    let metrics = Arc::new(ShardMetrics::new());
    let cache = Rc::new(BatchCache::new(64 << 20, Arc::clone(&metrics)));
    // The broker's default append journal, so each append pays for its copy into it.
    let journal = defaults.append_journal_dir.as_ref().and_then(|jdir| {
        AppendJournal::create(jdir, dir, 0, defaults.append_journal_bytes, metrics).ok().map(Rc::new)
    });
    let tp = TopicPartition::new(format!("bench-acks{}-inflight{}", s.acks, s.in_flight), 0);
    // The broker's default sync rounds, so acks=all is measured as the broker runs it.
    let shard = ShardLogContext {
        cache,
        sync_rounds: SyncRounds::new(Duration::from_micros(ringlog::config::DEFAULT_SYNC_LINGER_US)),
        visible_on_append: false,
        journal: journal.clone(),
        write_delay: Duration::ZERO,
    };
    let log = PartitionLog::open(tp, 0, dir, 0, config, shard)
        .await
        .expect("open partition log");

    let append_one = |log: Rc<PartitionLog>| {
        let batch = batch.clone();
        let acks = s.acks;
        async move {
            let started = Instant::now();
            let outcome = log.append(&batch, acks).expect("append");
            outcome.done.expect("acks != 0 has a waiter").await.expect("reply").expect("write");
            started.elapsed()
        }
    };
    for _ in 0..WARMUP {
        append_one(Rc::clone(&log)).await;
    }

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let deadline = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut issued = 0usize;
    let mut done = 0usize;
    let mut inflight = FuturesUnordered::new();
    loop {
        while inflight.len() < s.in_flight && issued < max && started.elapsed() < deadline {
            inflight.push(append_one(Rc::clone(&log)));
            issued += 1;
        }
        match inflight.next().await {
            Some(latency) => {
                hist.record(latency.as_micros().max(1) as u64).expect("record");
                done += 1;
            }
            None => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let bytes = (done * batch.len()) as f64;
    println!(
        "acks={:<2} in_flight={:<2} appends={:<5} {:>8.1} MB/s {:>8.0} appends/s  latency us: p50 {:>6} p99 {:>6} p99.9 {:>6} max {:>6}",
        s.acks,
        s.in_flight,
        done,
        bytes / elapsed / 1e6,
        done as f64 / elapsed,
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max(),
    );
    log.close().await.expect("close");
    if let Some(journal) = journal {
        journal.remove();
    }
}

fn main() {
    let secs: f64 = env_or("APPEND_SECS", 4.0);
    let max: usize = env_or("APPEND_MAX", 4000);
    let root: PathBuf = std::env::temp_dir().join(format!("ringlog-bench-append-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("create temp dir");
    check_real_disk(&root);

    let value = vec![0xa5u8; 1024];
    let records: Vec<ringlog::storage::batch::RecordRef<'_>> = (0..128).map(|_| (None, Some(value.as_slice()))).collect();
    let batch = ringlog::storage::batch::build(&records, 1_700_000_000_000, -1, -1);
    println!("segment_append: {} byte batches, data dir {}, up to {secs} s or {max} appends per scenario", batch.len(), root.display());

    let dir = root.clone();
    LocalExecutorBuilder::new(Placement::Fixed(0))
        .name("append-bench")
        .io_memory(512 * 1024)
        .ring_depth(128)
        .spawn(move || async move {
            // glommio 0.9 decides polled I/O from the first DMA file a thread opens on a disk:
            // open a non-empty one first, as every broker shard does.
            prime_dma_probe(&dir).await.expect("prime dma probe");
            for s in [
                Scenario { acks: 1, in_flight: 1 },
                Scenario { acks: -1, in_flight: 1 },
                Scenario { acks: 1, in_flight: 8 },
                Scenario { acks: -1, in_flight: 8 },
            ] {
                run_scenario(&dir, &s, &batch, secs, max).await;
            }
        })
        .expect("start executor")
        .join()
        .expect("executor");
    std::fs::remove_dir_all(&root).expect("remove temp dir");
}
