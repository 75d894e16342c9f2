//! Cross-core round trip through the real router: `ringlog::router::Router::call` from shard 0 to
//! shard 1 and back, over glommio's `channel_mesh` (capacity `MESH_CAPACITY`, 1024), the way a
//! connection's shard forwards partition work to the owner shard.
//!
//! Two executors are started from a `LocalExecutorPoolBuilder` pinned one per core
//! (`PoolPlacement::MaxSpread(2)`, cores 0 and 1), each with a real `Router` and `Shard` built
//! exactly as `server::shard_main` builds them, and shard 1 serves its inbox with
//! `Router::serve_inbox`. The request is small on purpose: an OffsetForLeaderEpoch part for a
//! partition nobody owns, so the owner answers with a HashMap miss and the figure is the cost of
//! the hop itself (envelope, mesh send, wake-up of the peer, a task spawn there, oneshot reply,
//! wake-up back).
//!
//! Measured one call at a time (latency) and with 64 calls in flight (throughput: 64 caller tasks,
//! like 64 connections), each for `ROUNDTRIP_SECS` seconds (default 3), printing round trips per
//! second and p50/p99/p99.9 from hdrhistogram. Run with:
//!
//! ```sh
//! cargo bench --bench router_roundtrip
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use hdrhistogram::Histogram;
use ringlog::config::BrokerConfig;
use ringlog::metadata::MetadataBootstrap;
use ringlog::metrics::Metrics;
use ringlog::router::{Envelope, MESH_CAPACITY};
use ringlog::shard::messages::EpochQuery;
use ringlog::shard::{Router, Shard, ShardRequest, ShardResponse};
use ringlog::types::{ShardId, TopicPartition};

const SHARDS: usize = 2;

fn request() -> ShardRequest {
    ShardRequest::EpochEndOffsets(vec![(TopicPartition::new("no-such-topic", 0), EpochQuery { leader_epoch: 0, current_leader_epoch: -1 })])
}

async fn call(router: &Router) -> Duration {
    let started = Instant::now();
    let answer = router.call(ShardId(1), request()).await;
    let elapsed = started.elapsed();
    // A wrong answer would mean the hop did not happen as we think it did.
    assert!(matches!(answer, ShardResponse::Offsets(ref v) if v.len() == 1), "unexpected answer {answer:?}");
    elapsed
}

/// Runs `in_flight` callers, each its own glommio task doing one call at a time, for `secs`.
///
/// One task per caller, as in the broker (one task per connection), and not one task driving
/// 64 calls through a `FuturesUnordered`: that shape crashes glommio 0.9. The replies wake the
/// caller from the peer's thread, and each such foreign wake clones the task's waker into a queue
/// that the owner only drains between scheduler passes (up to the 100 ms preemption window).
/// `FuturesUnordered` re-registers and re-wakes its one parent task at every reply, so that task's
/// waker reference count (an `i16` in glommio) passed 32767 and glommio panicked with "Waker
/// invariant broken" (seen at ~230k round trips/s).
async fn run(router: &Rc<Router>, in_flight: usize, secs: f64) {
    // Warm-up: first calls allocate the peer's task slabs and fault in the channel pages.
    for _ in 0..1000 {
        call(router).await;
    }
    let hist = Rc::new(RefCell::new(Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram")));
    let deadline = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let callers: Vec<_> = (0..in_flight)
        .map(|_| {
            let (router, hist) = (Rc::clone(router), Rc::clone(&hist));
            glommio::spawn_local(async move {
                while started.elapsed() < deadline {
                    let latency = call(&router).await;
                    hist.borrow_mut().record(latency.as_nanos().max(1) as u64).expect("record");
                }
            })
        })
        .collect();
    futures::future::join_all(callers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let hist = hist.borrow();
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "in_flight={in_flight:<3} round_trips={:<8} {:>10.0} round trips/s  latency us: p50 {:>7.2} p99 {:>7.2} p99.9 {:>7.2} max {:>8.2}",
        hist.len(),
        hist.len() as f64 / elapsed,
        us(0.50),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0,
    );
}

fn main() {
    let secs: f64 = std::env::var("ROUNDTRIP_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(3.0);
    let dir = std::env::temp_dir().join(format!("ringlog-bench-router-{}", std::process::id()));
    let mut config = BrokerConfig::new(([127, 0, 0, 1], 0).into());
    config.data_dir = dir.clone();
    config.cores = SHARDS;
    config.admin_listen = None;
    let config = Arc::new(config);
    // An empty cluster: no topic, so no partition log is opened and no DMA file is touched.
    let metadata = MetadataBootstrap::load(&dir, SHARDS, 0).expect("metadata").handle();
    let mesh = MeshBuilder::<Envelope<Shard>, _>::full(SHARDS, MESH_CAPACITY);
    let metrics = Arc::new(Metrics::new(SHARDS));
    let finished = Arc::new(AtomicBool::new(false));

    println!("router_roundtrip: Router::call shard 0 -> shard 1, mesh capacity {MESH_CAPACITY}, {secs} s per run");
    LocalExecutorPoolBuilder::new(PoolPlacement::MaxSpread(SHARDS, None))
        .io_memory(512 * 1024)
        .ring_depth(128)
        .name("router-bench")
        .on_all_shards(move || async move {
            let (senders, receivers) = mesh.join().await.expect("mesh join");
            let me = ShardId(senders.peer_id());
            // SAFETY: sched_getcpu has no preconditions.
            let cpu = unsafe { libc::sched_getcpu() };
            println!("shard {} runs on cpu {cpu}", me.0);
            let shard_metrics = Arc::clone(&metrics.shards[me.0]);
            let owner = Rc::new(Shard::new(
                me,
                Arc::clone(&config),
                Arc::clone(&metadata),
                None,
                Arc::clone(&shard_metrics),
                false,
            ));
            let router = Rc::new(Router::new(owner, senders, shard_metrics, false));
            glommio::spawn_local(Rc::clone(&router).serve_inbox(receivers)).detach();
            if me.0 == 0 {
                run(&router, 1, secs).await;
                run(&router, 64, secs).await;
                finished.store(true, Ordering::SeqCst);
            } else {
                // The owner side only serves its inbox; it stays up until the caller is done.
                while !finished.load(Ordering::SeqCst) {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                }
            }
        })
        .expect("start shards")
        .join_all()
        .into_iter()
        .for_each(|r| r.expect("shard thread"));
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}
