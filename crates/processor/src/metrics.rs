//! Real-time metrics: per-task counters and latency histograms.
//!
//! Every task (an intake or a delivery worker) writes to its own shard, so
//! the hot path touches no cache line another task writes and takes no
//! contended lock; a snapshot sums the shards. Counts are exact: each event
//! is counted once, where it happens. Per-stream counts live in a vector
//! indexed by the stream's interned index, behind the shard's own mutex
//! (uncontended but for snapshots).

use std::collections::BTreeMap;
use std::sync::atomic::{
    AtomicI64, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::dead_letter::DeadLetterKind;
use crate::stream::StreamName;

/// Upper bounds of the latency buckets a snapshot reports, milliseconds
/// (as Prometheus histograms take them; `+Inf` is the total count).
pub const LATENCY_BUCKETS_MS: [f64; 15] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0,
    30_000.0, 60_000.0,
];

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

/// Streams whose hot counters (ingested, delivered) are lock-free atomics;
/// the streams of higher indices take the shard's mutex.
const FAST_STREAMS: usize = 32;
/// Priorities whose delivery count is a lock-free atomic.
const FAST_PRIORITIES: usize = 16;

/// The hot counters of one stream.
#[derive(Debug, Default)]
struct FastStream {
    ingested: AtomicU64,
    delivered: AtomicU64,
}

/// One task's counters. Written by its task only; read by snapshots.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Shard {
    histogram: usize,
    fast: [FastStream; FAST_STREAMS],
    fast_priorities: [AtomicU64; FAST_PRIORITIES],
    counts: Mutex<Counts>,
    attempts: AtomicU64,
    failed_calls: AtomicU64,
    timed_out_calls: AtomicU64,
    rate_limit_hits: AtomicU64,
    in_flight: AtomicI64,
    latency_sum_us: AtomicU64,
}

/// Per-stream counts, indexed by the stream's interned index.
#[derive(Debug, Default)]
struct Counts {
    streams: Vec<Option<(StreamName, StreamStats)>>,
    /// Indexed by priority; grown to the highest seen.
    delivered_by_priority: Vec<u64>,
    dead_lettered_by_reason: [u64; DeadLetterKind::ALL.len()],
}

impl Counts {
    fn stream(&mut self, stream: StreamName) -> &mut StreamStats {
        let index = stream.index();
        if self.streams.len() <= index {
            self.streams.resize(index + 1, None);
        }
        &mut self.streams[index]
            .get_or_insert_with(|| (stream, StreamStats::default()))
            .1
    }
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
        let mut snapshot = MetricsSnapshot {
            queued: queued as u64,
            client_rate_limit,
            ..MetricsSnapshot::default()
        };
        let mut in_flight = 0;
        let mut latency_sum_us = 0;
        let mut by_reason = [0; DeadLetterKind::ALL.len()];
        let fast_names = StreamName::first(FAST_STREAMS);
        let shards = self.shards.lock().unwrap_or_else(PoisonError::into_inner);
        // Arrivals are read before departures. Read shard by shard, a
        // worker's deliveries could be read before an intake's arrivals
        // and miss records that left in between, so that the backlog read
        // more than the queue holds. A record's outcome is counted before
        // its place is freed, and a place is taken before the next arrival
        // is counted (with release, read here with acquire), so every
        // departure that made room for an arrival read here is read below.
        for shard in shards.iter() {
            for (stream, fast) in fast_names.iter().zip(&shard.fast) {
                let ingested = fast.ingested.load(Acquire);
                if ingested > 0 {
                    snapshot.by_stream.entry(*stream).or_default().ingested += ingested;
                }
            }
            for (stream, stats) in shard.lock().streams.iter().flatten() {
                snapshot.by_stream.entry(*stream).or_default().ingested += stats.ingested;
            }
        }
        for shard in shards.iter() {
            snapshot.attempts += shard.attempts.load(Relaxed);
            snapshot.failed_calls += shard.failed_calls.load(Relaxed);
            snapshot.timed_out_calls += shard.timed_out_calls.load(Relaxed);
            snapshot.rate_limit_hits += shard.rate_limit_hits.load(Relaxed);
            in_flight += shard.in_flight.load(Relaxed);
            latency_sum_us += shard.latency_sum_us.load(Relaxed);
            for (stream, fast) in fast_names.iter().zip(&shard.fast) {
                let delivered = fast.delivered.load(Relaxed);
                if delivered > 0 {
                    snapshot.by_stream.entry(*stream).or_default().delivered += delivered;
                }
            }
            for (priority, count) in (0..=u8::MAX).zip(&shard.fast_priorities) {
                let count = count.load(Relaxed);
                if count > 0 {
                    *snapshot.delivered_by_priority.entry(priority).or_default() += count;
                }
            }
            let counts = shard.lock();
            for (stream, stats) in counts.streams.iter().flatten() {
                snapshot
                    .by_stream
                    .entry(*stream)
                    .or_default()
                    .add_outcomes(stats);
            }
            for (priority, &count) in (0..=u8::MAX).zip(&counts.delivered_by_priority) {
                if count > 0 {
                    *snapshot.delivered_by_priority.entry(priority).or_default() += count;
                }
            }
            for (total, count) in by_reason.iter_mut().zip(counts.dead_lettered_by_reason) {
                *total += count;
            }
        }
        for stats in snapshot.by_stream.values() {
            snapshot.ingested += stats.ingested;
            snapshot.delivered += stats.delivered;
            snapshot.dead_lettered += stats.dead_lettered;
            snapshot.handed_back += stats.handed_back;
        }
        snapshot.dead_lettered_by_reason = DeadLetterKind::ALL
            .into_iter()
            .zip(by_reason)
            .filter(|&(_, count)| count > 0)
            .collect();
        snapshot.in_flight = u64::try_from(in_flight).unwrap_or(0);
        snapshot.backlog = snapshot
            .ingested
            .saturating_sub(snapshot.delivered + snapshot.dead_lettered + snapshot.handed_back);

        let mut latency = new_histogram();
        for histogram in &self.histograms {
            let histogram = histogram.0.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds everywhere, so adding cannot fail.
            let _ = latency.add(&*histogram);
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        snapshot.latency_histogram = LatencyHistogram {
            count: latency.len(),
            sum_ms: ms(latency_sum_us),
            buckets: LATENCY_BUCKETS_MS
                .iter()
                .map(|&le_ms| {
                    // Microseconds, as recorded; hdrhistogram's bounds are
                    // inclusive and exact to 2 significant digits.
                    let le_us = (le_ms * 1_000.0) as u64;
                    (le_ms, latency.count_between(0, le_us))
                })
                .collect(),
        };
        if !latency.is_empty() {
            snapshot.latency = LatencySummary {
                mean_ms: ms(latency_sum_us) / snapshot.delivered.max(1) as f64,
                p50_ms: ms(latency.value_at_quantile(0.50)),
                p99_ms: ms(latency.value_at_quantile(0.99)),
                max_ms: ms(latency.max()),
            };
        }
        let end = self
            .stopped_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or_else(Instant::now);
        snapshot.elapsed = end.duration_since(self.started_at);
        snapshot
    }
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn ingested(&self, stream: StreamName) {
        match self.fast.get(stream.index()) {
            // Release: see `Metrics::snapshot`.
            Some(fast) => _ = fast.ingested.fetch_add(1, Release),
            None => self.lock().stream(stream).ingested += 1,
        }
    }

    pub(crate) fn call_started(&self) {
        self.attempts.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub(crate) fn call_ended(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    pub(crate) fn call_failed(&self) {
        self.failed_calls.fetch_add(1, Relaxed);
    }

    /// A call that got no answer within the call timeout (also counted as
    /// failed).
    pub(crate) fn call_timed_out(&self) {
        self.timed_out_calls.fetch_add(1, Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limit_hits.fetch_add(1, Relaxed);
    }

    pub(crate) fn delivered(&self, stream: StreamName, priority: u8) {
        let fast_stream = self.fast.get(stream.index());
        let fast_priority = self.fast_priorities.get(usize::from(priority));
        if let (Some(fast), Some(by_priority)) = (fast_stream, fast_priority) {
            fast.delivered.fetch_add(1, Relaxed);
            by_priority.fetch_add(1, Relaxed);
            return;
        }
        let mut counts = self.lock();
        match fast_stream {
            Some(fast) => _ = fast.delivered.fetch_add(1, Relaxed),
            None => counts.stream(stream).delivered += 1,
        }
        match fast_priority {
            Some(by_priority) => _ = by_priority.fetch_add(1, Relaxed),
            None => {
                let by_priority = &mut counts.delivered_by_priority;
                let index = usize::from(priority);
                if by_priority.len() <= index {
                    by_priority.resize(index + 1, 0);
                }
                by_priority[index] += 1;
            }
        }
    }

    pub(crate) fn failed_attempt(&self, stream: StreamName) {
        self.lock().stream(stream).failed_attempts += 1;
    }

    pub(crate) fn dead_lettered(&self, stream: StreamName, kind: DeadLetterKind) {
        let mut counts = self.lock();
        counts.stream(stream).dead_lettered += 1;
        counts.dead_lettered_by_reason[kind as usize] += 1;
    }

    pub(crate) fn handed_back(&self, stream: StreamName) {
        self.lock().stream(stream).handed_back += 1;
    }
}

fn new_histogram() -> Histogram<u64> {
    // Valid constant bounds: 1 <= low, high >= 2 * low, sigfig <= 5.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).unwrap_or_else(|_| unreachable!())
}

/// What happened to the records of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// Records taken from the sources.
    pub ingested: u64,
    /// Records the downstream accepted.
    pub delivered: u64,
    /// Records the dead-letter outlet kept.
    pub dead_lettered: u64,
    /// Records handed back (not processed).
    pub handed_back: u64,
    /// Failed attempts to deliver a record (a record retried twice counts
    /// twice; refusals excluded).
    pub failed_attempts: u64,
}

impl StreamStats {
    /// Adds everything of `other` but its arrivals (`ingested`).
    fn add_outcomes(&mut self, other: &StreamStats) {
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.handed_back += other.handed_back;
        self.failed_attempts += other.failed_attempts;
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

/// Latency from intake to delivery as a cumulative histogram, for
/// exporters (Prometheus).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyHistogram {
    /// Deliveries measured.
    pub count: u64,
    /// Their latencies added up, milliseconds.
    pub sum_ms: f64,
    /// (upper bound in ms, deliveries at or below it), for each of
    /// [`LATENCY_BUCKETS_MS`].
    pub buckets: Vec<(f64, u64)>,
}

/// Everything the processor counts, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Time since start (until stop, once stopped).
    pub elapsed: Duration,
    /// Records taken from the sources.
    pub ingested: u64,
    /// Records the downstream accepted.
    pub delivered: u64,
    /// Records the dead-letter outlet kept.
    pub dead_lettered: u64,
    /// Records handed back at stop (or after a fault), not processed.
    pub handed_back: u64,
    /// Records inside the pipeline: ingested and not yet delivered,
    /// dead-lettered or handed back. At most the queue capacity.
    pub backlog: u64,
    /// Records waiting in the queue, not yet taken by a worker.
    pub queued: u64,
    /// Downstream calls made, refused ones included.
    pub attempts: u64,
    /// Downstream calls that failed (transient or rejected, in whole or in
    /// part).
    pub failed_calls: u64,
    /// Downstream calls cancelled at the call timeout (counted in
    /// `failed_calls` too).
    pub timed_out_calls: u64,
    /// Downstream calls refused as rate limited.
    pub rate_limit_hits: u64,
    /// Downstream calls in flight now.
    pub in_flight: u64,
    /// Latency from intake to delivery.
    pub latency: LatencySummary,
    /// The same, as a cumulative histogram.
    pub latency_histogram: LatencyHistogram,
    /// The client-side limit in force, when there is one.
    pub client_rate_limit: Option<usize>,
    /// Per stream, by name.
    pub by_stream: BTreeMap<StreamName, StreamStats>,
    /// Deliveries per record priority.
    pub delivered_by_priority: BTreeMap<u8, u64>,
    /// Dead letters per kind of reason.
    pub dead_lettered_by_reason: BTreeMap<DeadLetterKind, u64>,
    /// Whether the API is failing now: the last calls failed for its sake
    /// (unreachable, misconfigured, or failing with nothing delivered
    /// since), and no call has delivered since. Records wait meanwhile.
    pub api_failing: bool,
    /// Outages of the API seen so far (each began by a call failing for
    /// the API's sake, ended by a delivery).
    pub api_outages: u64,
}

impl MetricsSnapshot {
    /// Deliveries per second of elapsed time (0 before any time passed).
    pub fn delivery_rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.delivered as f64 / seconds
        } else {
            0.0
        }
    }

    /// Failed calls as a fraction of calls (0 when there were none).
    pub fn error_rate(&self) -> f64 {
        if self.attempts > 0 {
            self.failed_calls as f64 / self.attempts as f64
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_are_exact_on_the_lock_free_and_the_locked_paths() {
        let metrics = Metrics::new();
        let (a, b) = (metrics.shard(), metrics.shard());
        // More streams than have lock-free slots, and priorities beyond
        // theirs, so that both paths count.
        let streams: Vec<StreamName> = (0..FAST_STREAMS + 8)
            .map(|i| StreamName::new(&format!("metrics-test-{i}")).unwrap())
            .collect();
        for (i, &stream) in streams.iter().enumerate() {
            for _ in 0..=i {
                a.ingested(stream);
            }
            b.delivered(stream, if i % 2 == 0 { 3 } else { 200 });
            b.handed_back(stream);
            b.dead_lettered(stream, DeadLetterKind::Rejected);
        }
        let snapshot = metrics.snapshot(0, None);
        for (i, stream) in streams.iter().enumerate() {
            let stats = snapshot.by_stream[stream];
            assert_eq!(stats.ingested, i as u64 + 1, "{stream}");
            assert_eq!(
                (stats.delivered, stats.handed_back, stats.dead_lettered),
                (1, 1, 1)
            );
        }
        let n = streams.len() as u64;
        assert_eq!(snapshot.ingested, n * (n + 1) / 2);
        assert_eq!(snapshot.delivered, n);
        assert_eq!(snapshot.delivered_by_priority[&3], n / 2);
        assert_eq!(snapshot.delivered_by_priority[&200], n / 2);
        assert_eq!(
            snapshot.dead_lettered_by_reason[&DeadLetterKind::Rejected],
            n
        );
        assert_eq!(snapshot.backlog, n * (n + 1) / 2 - 3 * n);
    }

    #[tokio::test(start_paused = true)]
    async fn the_latency_histogram_is_cumulative_and_exact_at_its_bounds() {
        let metrics = Metrics::new();
        let shard = metrics.shard();
        for ms in [1, 3, 3, 40, 900, 120_000] {
            metrics.record_latency(&shard, Duration::from_millis(ms));
        }
        let histogram = metrics.snapshot(0, None).latency_histogram;
        assert_eq!(histogram.count, 6);
        assert_eq!(histogram.sum_ms, 120_947.0);
        let at = |le: f64| histogram.buckets.iter().find(|(b, _)| *b == le).unwrap().1;
        assert_eq!(
            (at(1.0), at(2.0), at(5.0), at(50.0), at(1_000.0)),
            (1, 1, 3, 4, 5)
        );
        assert_eq!(at(60_000.0), 5, "two minutes is above every bound");
    }
}
