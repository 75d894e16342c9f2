//! `ringlog-bench`: an OpenMessaging-Benchmark-style load harness that drives a Kafka-compatible
//! broker through librdkafka (the `rdkafka` crate), as users do.
//!
//! It reads a workload file, creates the topic, runs producer and consumer threads, records
//! publish latency (send → acknowledgement) and end-to-end latency (send → consumed) in
//! hdrhistograms, and writes `report.md`, `summary.json`, `latency.svg` and `throughput.svg`.
//! At a fixed rate, latency is measured from each record's *intended* send time, so a stalled
//! broker cannot hide its stall (coordinated omission).

mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

/// A workload, in the spirit of OpenMessaging Benchmark's workload files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    /// Name shown in the report.
    pub name: String,
    /// Topic to create and use.
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
    /// Replicas of the topic (a cluster's workloads use 3).
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    /// Topic configs to create it with (e.g. `min.insync.replicas`).
    #[serde(default)]
    pub topic_configs: std::collections::BTreeMap<String, String>,
    /// Bytes per record value.
    pub record_size: usize,
    /// "none" (no key), "random" or "round-robin" (explicit partition per record).
    #[serde(default = "default_keys")]
    pub key_distribution: String,
    /// Producer threads (one client each).
    pub producers: usize,
    /// Consumer threads (partitions split between them).
    pub consumers: usize,
    /// Total records per second over all producers; 0 = as fast as possible.
    #[serde(default)]
    pub producer_rate: u64,
    /// "0", "1" or "all".
    pub acks: String,
    /// librdkafka `linger.ms`.
    pub linger_ms: u64,
    /// librdkafka `batch.size`.
    pub batch_size: usize,
    /// Measured seconds.
    pub duration_s: u64,
    /// Seconds run before measuring.
    #[serde(default)]
    pub warmup_s: u64,
    /// Each producer stops after sending this many value bytes (0 = run for the duration):
    /// fills a backlog for a catch-up run.
    #[serde(default)]
    pub produce_bytes: u64,
    /// "end" (tail the log, the default) or "beginning" (a catch-up read of the backlog: measured
    /// from the first fetch, and the run ends once the consumers go idle).
    #[serde(default = "default_consume_from")]
    pub consume_from: String,
    /// Extra librdkafka properties for the consumers (e.g. `max.partition.fetch.bytes`).
    #[serde(default)]
    pub consumer_properties: std::collections::BTreeMap<String, String>,
    /// Extra librdkafka properties for the producers (e.g. `socket.nagle.disable`).
    #[serde(default)]
    pub producer_properties: std::collections::BTreeMap<String, String>,
    /// Records per transaction (each producer gets its own `transactional.id` and commits every
    /// this many records); 0 = no transactions.
    #[serde(default)]
    pub transaction_records: u64,
}

fn default_consume_from() -> String {
    "end".into()
}

impl Workload {
    fn catch_up(&self) -> bool {
        self.consume_from == "beginning"
    }
}

fn default_keys() -> String {
    "none".into()
}

#[derive(Parser)]
#[command(name = "ringlog-bench", about = "Load harness for Kafka-compatible brokers (librdkafka)")]
struct Cli {
    /// Workload file (TOML).
    #[arg(long)]
    workload: PathBuf,
    /// Broker bootstrap address.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Directory for the report.
    #[arg(long, default_value = "perf/out")]
    out: PathBuf,
    /// Override the workload's duration (seconds).
    #[arg(long)]
    duration: Option<u64>,
    /// Override the workload's warm-up (seconds).
    #[arg(long)]
    warmup: Option<u64>,
    /// Override the workload's rate (records/s, 0 = max).
    #[arg(long)]
    rate: Option<u64>,
}

/// Histograms in microseconds, 1 µs .. 60 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Shared measurement state.
pub struct Stats {
    measuring: AtomicBool,
    stop: AtomicBool,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    errors: AtomicU64,
    consumed: AtomicU64,
    consumed_bytes: AtomicU64,
    producers_done: AtomicU64,
    /// When the last record was consumed, in ns after `run_start`: ends a catch-up run's clock.
    last_consumed_ns: AtomicU64,
    /// ns after `run_start` read just before a non-blocking `poll`, or 0 during a blocking one:
    /// the deliveries that poll serves arrived before it began, so they share one clock read.
    poll_clock_ns: AtomicU64,
    publish: Mutex<Histogram<u64>>,
    e2e: Mutex<Histogram<u64>>,
    run_start: Instant,
}

impl Stats {
    /// ns since `run_start`.
    fn now_ns(&self) -> u64 {
        self.run_start.elapsed().as_nanos() as u64
    }

    /// Serves delivery reports without blocking, all timed by one clock read.
    fn poll_now<C: ProducerContext>(&self, producer: &BaseProducer<C>) {
        self.poll_clock_ns.store(self.now_ns().max(1), Ordering::Relaxed);
        producer.poll(Duration::ZERO);
    }

    /// Waits up to 1 ms for delivery reports; each is timed when it arrives.
    fn poll_wait<C: ProducerContext>(&self, producer: &BaseProducer<C>) {
        self.poll_clock_ns.store(0, Ordering::Relaxed);
        producer.poll(Duration::from_millis(1));
    }
}

struct BenchContext {
    stats: Arc<Stats>,
}

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    /// Nanoseconds after `run_start` at which the record was meant to be sent.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, intended_ns: usize) {
        let s = &self.stats;
        match result {
            Ok(m) => {
                if s.measuring.load(Ordering::Relaxed) {
                    let now = match s.poll_clock_ns.load(Ordering::Relaxed) {
                        0 => s.now_ns(),
                        cached => cached,
                    };
                    let us = now.saturating_sub(intended_ns as u64) / 1000;
                    if let Ok(mut h) = s.publish.lock() {
                        let _ = h.record(us.max(1));
                    }
                    s.acked.fetch_add(1, Ordering::Relaxed);
                    s.acked_bytes.fetch_add(m.payload_len() as u64, Ordering::Relaxed);
                }
            }
            Err(_) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn default_replication_factor() -> i32 {
    1
}

fn create_topic(bootstrap: &str, w: &Workload) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().map_err(|e| e.to_string())?;
    let mut topic = NewTopic::new(&w.topic, w.partitions, TopicReplication::Fixed(w.replication_factor));
    for (k, v) in &w.topic_configs {
        topic = topic.set(k, v);
    }
    let results = futures::executor::block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .map_err(|e| e.to_string())?;
    for r in results {
        if let Err((name, code)) = r
            && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(format!("cannot create {name}: {code:?}"));
        }
    }
    Ok(())
}

/// Records a producer sends per clock read and per delivery poll. Their timestamps differ by the
/// few microseconds the burst takes, far below the latencies measured.
const BURST: u64 = 32;

/// One burst of records, handed to librdkafka in one `rd_kafka_produce_batch` call, the C API's
/// bulk path. Per-record `BaseProducer::send` built a C string of the topic name, looked the topic
/// up and read the clock for every record: with the producer thread at 22% of both CPUs (a
/// system-wide profile, acks=1 at max rate), that was CPU the broker under test could not have.
/// librdkafka still copies each record, as `send` does.
struct BurstBuffer<'a> {
    /// The topic handle, looked up once.
    topic: *mut rdkafka::bindings::rd_kafka_topic_t,
    /// `BURST` records' values, back to back.
    values: Vec<u8>,
    /// Each record's key (used with `key_distribution = "random"`).
    keys: Vec<[u8; 8]>,
    /// The records of the burst being built; `len` of them are filled in.
    messages: Vec<rdkafka::bindings::rd_kafka_message_t>,
    len: usize,
    record_size: usize,
    key_distribution: KeyDistribution,
    partitions: u64,
    _producer: std::marker::PhantomData<&'a BaseProducer<BenchContext>>,
}

/// How a producer picks each record's partition (the workload's `key_distribution`).
#[derive(Clone, Copy, PartialEq)]
enum KeyDistribution {
    /// No key: librdkafka's default partitioner (sticky for keyless records).
    None,
    /// A random 8-byte key, hashed by librdkafka's partitioner.
    Random,
    /// An explicit partition per record, in turn.
    RoundRobin,
}

impl<'a> BurstBuffer<'a> {
    /// `None` if librdkafka cannot create the topic handle.
    fn new(producer: &'a BaseProducer<BenchContext>, w: &Workload, record_size: usize) -> Option<Self> {
        use rdkafka::bindings as rd;
        let name = std::ffi::CString::new(w.topic.as_str()).ok()?;
        // SAFETY: the producer's handle is alive for 'a; the topic handle is destroyed in Drop,
        // within 'a.
        let topic = unsafe { rd::rd_kafka_topic_new(producer.client().native_ptr(), name.as_ptr(), std::ptr::null_mut()) };
        if topic.is_null() {
            return None;
        }
        let burst = BURST as usize;
        Some(BurstBuffer {
            topic,
            values: vec![0u8; burst * record_size],
            keys: vec![[0u8; 8]; burst],
            // SAFETY: rd_kafka_message_t is a plain C struct of integers and pointers; all
            // zeros is a valid (empty) value.
            messages: (0..burst).map(|_| unsafe { std::mem::zeroed() }).collect(),
            len: 0,
            record_size,
            key_distribution: match w.key_distribution.as_str() {
                "random" => KeyDistribution::Random,
                "round-robin" => KeyDistribution::RoundRobin,
                _ => KeyDistribution::None,
            },
            partitions: w.partitions.max(1) as u64,
            _producer: std::marker::PhantomData,
        })
    }

    /// Adds a record stamped with `wall_stamp_ns` (read back by the consumer), whose delivery
    /// report carries `intended_ns`. `random` is its key, `seq` picks its partition in turn.
    fn push(&mut self, wall_stamp_ns: u64, intended_ns: u64, random: u64, seq: u64) {
        use rdkafka::bindings as rd;
        let i = self.len;
        let value = &mut self.values[i * self.record_size..(i + 1) * self.record_size];
        value[..8].copy_from_slice(&wall_stamp_ns.to_be_bytes());
        self.keys[i] = random.to_be_bytes();
        let m = &mut self.messages[i];
        m.err = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
        m.payload = value.as_mut_ptr().cast();
        m.len = self.record_size;
        (m.key, m.key_len) = if self.key_distribution == KeyDistribution::Random {
            (self.keys[i].as_mut_ptr().cast(), 8)
        } else {
            (std::ptr::null_mut(), 0)
        };
        // -1 is RD_KAFKA_PARTITION_UA: the partitioner decides.
        m.partition = if self.key_distribution == KeyDistribution::RoundRobin { (seq % self.partitions) as i32 } else { -1 };
        // The delivery report hands this back as `BenchContext`'s `DeliveryOpaque`.
        m._private = intended_ns as usize as *mut std::ffi::c_void;
        self.len += 1;
    }

    /// Hands the burst to librdkafka and empties it. Returns how many records were tried and
    /// how many were queued; the others (a full local queue) are dropped, and the caller sends
    /// that many more later.
    fn send(&mut self) -> (u64, u64) {
        use rdkafka::bindings as rd;
        let tried = std::mem::take(&mut self.len);
        if tried == 0 {
            return (0, 0);
        }
        // F_PARTITION: honour each record's own partition (UA lets the partitioner choose).
        let flags = rd::RD_KAFKA_MSG_F_COPY | rd::RD_KAFKA_MSG_F_PARTITION;
        // SAFETY: the first `tried` messages point into `values` and `keys`, which librdkafka
        // copies (F_COPY) before returning; the topic handle is alive.
        let queued = unsafe { rd::rd_kafka_produce_batch(self.topic, -1, flags, self.messages.as_mut_ptr(), tried as i32) };
        (tried as u64, queued.max(0) as u64)
    }
}

impl Drop for BurstBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_topic_new in `new`, destroyed once.
        unsafe { rdkafka::bindings::rd_kafka_topic_destroy(self.topic) };
    }
}

fn producer_thread(bootstrap: String, w: Workload, index: usize, stats: Arc<Stats>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("acks", &w.acks)
            .set("linger.ms", w.linger_ms.to_string())
            .set("batch.size", w.batch_size.to_string())
            .set("queue.buffering.max.kbytes", "1048576")
            .set("enable.idempotence", "false");
        for (key, value) in &w.producer_properties {
            config.set(key, value);
        }
        let txn_records = w.transaction_records;
        if txn_records > 0 {
            config.set("transactional.id", format!("ringlog-bench-{index}"));
        }
        let producer: BaseProducer<BenchContext> = match config.create_with_context(BenchContext { stats: Arc::clone(&stats) }) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("producer {index}: {e}");
                return;
            }
        };
        let per_producer_rate = w.producer_rate as f64 / w.producers as f64;
        let record_size = w.record_size.max(8);
        let Some(mut burst_buf) = BurstBuffer::new(&producer, &w, record_size) else {
            eprintln!("producer {index}: cannot open topic {}", w.topic);
            return;
        };
        let txn_timeout = Duration::from_secs(60);
        if txn_records > 0
            && let Err(e) = producer.init_transactions(txn_timeout).and_then(|()| producer.begin_transaction())
        {
            eprintln!("producer {index}: cannot start a transaction: {e}");
            return;
        }
        // Records queued in the open transaction.
        let mut in_txn: u64 = 0;
        let mut seq: u64 = 0;
        let mut rng: u64 = 0x9E37_79B9_7F4A_7C15 ^ index as u64;
        let start = stats.now_ns();
        // The wall clock at `run_start`: the consumer reads the stamp with its own clock.
        let wall_at_start = wall_ns().saturating_sub(start);
        let limit = if w.produce_bytes > 0 { w.produce_bytes / record_size as u64 } else { u64::MAX };
        // At a fixed rate, when record `seq` is meant to be sent (ns after `run_start`).
        let due_ns = |seq: u64| start + (seq as f64 * 1e9 / per_producer_rate) as u64;
        while !stats.stop.load(Ordering::Relaxed) && seq < limit {
            // One clock read per burst: at max rate a burst's records are meant to go now; at a
            // fixed rate each is timed from its own due time (coordinated omission).
            let now = stats.now_ns();
            let burst = if per_producer_rate > 0.0 {
                let due = ((now - start) as f64 * per_producer_rate / 1e9) as u64 + 1;
                if due <= seq {
                    // Sleep rather than spin: on a 2-core machine a spinning producer takes a
                    // core from the broker. librdkafka's poll counts whole milliseconds (a
                    // shorter timeout returns at once), so short waits sleep the thread.
                    let wait = Duration::from_nanos(due_ns(seq).saturating_sub(now));
                    if wait >= Duration::from_millis(1) {
                        stats.poll_wait(&producer);
                    } else {
                        std::thread::sleep(wait);
                    }
                    continue;
                }
                (due - seq).min(BURST)
            } else {
                BURST
            };
            // A burst never crosses a transaction's end.
            let burst = if txn_records > 0 { burst.min(txn_records - in_txn) } else { burst };
            for i in 0..burst.min(limit - seq) {
                let intended = if per_producer_rate > 0.0 { due_ns(seq + i) } else { now };
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                burst_buf.push(wall_at_start + intended, intended, rng, seq + i);
            }
            let (tried, sent) = burst_buf.send();
            seq += sent;
            in_txn += sent;
            if txn_records > 0 && in_txn >= txn_records {
                // Commit flushes the transaction's records, then ends it: the producer waits.
                if let Err(e) = producer.commit_transaction(txn_timeout).and_then(|()| producer.begin_transaction()) {
                    eprintln!("producer {index}: transaction failed: {e}");
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                in_txn = 0;
                continue;
            }
            if sent < tried {
                // The local queue is full: wait for deliveries to free it.
                stats.poll_wait(&producer);
            } else {
                stats.poll_now(&producer);
            }
        }
        if txn_records > 0 {
            let _ = producer.commit_transaction(txn_timeout);
        }
        let _ = producer.flush(Duration::from_secs(60));
        stats.producers_done.fetch_add(1, Ordering::SeqCst);
    })
}

fn consumer_thread(bootstrap: String, w: Workload, index: usize, stats: Arc<Stats>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "ringlog-bench")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100");
        for (key, value) in &w.consumer_properties {
            config.set(key, value);
        }
        let consumer: BaseConsumer = match config.create() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("consumer {index}: {e}");
                return;
            }
        };
        let mut tpl = TopicPartitionList::new();
        let from = if w.catch_up() { Offset::Beginning } else { Offset::End };
        for p in (0..w.partitions).filter(|p| *p as usize % w.consumers == index) {
            let _ = tpl.add_partition_offset(&w.topic, p, from);
        }
        if consumer.assign(&tpl).is_err() {
            return;
        }
        drain(&consumer, &stats, !w.catch_up());
    })
}

/// Consumes until told to stop, draining librdkafka's queue up to a thousand messages at a time
/// with `rd_kafka_consume_batch_queue`, the C API's bulk path. Per-message `poll` through the Rust
/// wrapper cost more CPU than the broker on this 2-core machine, and the harness measures the
/// broker, so the client does as little per message as librdkafka allows.
///
/// Tailing (`e2e`), each record's age is recorded against one wall-clock read per batch: the
/// batch's records all reach the application at that moment. A catch-up read records no ages
/// (they are not latencies there), only counts, bytes and the time of the last record.
fn drain(consumer: &BaseConsumer, stats: &Stats, e2e: bool) {
    use rdkafka::bindings as rd;
    const BATCH: usize = 1000;
    // SAFETY: the consumer outlives the queue handle, which is destroyed before returning; each
    // message returned by the batch call is read once, while alive, and destroyed once.
    unsafe {
        let queue = rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr());
        let mut messages: Vec<*mut rd::rd_kafka_message_t> = vec![std::ptr::null_mut(); BATCH];
        while !stats.stop.load(Ordering::Relaxed) {
            // The batch call waits until it has BATCH messages or times out, which would hold a
            // tailing consumer's records back: wait for one, then take what is already queued.
            let first = rd::rd_kafka_consume_queue(queue, 100);
            if first.is_null() {
                continue;
            }
            messages[0] = first;
            let more = rd::rd_kafka_consume_batch_queue(queue, 0, messages[1..].as_mut_ptr(), BATCH - 1);
            let batch = &messages[..1 + more.max(0) as usize];
            let measuring = stats.measuring.load(Ordering::Relaxed);
            let (mut count, mut bytes) = (0u64, 0u64);
            if measuring {
                let wall = wall_ns();
                let mut ages = e2e.then(|| stats.e2e.lock().ok()).flatten();
                for &m in batch {
                    if (*m).err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                        continue;
                    }
                    count += 1;
                    bytes += (*m).len as u64;
                    if let Some(h) = ages.as_mut().filter(|_| !(*m).payload.is_null() && (*m).len >= 8) {
                        let stamp = std::slice::from_raw_parts((*m).payload as *const u8, 8);
                        let sent = u64::from_be_bytes(stamp.try_into().unwrap_or_default());
                        let _ = h.record((wall.saturating_sub(sent) / 1000).max(1));
                    }
                }
            }
            for &m in batch {
                rd::rd_kafka_message_destroy(m);
            }
            if count > 0 {
                stats.consumed.fetch_add(count, Ordering::Relaxed);
                stats.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
                stats.last_consumed_ns.store(stats.now_ns(), Ordering::Relaxed);
            }
        }
        rd::rd_kafka_queue_destroy(queue);
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since measuring began.
    pub t: u64,
    /// Records acknowledged in that second.
    pub published: u64,
    /// Records consumed in that second.
    pub consumed: u64,
}

fn main() {
    let cli = Cli::parse();
    let text = std::fs::read_to_string(&cli.workload).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", cli.workload.display());
        std::process::exit(2)
    });
    let mut w: Workload = toml::from_str(&text).unwrap_or_else(|e| {
        eprintln!("bad workload {}: {e}", cli.workload.display());
        std::process::exit(2)
    });
    if let Some(d) = cli.duration {
        w.duration_s = d;
    }
    if let Some(d) = cli.warmup {
        w.warmup_s = d;
    }
    if let Some(r) = cli.rate {
        w.producer_rate = r;
    }
    if let Err(e) = create_topic(&cli.bootstrap, &w) {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let stats = Arc::new(Stats {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        acked: AtomicU64::new(0),
        acked_bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        consumed_bytes: AtomicU64::new(0),
        producers_done: AtomicU64::new(0),
        last_consumed_ns: AtomicU64::new(0),
        poll_clock_ns: AtomicU64::new(0),
        publish: Mutex::new(histogram()),
        e2e: Mutex::new(histogram()),
        run_start: Instant::now(),
    });
    if w.catch_up() {
        // A catch-up read is measured from its first fetch.
        stats.measuring.store(true, Ordering::SeqCst);
    }
    let mut threads: Vec<_> = (0..w.consumers).map(|i| consumer_thread(cli.bootstrap.clone(), w.clone(), i, Arc::clone(&stats))).collect();
    if !w.catch_up() {
        std::thread::sleep(Duration::from_secs(2)); // consumers assign at the end before producing starts
    }
    threads.extend((0..w.producers).map(|i| producer_thread(cli.bootstrap.clone(), w.clone(), i, Arc::clone(&stats))));
    std::thread::sleep(Duration::from_secs(w.warmup_s));
    stats.measuring.store(true, Ordering::SeqCst);
    let measure_start = Instant::now();
    let mut samples = Vec::new();
    let (mut last_p, mut last_c) = (0, 0);
    let mut elapsed = 0.0;
    for t in 1..=w.duration_s {
        let next = measure_start + Duration::from_secs(t);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let (p, c) = (stats.acked.load(Ordering::Relaxed), stats.consumed.load(Ordering::Relaxed));
        samples.push(Sample { t, published: p - last_p, consumed: c - last_c });
        (last_p, last_c) = (p, c);
        elapsed = measure_start.elapsed().as_secs_f64();
        let producers_finished = w.producers > 0 && stats.producers_done.load(Ordering::SeqCst) == w.producers as u64;
        if producers_finished && w.consumers == 0 {
            break;
        }
        // A catch-up run ends when the backlog is drained: the rate covers the seconds that read.
        if w.catch_up() && c > 0 && samples.last().is_some_and(|s| s.consumed == 0) {
            samples.pop();
            let last = Duration::from_nanos(stats.last_consumed_ns.load(Ordering::Relaxed));
            elapsed = (stats.run_start + last).saturating_duration_since(measure_start).as_secs_f64();
            break;
        }
    }
    stats.measuring.store(false, Ordering::SeqCst);
    stats.stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    let result = report::Outcome::new(&w, &cli.bootstrap, &stats, elapsed, samples);
    if let Err(e) = report::write(&cli.out, &result, &stats) {
        eprintln!("cannot write report: {e}");
        std::process::exit(1);
    }
    println!("{}", result.summary_line());
}

impl Stats {
    /// Publish-latency histogram.
    pub fn publish(&self) -> Histogram<u64> {
        self.publish.lock().map(|h| h.clone()).unwrap_or_else(|_| histogram())
    }

    /// End-to-end latency histogram.
    pub fn e2e(&self) -> Histogram<u64> {
        self.e2e.lock().map(|h| h.clone()).unwrap_or_else(|_| histogram())
    }

    /// (acknowledged, acknowledged bytes, errors, consumed, consumed bytes).
    pub fn counts(&self) -> (u64, u64, u64, u64, u64) {
        (
            self.acked.load(Ordering::Relaxed),
            self.acked_bytes.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.consumed.load(Ordering::Relaxed),
            self.consumed_bytes.load(Ordering::Relaxed),
        )
    }
}
