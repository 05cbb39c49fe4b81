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
use tokio::time::Instant;

use crate::dead_letter::DeadLetterKind;
use crate::stream::StreamName;

mod snapshot;

pub use snapshot::{
    CallCount, CallOutcome, DeadLetterCount, LatencyHistogram, LatencySummary, LimitWindow,
    MetricsSnapshot, StreamStats,
};

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
    /// From intake to delivery.
    latency: Timing,
    /// Of the API's answers.
    call_latency: Timing,
}

/// One latency's histograms, sharded.
#[derive(Debug)]
struct Timing(Vec<HistogramShard>);

impl Timing {
    fn new() -> Timing {
        Timing(
            (0..HISTOGRAM_SHARDS)
                .map(|_| HistogramShard(Mutex::new(new_histogram())))
                .collect(),
        )
    }

    /// Records `latency` in `shard`'s histogram; returns it in
    /// microseconds, for the shard's sum.
    fn record(&self, shard: &Shard, latency: Duration) -> u64 {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut histogram = self.0[shard.histogram]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        histogram.saturating_record(micros.clamp(1, MAX_LATENCY_US));
        micros
    }

    /// The histogram and its summary, given the latencies' sum.
    fn read(&self, sum_us: u64) -> (LatencyHistogram, LatencySummary) {
        let mut all = new_histogram();
        for histogram in &self.0 {
            let histogram = histogram.0.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds everywhere, so adding cannot fail.
            let _ = all.add(&*histogram);
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        let histogram = LatencyHistogram {
            count: all.len(),
            sum_ms: ms(sum_us),
            buckets: LATENCY_BUCKETS_MS
                .iter()
                .map(|&le_ms| {
                    // Microseconds, as recorded; hdrhistogram's bounds are
                    // inclusive and exact to 2 significant digits.
                    let le_us = (le_ms * 1_000.0) as u64;
                    (le_ms, all.count_between(0, le_us))
                })
                .collect(),
        };
        let summary = if all.is_empty() {
            LatencySummary::default()
        } else {
            LatencySummary {
                mean_ms: ms(sum_us) / all.len() as f64,
                p50_ms: ms(all.value_at_quantile(0.50)),
                p90_ms: ms(all.value_at_quantile(0.90)),
                p99_ms: ms(all.value_at_quantile(0.99)),
                max_ms: ms(all.max()),
            }
        };
        (histogram, summary)
    }
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
    call_latency_sum_us: AtomicU64,
}

/// A shard's counts behind its mutex: per stream (indexed by the
/// stream's interned index), per priority, per call outcome.
#[derive(Debug, Default)]
struct Counts {
    streams: Vec<Option<StreamCounts>>,
    /// Indexed by priority; grown to the highest seen.
    delivered_by_priority: Vec<u64>,
    /// Calls that ended, by outcome and status.
    calls: BTreeMap<(CallOutcome, Option<u16>), u64>,
}

/// One stream's counts in one shard.
#[derive(Debug, Clone)]
struct StreamCounts {
    name: StreamName,
    stats: StreamStats,
    dead_lettered_by_reason: [u64; DeadLetterKind::ALL.len()],
}

impl Counts {
    fn stream_counts(&mut self, stream: StreamName) -> &mut StreamCounts {
        let index = stream.index();
        if self.streams.len() <= index {
            self.streams.resize(index + 1, None);
        }
        self.streams[index].get_or_insert_with(|| StreamCounts {
            name: stream,
            stats: StreamStats::default(),
            dead_lettered_by_reason: [0; DeadLetterKind::ALL.len()],
        })
    }

    fn stream(&mut self, stream: StreamName) -> &mut StreamStats {
        &mut self.stream_counts(stream).stats
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            started_at: Instant::now(),
            stopped_at: Mutex::new(None),
            shards: Mutex::new(Vec::new()),
            latency: Timing::new(),
            call_latency: Timing::new(),
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

    /// A record delivered `latency` after its intake.
    pub(crate) fn record_latency(&self, shard: &Shard, latency: Duration) {
        let micros = self.latency.record(shard, latency);
        shard.latency_sum_us.fetch_add(micros, Relaxed);
    }

    /// A call that ended with `outcome` (and the sink's `status`), whose
    /// answer took `took`; `None` when it got no answer to time (cut at
    /// the drain deadline).
    pub(crate) fn call_ended(
        &self,
        shard: &Shard,
        outcome: CallOutcome,
        status: Option<u16>,
        took: Option<Duration>,
    ) {
        if let Some(took) = took {
            let micros = self.call_latency.record(shard, took);
            shard.call_latency_sum_us.fetch_add(micros, Relaxed);
        }
        *shard.lock().calls.entry((outcome, status)).or_default() += 1;
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
        let mut call_latency_sum_us = 0;
        let mut by_reason = [0; DeadLetterKind::ALL.len()];
        let mut by_stream_reason = BTreeMap::new();
        let mut calls = BTreeMap::new();
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
            for counts in shard.lock().streams.iter().flatten() {
                snapshot.by_stream.entry(counts.name).or_default().ingested +=
                    counts.stats.ingested;
            }
        }
        for shard in shards.iter() {
            snapshot.attempts += shard.attempts.load(Relaxed);
            snapshot.failed_calls += shard.failed_calls.load(Relaxed);
            snapshot.timed_out_calls += shard.timed_out_calls.load(Relaxed);
            snapshot.rate_limit_hits += shard.rate_limit_hits.load(Relaxed);
            in_flight += shard.in_flight.load(Relaxed);
            latency_sum_us += shard.latency_sum_us.load(Relaxed);
            call_latency_sum_us += shard.call_latency_sum_us.load(Relaxed);
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
            for stream in counts.streams.iter().flatten() {
                snapshot
                    .by_stream
                    .entry(stream.name)
                    .or_default()
                    .add_outcomes(&stream.stats);
                let reasons = DeadLetterKind::ALL.into_iter();
                for (kind, &count) in reasons.zip(&stream.dead_lettered_by_reason) {
                    if count > 0 {
                        by_reason[kind as usize] += count;
                        *by_stream_reason.entry((stream.name, kind)).or_default() += count;
                    }
                }
            }
            for (&key, &count) in &counts.calls {
                *calls.entry(key).or_default() += count;
            }
            for (priority, &count) in (0..=u8::MAX).zip(&counts.delivered_by_priority) {
                if count > 0 {
                    *snapshot.delivered_by_priority.entry(priority).or_default() += count;
                }
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
        snapshot.dead_letters = by_stream_reason
            .into_iter()
            .map(|((stream, reason), records)| DeadLetterCount {
                stream,
                reason,
                records,
            })
            .collect();
        snapshot.calls = calls
            .into_iter()
            .map(|((outcome, status), calls)| CallCount {
                outcome,
                status,
                calls,
            })
            .collect();
        snapshot.in_flight = u64::try_from(in_flight).unwrap_or(0);
        snapshot.backlog = snapshot
            .ingested
            .saturating_sub(snapshot.delivered + snapshot.dead_lettered + snapshot.handed_back);

        (snapshot.latency_histogram, snapshot.latency) = self.latency.read(latency_sum_us);
        (snapshot.call_latency_histogram, snapshot.call_latency) =
            self.call_latency.read(call_latency_sum_us);
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
        let stream = counts.stream_counts(stream);
        stream.stats.dead_lettered += 1;
        stream.dead_lettered_by_reason[kind as usize] += 1;
    }

    pub(crate) fn handed_back(&self, stream: StreamName) {
        self.lock().stream(stream).handed_back += 1;
    }
}

fn new_histogram() -> Histogram<u64> {
    // Valid constant bounds: 1 <= low, high >= 2 * low, sigfig <= 5.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).unwrap_or_else(|_| unreachable!())
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
