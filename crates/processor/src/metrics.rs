//! Real-time metrics: sharded atomic counters and latency histograms.
//!
//! Every task (an intake or a delivery worker) writes to its own shard, so
//! the hot path touches no shared cache line and takes no global lock; a
//! snapshot sums the shards. Counts are exact: each event is counted once,
//! where it happens.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use sluice_models::{DataSource, PipelineMetrics, Priority, SourceStats};
use tokio::time::Instant;

/// Histograms are shared by a few tasks each, to bound their memory
/// whatever the concurrency.
const HISTOGRAM_SHARDS: usize = 8;
/// The largest latency recorded exactly, in microseconds (one hour).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// The processor's counters.
#[derive(Debug)]
pub(crate) struct Metrics {
    started_at: Instant,
    stopped_at: Mutex<Option<Instant>>,
    shards: Mutex<Vec<Arc<Shard>>>,
    histograms: Vec<HistogramShard>,
}

/// A histogram on a cache line of its own: tasks on different threads
/// record into different shards without contending for a line.
#[derive(Debug)]
#[repr(align(128))]
struct HistogramShard(Mutex<Histogram<u64>>);

/// One task's counters. Written by its task only; read by snapshots.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Shard {
    histogram: usize,
    ingested: [AtomicU64; 4],
    delivered: [AtomicU64; 4],
    dead_lettered: [AtomicU64; 4],
    handed_back: [AtomicU64; 4],
    failed_calls: [AtomicU64; 4],
    delivered_by_priority: [AtomicU64; 4],
    attempts: AtomicU64,
    rate_limit_hits: AtomicU64,
    in_flight: AtomicI64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let histograms = (0..HISTOGRAM_SHARDS)
            .map(|_| HistogramShard(Mutex::new(new_histogram())))
            .collect();
        Metrics {
            started_at: Instant::now(),
            stopped_at: Mutex::new(None),
            shards: Mutex::new(Vec::new()),
            histograms,
        }
    }

    /// A new shard for one task.
    pub(crate) fn shard(&self) -> Arc<Shard> {
        let mut shards = self.shards.lock().unwrap_or_else(PoisonError::into_inner);
        let shard = Arc::new(Shard {
            histogram: shards.len() % HISTOGRAM_SHARDS,
            ..Shard::default()
        });
        shards.push(Arc::clone(&shard));
        shard
    }

    /// Fixes the end of the run, for rates.
    pub(crate) fn mark_stopped(&self) {
        let mut stopped = self
            .stopped_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        stopped.get_or_insert_with(Instant::now);
    }

    pub(crate) fn record_latency(&self, shard: &Shard, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        shard.latency_sum_us.fetch_add(micros, Relaxed);
        let mut histogram = self.histograms[shard.histogram]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        histogram.saturating_record(micros.clamp(1, MAX_LATENCY_US));
    }

    /// Sums the shards.
    pub(crate) fn snapshot(
        &self,
        queued: usize,
        client_rate_limit: Option<usize>,
    ) -> MetricsSnapshot {
        let mut totals = Totals::default();
        for shard in self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            totals.add(shard);
        }
        let mut latency = new_histogram();
        for histogram in &self.histograms {
            let histogram = histogram.0.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds everywhere, so adding cannot fail.
            let _ = latency.add(&*histogram);
        }
        let end = self
            .stopped_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(Instant::now);
        let elapsed = end.duration_since(self.started_at);
        MetricsSnapshot::new(totals, &latency, elapsed, queued, client_rate_limit)
    }
}

impl Shard {
    pub(crate) fn ingested(&self, source: DataSource) {
        self.ingested[source.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn call_started(&self) {
        self.attempts.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub(crate) fn call_ended(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    pub(crate) fn delivered(&self, source: DataSource, priority: Priority) {
        self.delivered[source.index()].fetch_add(1, Relaxed);
        self.delivered_by_priority[priority.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn failed_call(&self, source: DataSource) {
        self.failed_calls[source.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limit_hits.fetch_add(1, Relaxed);
    }

    pub(crate) fn dead_lettered(&self, source: DataSource) {
        self.dead_lettered[source.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn handed_back(&self, source: DataSource) {
        self.handed_back[source.index()].fetch_add(1, Relaxed);
    }
}

fn new_histogram() -> Histogram<u64> {
    // Valid constant bounds: 1 <= low, high >= 2 * low, sigfig <= 5.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).unwrap_or_else(|_| unreachable!())
}

#[derive(Debug, Default)]
struct Totals {
    ingested: [u64; 4],
    delivered: [u64; 4],
    dead_lettered: [u64; 4],
    handed_back: [u64; 4],
    failed_calls: [u64; 4],
    delivered_by_priority: [u64; 4],
    attempts: u64,
    rate_limit_hits: u64,
    in_flight: i64,
    latency_sum_us: u64,
}

impl Totals {
    fn add(&mut self, shard: &Shard) {
        let pairs = [
            (&mut self.ingested, &shard.ingested),
            (&mut self.delivered, &shard.delivered),
            (&mut self.dead_lettered, &shard.dead_lettered),
            (&mut self.handed_back, &shard.handed_back),
            (&mut self.failed_calls, &shard.failed_calls),
            (
                &mut self.delivered_by_priority,
                &shard.delivered_by_priority,
            ),
        ];
        for (total, counters) in pairs {
            for (t, c) in total.iter_mut().zip(counters) {
                *t += c.load(Relaxed);
            }
        }
        self.attempts += shard.attempts.load(Relaxed);
        self.rate_limit_hits += shard.rate_limit_hits.load(Relaxed);
        self.in_flight += shard.in_flight.load(Relaxed);
        self.latency_sum_us += shard.latency_sum_us.load(Relaxed);
    }
}

/// Latency from intake to delivery, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Everything the processor counts, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// The original test's eight metrics.
    pub pipeline: PipelineMetrics,
    /// Time since start (until stop, once stopped).
    pub elapsed: Duration,
    /// Records pulled from the sources.
    pub ingested: u64,
    /// Records the downstream accepted.
    pub delivered: u64,
    /// Records sent to the dead-letter outlet.
    pub dead_lettered: u64,
    /// Records handed back at stop.
    pub handed_back: u64,
    /// Records inside the pipeline: ingested and not yet delivered,
    /// dead-lettered or handed back. At most the queue capacity.
    pub backlog: u64,
    /// Records waiting in the queue, not yet taken by a worker.
    pub queued: u64,
    /// Downstream calls made, refused ones included.
    pub attempts: u64,
    /// Downstream calls that failed (transient or rejected).
    pub failed_calls: u64,
    /// Downstream calls refused as rate limited.
    pub rate_limit_hits: u64,
    /// Downstream calls in flight now.
    pub in_flight: u64,
    /// Latency from intake to delivery.
    pub latency: LatencySummary,
    /// The client-side limit in force, when there is one.
    pub client_rate_limit: Option<usize>,
}

impl MetricsSnapshot {
    fn new(
        totals: Totals,
        latency: &Histogram<u64>,
        elapsed: Duration,
        queued: usize,
        client_rate_limit: Option<usize>,
    ) -> MetricsSnapshot {
        let sum = |counts: &[u64; 4]| counts.iter().sum::<u64>();
        let ingested = sum(&totals.ingested);
        let delivered = sum(&totals.delivered);
        let dead_lettered = sum(&totals.dead_lettered);
        let handed_back = sum(&totals.handed_back);
        let failed_calls = sum(&totals.failed_calls);
        let backlog = ingested.saturating_sub(delivered + dead_lettered + handed_back);
        let ms = |micros: u64| micros as f64 / 1000.0;
        let latency = if latency.is_empty() {
            LatencySummary::default()
        } else {
            LatencySummary {
                mean_ms: ms(totals.latency_sum_us) / delivered.max(1) as f64,
                p50_ms: ms(latency.value_at_quantile(0.50)),
                p99_ms: ms(latency.value_at_quantile(0.99)),
                max_ms: ms(latency.max()),
            }
        };
        let by_source = DataSource::ALL
            .into_iter()
            .filter(|source| totals.ingested[source.index()] > 0)
            .map(|source| {
                let i = source.index();
                let stats = SourceStats {
                    delivered: totals.delivered[i],
                    failed_calls: totals.failed_calls[i],
                    dead_lettered: totals.dead_lettered[i],
                };
                (source, stats)
            })
            .collect();
        let by_priority: BTreeMap<Priority, u64> = Priority::ALL
            .into_iter()
            .map(|priority| (priority, totals.delivered_by_priority[priority.index()]))
            .filter(|&(_, count)| count > 0)
            .collect();
        let seconds = elapsed.as_secs_f64();
        let pipeline = PipelineMetrics {
            total_processed: delivered,
            processing_rate_per_second: if seconds > 0.0 {
                delivered as f64 / seconds
            } else {
                0.0
            },
            avg_processing_time_ms: latency.mean_ms,
            error_rate: if totals.attempts > 0 {
                failed_calls as f64 / totals.attempts as f64
            } else {
                0.0
            },
            backlog_size: backlog,
            rate_limit_hits: totals.rate_limit_hits,
            by_source,
            by_priority,
        };
        MetricsSnapshot {
            pipeline,
            elapsed,
            ingested,
            delivered,
            dead_lettered,
            handed_back,
            backlog,
            queued: queued as u64,
            attempts: totals.attempts,
            failed_calls,
            rate_limit_hits: totals.rate_limit_hits,
            in_flight: u64::try_from(totals.in_flight).unwrap_or(0),
            latency,
            client_rate_limit,
        }
    }
}
