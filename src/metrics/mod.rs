//! Metrics: per-shard counters and hdrhistogram latencies, served as Prometheus text on the admin
//! listener (`/metrics`), with `/health`.
//!
//! Each shard writes only its own [`ShardMetrics`] (atomics, and histograms behind a mutex that
//! only the scraper ever contends for); the admin listener on shard 0 reads them all.

pub mod http;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest API key counted per key.
const MAX_API_KEY: usize = 100;

/// A latency histogram in microseconds, 1 µs to 60 s (auto-resizing beyond).
pub struct LatencyHistogram(Mutex<Option<Histogram<u64>>>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).ok()))
    }
}

impl LatencyHistogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        if let Ok(mut guard) = self.0.lock()
            && let Some(h) = guard.as_mut()
        {
            let _ = h.record((d.as_micros() as u64).max(1));
        }
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.snapshot().map_or(0, |h| h.len())
    }

    fn snapshot(&self) -> Option<Histogram<u64>> {
        self.0.lock().ok().and_then(|h| h.clone())
    }
}

/// One shard's counters.
#[derive(Default)]
pub struct ShardMetrics {
    requests: Vec<AtomicU64>,
    /// Request bytes read from clients.
    pub bytes_in: AtomicU64,
    /// Response bytes written to clients.
    pub bytes_out: AtomicU64,
    /// Record bytes of cold reads the kernel spliced from segment files to sockets.
    pub spliced_bytes: AtomicU64,
    /// Requests sent to another shard.
    pub hops: AtomicU64,
    /// Batches copied into the append journal (visible before their write).
    pub journal_batches: AtomicU64,
    /// Batches the append journal had no room for (visible once written).
    pub journal_full: AtomicU64,
    /// Fetch reads served from the batch cache.
    pub cache_hits: AtomicU64,
    /// Fetch reads that went to disk.
    pub cache_misses: AtomicU64,
    /// Produce request latency.
    pub produce_latency: LatencyHistogram,
    /// Fetch request latency (including long-poll waits).
    pub fetch_latency: LatencyHistogram,
    /// Cross-core round trips.
    pub hop_latency: LatencyHistogram,
    /// fdatasync calls.
    pub fsync_latency: LatencyHistogram,
    /// From the first batch queued for a group commit to its write: how long produced data waits
    /// before consumers can read it.
    pub append_visible_latency: LatencyHistogram,
}

impl ShardMetrics {
    /// Fresh counters.
    pub fn new() -> Self {
        ShardMetrics { requests: (0..=MAX_API_KEY).map(|_| AtomicU64::new(0)).collect(), ..Default::default() }
    }

    /// Counts a request of `api_key`.
    pub fn count_request(&self, api_key: i16) {
        if let Some(c) = self.requests.get(api_key.max(0) as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A metric's name, help text, and where each shard keeps it.
type Series<T> = (&'static str, &'static str, fn(&ShardMetrics) -> &T);

/// Every shard's metrics.
pub struct Metrics {
    /// By shard index.
    pub shards: Vec<Arc<ShardMetrics>>,
    /// Shards that have recovered their partitions and accept connections.
    pub shards_listening: AtomicUsize,
}

impl Metrics {
    /// Metrics for `n` shards.
    pub fn new(n: usize) -> Self {
        Metrics { shards: (0..n).map(|_| Arc::new(ShardMetrics::new())).collect(), shards_listening: AtomicUsize::new(0) }
    }

    /// Whether every shard accepts connections: until then a client may be refused or reset.
    pub fn ready(&self) -> bool {
        self.shards_listening.load(Ordering::Acquire) == self.shards.len()
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters: [Series<AtomicU64>; 8] = [
            ("ringlog_bytes_in_total", "Request bytes read from clients.", |m| &m.bytes_in),
            ("ringlog_bytes_out_total", "Response bytes written to clients.", |m| &m.bytes_out),
            ("ringlog_spliced_bytes_total", "Cold-read bytes spliced from segment files to sockets.", |m| &m.spliced_bytes),
            ("ringlog_cross_core_hops_total", "Requests forwarded to another shard.", |m| &m.hops),
            ("ringlog_journal_batches_total", "Batches copied into the append journal, visible before their write.", |m| &m.journal_batches),
            ("ringlog_journal_full_total", "Batches the append journal had no room for, visible once written.", |m| &m.journal_full),
            ("ringlog_batch_cache_hits_total", "Fetch reads served from the batch cache.", |m| &m.cache_hits),
            ("ringlog_batch_cache_misses_total", "Fetch reads that went to disk.", |m| &m.cache_misses),
        ];
        let _ = writeln!(out, "# HELP ringlog_requests_total Kafka requests by API key.\n# TYPE ringlog_requests_total counter");
        for (shard, m) in self.shards.iter().enumerate() {
            for (key, c) in m.requests.iter().enumerate() {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    let _ = writeln!(out, "ringlog_requests_total{{shard=\"{shard}\",api_key=\"{key}\"}} {v}");
                }
            }
        }
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (shard, m) in self.shards.iter().enumerate() {
                let _ = writeln!(out, "{name}{{shard=\"{shard}\"}} {}", get(m).load(Ordering::Relaxed));
            }
        }
        let _ = writeln!(out, "# HELP ringlog_batch_cache_hit_ratio Share of fetch reads served from the cache.\n# TYPE ringlog_batch_cache_hit_ratio gauge");
        for (shard, m) in self.shards.iter().enumerate() {
            let (h, miss) = (m.cache_hits.load(Ordering::Relaxed), m.cache_misses.load(Ordering::Relaxed));
            let ratio = if h + miss == 0 { 0.0 } else { h as f64 / (h + miss) as f64 };
            let _ = writeln!(out, "ringlog_batch_cache_hit_ratio{{shard=\"{shard}\"}} {ratio}");
        }
        let histograms: [Series<LatencyHistogram>; 5] = [
            ("ringlog_produce_latency_seconds", "Produce request latency.", |m| &m.produce_latency),
            ("ringlog_fetch_latency_seconds", "Fetch request latency, long-poll waits included.", |m| &m.fetch_latency),
            ("ringlog_cross_core_hop_latency_seconds", "Cross-core round trip latency.", |m| &m.hop_latency),
            ("ringlog_fsync_latency_seconds", "fdatasync latency.", |m| &m.fsync_latency),
            (
                "ringlog_append_visible_latency_seconds",
                "From a group commit's first queued batch to its write.",
                |m| &m.append_visible_latency,
            ),
        ];
        for (name, help, get) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
            for (shard, m) in self.shards.iter().enumerate() {
                let Some(h) = get(m).snapshot() else { continue };
                for q in [0.5, 0.9, 0.99, 0.999] {
                    let secs = h.value_at_quantile(q) as f64 / 1e6;
                    let _ = writeln!(out, "{name}{{shard=\"{shard}\",quantile=\"{q}\"}} {secs}");
                }
                let sum = h.mean() * h.len() as f64 / 1e6;
                let _ = writeln!(out, "{name}_sum{{shard=\"{shard}\"}} {sum}\n{name}_count{{shard=\"{shard}\"}} {}", h.len());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new(2);
        m.shards[1].count_request(0);
        ShardMetrics::add(&m.shards[1].bytes_in, 42);
        m.shards[0].fsync_latency.record(Duration::from_micros(300));
        let text = m.render();
        assert!(text.contains("ringlog_requests_total{shard=\"1\",api_key=\"0\"} 1"));
        assert!(text.contains("ringlog_bytes_in_total{shard=\"1\"} 42"));
        assert!(text.contains("ringlog_fsync_latency_seconds_count{shard=\"0\"} 1"));
        assert!(text.contains("# TYPE ringlog_fsync_latency_seconds summary"));
    }
}
