//! The benchmark report: Markdown, JSON and two SVG charts (plotters).

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::{Sample, Stats, Workload};

/// Percentiles reported, as in OpenMessaging Benchmark.
pub const PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// (percentile, milliseconds).
    pub percentiles: Vec<(f64, f64)>,
    /// Samples recorded.
    pub count: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        Latency {
            percentiles: PERCENTILES.iter().map(|p| (*p, h.value_at_percentile(*p) as f64 / 1000.0)).collect(),
            count: h.len(),
        }
    }
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The workload as run.
    pub workload: Workload,
    /// Broker address.
    pub bootstrap: String,
    /// Measured seconds.
    pub seconds: f64,
    /// Records acknowledged per second.
    pub publish_msgs_per_s: f64,
    /// Acknowledged MB/s (10^6 bytes).
    pub publish_mb_per_s: f64,
    /// Records consumed per second.
    pub consume_msgs_per_s: f64,
    /// Consumed MB/s.
    pub consume_mb_per_s: f64,
    /// Failed deliveries.
    pub errors: u64,
    /// Send → acknowledgement.
    pub publish_latency: Latency,
    /// Send → consumed.
    pub e2e_latency: Latency,
    /// Per-second throughput.
    pub samples: Vec<Sample>,
}

impl Outcome {
    /// Summarises a run.
    pub fn new(w: &Workload, bootstrap: &str, stats: &Stats, seconds: f64, samples: Vec<Sample>) -> Self {
        let (acked, acked_bytes, errors, consumed, consumed_bytes) = stats.counts();
        Outcome {
            workload: w.clone(),
            bootstrap: bootstrap.to_string(),
            seconds,
            publish_msgs_per_s: acked as f64 / seconds,
            publish_mb_per_s: acked_bytes as f64 / seconds / 1e6,
            consume_msgs_per_s: consumed as f64 / seconds,
            consume_mb_per_s: consumed_bytes as f64 / seconds / 1e6,
            errors,
            publish_latency: Latency::of(&stats.publish()),
            e2e_latency: Latency::of(&stats.e2e()),
            samples,
        }
    }

    /// One line for the terminal.
    pub fn summary_line(&self) -> String {
        let p = |l: &Latency, q: f64| l.percentiles.iter().find(|(x, _)| *x == q).map(|(_, v)| *v).unwrap_or(0.0);
        format!(
            "{}: publish {:.0} msg/s {:.1} MB/s, consume {:.0} msg/s; publish p99 {:.2} ms; e2e p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms; errors {}",
            self.workload.name,
            self.publish_msgs_per_s,
            self.publish_mb_per_s,
            self.consume_msgs_per_s,
            p(&self.publish_latency, 99.0),
            p(&self.e2e_latency, 50.0),
            p(&self.e2e_latency, 99.0),
            p(&self.e2e_latency, 99.9),
            self.errors
        )
    }

    fn markdown(&self) -> String {
        let w = &self.workload;
        let mut md = format!("# Benchmark: {}\n\n", w.name);
        md += &format!(
            "Workload: topic `{}`, {} partitions, {} B records, keys {}, {} producer(s), {} consumer(s), rate {}, acks={}, linger.ms={}, batch.size={}, {} s measured after {} s warm-up. Broker `{}`.\n\n",
            w.topic, w.partitions, w.record_size, w.key_distribution, w.producers, w.consumers,
            if w.producer_rate == 0 { "max".to_string() } else { format!("{}/s", w.producer_rate) },
            w.acks, w.linger_ms, w.batch_size, w.duration_s, w.warmup_s, self.bootstrap
        );
        md += "| | msgs/s | MB/s |\n|---|---:|---:|\n";
        md += &format!("| publish (acknowledged) | {:.0} | {:.1} |\n", self.publish_msgs_per_s, self.publish_mb_per_s);
        md += &format!("| consume | {:.0} | {:.1} |\n\n", self.consume_msgs_per_s, self.consume_mb_per_s);
        md += "| latency (ms) | p50 | p90 | p99 | p99.9 | p99.99 | max |\n|---|---:|---:|---:|---:|---:|---:|\n";
        for (name, l) in [("publish", &self.publish_latency), ("end-to-end", &self.e2e_latency)] {
            md += &format!("| {name} |");
            for (_, v) in &l.percentiles {
                md += &format!(" {v:.3} |");
            }
            md += "\n";
        }
        md += &format!("\nFailed deliveries: {}.\n\n![latency](latency.svg)\n\n![throughput](throughput.svg)\n", self.errors);
        md
    }
}

/// Writes report.md, summary.json, latency.svg and throughput.svg into `dir`.
pub fn write(dir: &Path, o: &Outcome, stats: &Stats) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.md"), o.markdown())?;
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(o)?)?;
    latency_chart(&dir.join("latency.svg"), &[("publish", &stats.publish()), ("end-to-end", &stats.e2e())])?;
    throughput_chart(&dir.join("throughput.svg"), &o.samples)?;
    Ok(())
}

/// Latency by percentile, x on a "nines" scale: x = -log10(1 - p/100).
fn latency_chart(path: &Path, series: &[(&str, &Histogram<u64>)]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_ms = series.iter().map(|(_, h)| h.value_at_percentile(99.99) as f64 / 1000.0).fold(0.1, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency by percentile (ms)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..4.0, 0.0..max_ms * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x: &f64| format!("p{}", 100.0 - 100.0 * 10f64.powf(-*x)))
        .draw()?;
    let colors = [BLUE, RED];
    for (i, (name, h)) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = (0..=400)
            .map(|k| {
                let x = k as f64 / 100.0;
                let p = 100.0 - 100.0 * 10f64.powf(-x);
                (x, h.value_at_percentile(p.min(99.999)) as f64 / 1000.0)
            })
            .collect();
        let color = colors[i % colors.len()];
        chart.draw_series(LineSeries::new(points, color))?.label(*name).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Published and consumed records per second over the run.
fn throughput_chart(path: &Path, samples: &[Sample]) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = samples.iter().map(|s| s.published.max(s.consumed)).max().unwrap_or(1).max(1) as f64;
    let end = samples.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput (msgs/s)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..end, 0.0..max * 1.1)?;
    chart.configure_mesh().x_desc("seconds").y_desc("msgs/s").draw()?;
    chart
        .draw_series(LineSeries::new(samples.iter().map(|s| (s.t as f64, s.published as f64)), BLUE))?
        .label("published")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(samples.iter().map(|s| (s.t as f64, s.consumed as f64)), RED))?
        .label("consumed")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
