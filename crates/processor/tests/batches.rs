//! Batches of fifty, taken across partitions, against a sink that fails
//! whole batches, rejects single records, and stops a partition's records
//! in a batch at its first transient failure: each partition's records
//! are accepted in order, exactly once, and dead-lettered ones never.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{End, Harness, Input, Tail, Verdict};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use sluice_processor::{
    BatchConfig, DeadLetterKind, DeliveryOrder, Envelope, PartitionId, ProcessorConfig, RateLimit,
    RecordId, RetryPolicy, SendError, Sink, SinkError, StreamProcessor,
};

/// `records` records of `stream`, spread at random over `partitions`.
/// Sequences count up from `base` across the source, so they rise within
/// each partition and are unique in the run.
fn offering(
    stream: &'static str,
    records: u64,
    partitions: u32,
    base: u64,
    seed: u64,
) -> Vec<Input> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..records)
        .map(|i| Input {
            stream,
            partition: rng.random_range(0..partitions),
            sequence: base + i,
        })
        .collect()
}

/// What the sink saw.
#[derive(Debug, Default)]
struct Seen {
    calls: u64,
    whole_batch_failures: u64,
    rejected: u64,
    stopped_batches: u64,
    largest_batch: usize,
    full_batches: u64,
    /// Batches holding records of more than one partition.
    mixed_batches: u64,
    /// Per partition, the sequence last accepted.
    last_accepted: HashMap<PartitionId, u64>,
    /// Broken promises: order, batch shape. Noted rather than panicked on,
    /// as the processor would catch a panic as a sink failure.
    violations: Vec<String>,
}

/// A downstream that processes a batch in order, with seeded flakiness.
struct FlakySink {
    /// The most records a call may carry.
    batch: usize,
    /// The chance that a record is rejected, and that it fails
    /// transiently (each).
    record_failures: f64,
    rng: Mutex<ChaCha8Rng>,
    seen: Mutex<Seen>,
    accepted: Arc<Mutex<Vec<RecordId>>>,
}

impl FlakySink {
    /// The outcome of each record of `batch`, and the call's latency.
    fn decide(&self, batch: &[Envelope<u64>]) -> (Vec<Result<(), SinkError>>, Duration) {
        let mut rng = self.rng.lock().unwrap();
        let mut seen = self.seen.lock().unwrap();
        seen.calls += 1;
        seen.largest_batch = seen.largest_batch.max(batch.len());
        seen.full_batches += u64::from(batch.len() == self.batch);
        if batch.len() > self.batch {
            seen.violations.push(format!("a batch of {}", batch.len()));
        }
        // Each partition's records in order and together: a partition
        // seen again after another's is out of shape.
        let mut partitions: Vec<PartitionId> = Vec::new();
        for pair in batch.windows(2) {
            let (a, b) = (pair[0].id, pair[1].id);
            let same = a.partition_id() == b.partition_id();
            if same && b.sequence <= a.sequence {
                seen.violations
                    .push(format!("batch out of order: {a} then {b}"));
            }
            if !same {
                partitions.push(a.partition_id());
                if partitions.contains(&b.partition_id()) {
                    seen.violations
                        .push(format!("batch out of shape: {b} after another partition's"));
                }
            }
        }
        seen.mixed_batches += u64::from(!partitions.is_empty());
        let latency = Duration::from_millis(rng.random_range(1..=10));
        if rng.random_bool(0.1) {
            seen.whole_batch_failures += 1;
            let outcomes = batch
                .iter()
                .map(|_| Err(SinkError::Transient("overloaded".into())));
            return (outcomes.collect(), latency);
        }
        // Partitions stopped at a transient failure in this batch.
        let mut stopped: Vec<PartitionId> = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for envelope in batch {
            let partition = envelope.id.partition_id();
            let draw: f64 = rng.random();
            outcomes.push(if stopped.contains(&partition) {
                Err(SinkError::Transient("not attempted".into()))
            } else if draw < self.record_failures {
                seen.rejected += 1;
                Err(SinkError::Rejected("invalid for the API".into()))
            } else if draw < 2.0 * self.record_failures {
                // In order, and stops a partition at its first transient
                // failure: every later record of that partition in the
                // batch fails with it; other partitions' go on.
                stopped.push(partition);
                seen.stopped_batches += 1;
                Err(SinkError::Transient("timeout on one record".into()))
            } else {
                Ok(())
            });
        }
        (outcomes, latency)
    }
}

#[async_trait]
impl Sink<u64> for FlakySink {
    async fn send(&self, batch: &[Envelope<u64>]) -> Result<(), SendError> {
        let (outcomes, latency) = self.decide(batch);
        tokio::time::sleep(latency).await;
        let mut seen = self.seen.lock().unwrap();
        let mut accepted = self.accepted.lock().unwrap();
        for (envelope, outcome) in batch.iter().zip(&outcomes) {
            if outcome.is_err() {
                continue;
            }
            let id = envelope.id;
            let last = seen.last_accepted.insert(id.partition_id(), id.sequence);
            if last.is_some_and(|last| last >= id.sequence) {
                seen.violations
                    .push(format!("{id} accepted after #{}", last.unwrap()));
            }
            accepted.push(id);
        }
        if outcomes.iter().all(Result::is_ok) {
            Ok(())
        } else {
            Err(SendError::PerRecord(outcomes))
        }
    }
}

/// The shape of a run: its streams' partitions and records, the batch
/// and the queue.
struct Shape {
    /// Partitions of `orders-eu` and of `clicks`.
    partitions: (u32, u32),
    /// Records of each stream.
    per_stream: u64,
    batch: usize,
    queue_capacity: usize,
    /// The chance that a record is rejected, and that it fails
    /// transiently (each).
    record_failures: f64,
}

/// Runs `shape` against a [`FlakySink`] and checks what every run must
/// hold: nothing lost, every record in one place, each partition's
/// records accepted in order (across batches and retries) and batches in
/// shape. Returns what the sink saw, and how many calls it took.
async fn run_flaky(shape: &Shape) -> Seen {
    let harness = Harness::default();
    let sink = Arc::new(FlakySink {
        batch: shape.batch,
        record_failures: shape.record_failures,
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(2024)),
        seen: Mutex::default(),
        accepted: Arc::default(),
    });
    let accepted = Arc::clone(&sink.accepted);
    let config = ProcessorConfig {
        max_in_flight: 4,
        queue_capacity: shape.queue_capacity,
        batch: BatchConfig {
            max_records: shape.batch,
            linger: Duration::from_millis(20),
            ..BatchConfig::default()
        },
        ordering: DeliveryOrder::Partition,
        rate_limit: RateLimit::Unlimited,
        retry: RetryPolicy {
            max_attempts: 12,
            max_elapsed: Duration::from_secs(3_600),
            ..RetryPolicy::default()
        },
        ..ProcessorConfig::default()
    };
    let transform = common::transform(|_| Verdict::Accept);
    let processor = StreamProcessor::new(transform, Arc::clone(&sink), config).unwrap();
    let (orders, clicks) = shape.partitions;
    let sources = [
        harness.source(
            offering("orders-eu", shape.per_stream, orders, 0, 1),
            Tail::End,
        ),
        harness.source(
            offering("clicks", shape.per_stream, clicks, 1_000_000, 2),
            Tail::End,
        ),
    ];
    let handle = processor.start(sources);
    let drain = Duration::from_secs(5);
    let finished = common::end(handle, End::Finish, drain);
    let report = finished.await;

    // Nothing lost, each record in one place, every ack resolved once and
    // truly (delivered ⇒ accepted by the sink, exactly once).
    let accepted = accepted.lock().unwrap().clone();
    let accounts = common::account(&report, &harness, &accepted, &[]);
    assert_eq!(
        accounts.delivered.len() + accounts.dead.len(),
        2 * shape.per_stream as usize
    );
    assert!(accounts.handed_back.is_empty(), "finish hands nothing back");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    for kind in accounts.dead.values() {
        assert!(
            matches!(
                kind,
                DeadLetterKind::Rejected | DeadLetterKind::RetriesExhausted
            ),
            "{kind:?}"
        );
    }

    // Order per (stream, partition), across batches and retries, as the
    // sink saw it, and each batch in shape.
    let seen = std::mem::take(&mut *sink.seen.lock().unwrap());
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_eq!(seen.last_accepted.len(), (orders + clicks) as usize);
    let streams: Vec<&str> = report
        .metrics
        .by_stream
        .keys()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(streams, ["clicks", "orders-eu"]);
    let rejected = report
        .metrics
        .dead_lettered_by_reason
        .get(&DeadLetterKind::Rejected);
    assert_eq!(rejected.copied(), Some(seen.rejected));
    seen
}

#[tokio::test(start_paused = true)]
async fn batches_of_fifty_keep_each_partition_in_order_through_failures_and_rejections() {
    let seen = run_flaky(&Shape {
        partitions: (4, 3),
        per_stream: 1_500,
        batch: 50,
        queue_capacity: 1_000,
        record_failures: 0.02,
    })
    .await;
    // The run went through what it is meant to: full batches, whole-batch
    // failures, rejections, and partitions stopped at a transient failure.
    assert_eq!(seen.largest_batch, 50);
    assert!(seen.full_batches >= 10, "{seen:?}");
    assert!(seen.whole_batch_failures >= 5, "{seen:?}");
    assert!(seen.stopped_batches >= 5, "{seen:?}");
    assert!(seen.rejected >= 5, "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn batches_of_500_are_full_across_32_partitions_and_keep_each_in_order() {
    // 32 partitions in a queue of 2 000: about 60 records a lane, so a
    // call's worth takes several lanes.
    let shape = Shape {
        partitions: (20, 12),
        per_stream: 20_000,
        batch: 500,
        queue_capacity: 2_000,
        record_failures: 0.000_5,
    };
    let seen = run_flaky(&shape).await;
    assert_eq!(seen.largest_batch, 500);
    // Every call full but a few at the end and the retries of records a
    // partition's failure held back (about one call in four).
    let records = 2 * shape.per_stream;
    assert!(
        seen.full_batches * 500 >= records * 9 / 10,
        "{} full batches of {} calls: {seen:?}",
        seen.full_batches,
        seen.calls
    );
    assert!(seen.mixed_batches * 2 >= seen.calls, "{seen:?}");
    assert!(seen.stopped_batches >= 5, "{seen:?}");
    assert!(seen.whole_batch_failures >= 5, "{seen:?}");
}
