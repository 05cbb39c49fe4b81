//! Batches of fifty against a sink that fails whole batches, rejects single
//! records, and stops a batch at its first transient failure: each
//! partition's records are accepted in order, exactly once, and
//! dead-lettered ones never.
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

const BATCH: usize = 50;
const PER_SOURCE: u64 = 1_500;

/// `PER_SOURCE` records of `stream`, spread at random over `partitions`.
/// Sequences count up from `base` across the source, so they rise within
/// each partition and are unique in the run.
fn offering(stream: &'static str, partitions: u32, base: u64, seed: u64) -> Vec<Input> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..PER_SOURCE)
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
    /// Per partition, the sequence last accepted.
    last_accepted: HashMap<PartitionId, u64>,
    /// Broken promises: order, batch shape. Noted rather than panicked on,
    /// as the processor would catch a panic as a sink failure.
    violations: Vec<String>,
}

/// A downstream that processes a batch in order, with seeded flakiness.
struct FlakySink {
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
        seen.full_batches += u64::from(batch.len() == BATCH);
        if batch.len() > BATCH {
            seen.violations.push(format!("a batch of {}", batch.len()));
        }
        let partition = batch[0].id.partition_id();
        for pair in batch.windows(2) {
            if pair[1].id.partition_id() != partition || pair[1].id.sequence <= pair[0].id.sequence
            {
                seen.violations.push(format!(
                    "batch out of shape: {} then {}",
                    pair[0].id, pair[1].id
                ));
            }
        }
        let latency = Duration::from_millis(rng.random_range(1..=10));
        if rng.random_bool(0.1) {
            seen.whole_batch_failures += 1;
            let outcomes = batch
                .iter()
                .map(|_| Err(SinkError::Transient("overloaded".into())));
            return (outcomes.collect(), latency);
        }
        let mut stopped = false;
        let mut outcomes = Vec::with_capacity(batch.len());
        for _ in batch {
            let draw: f64 = rng.random();
            outcomes.push(if stopped {
                Err(SinkError::Transient("not attempted".into()))
            } else if draw < 0.02 {
                seen.rejected += 1;
                Err(SinkError::Rejected("invalid for the API".into()))
            } else if draw < 0.04 {
                // In order, and stops at the first transient failure: every
                // later record of the batch fails with it.
                stopped = true;
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

#[tokio::test(start_paused = true)]
async fn batches_of_fifty_keep_each_partition_in_order_through_failures_and_rejections() {
    let harness = Harness::default();
    let sink = Arc::new(FlakySink {
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(2024)),
        seen: Mutex::default(),
        accepted: Arc::default(),
    });
    let accepted = Arc::clone(&sink.accepted);
    let config = ProcessorConfig {
        max_in_flight: 4,
        queue_capacity: 1_000,
        batch: BatchConfig {
            max_records: BATCH,
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
    let sources = [
        harness.source(offering("orders-eu", 4, 0, 1), Tail::End),
        harness.source(offering("clicks", 3, 1_000_000, 2), Tail::End),
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
        2 * PER_SOURCE as usize
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
    // sink saw it (and each batch of one partition, in order, at most 50).
    let seen = sink.seen.lock().unwrap();
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_eq!(
        seen.last_accepted.len(),
        7,
        "4 partitions of orders-eu, 3 of clicks"
    );
    let streams: Vec<&str> = report
        .metrics
        .by_stream
        .keys()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(streams, ["clicks", "orders-eu"]);

    // The run went through what it is meant to: full batches, whole-batch
    // failures, rejections, and batches stopped at a transient failure.
    assert_eq!(seen.largest_batch, BATCH);
    assert!(seen.full_batches >= 10, "{seen:?}");
    assert!(seen.whole_batch_failures >= 5, "{seen:?}");
    assert!(seen.stopped_batches >= 5, "{seen:?}");
    let rejected = report
        .metrics
        .dead_lettered_by_reason
        .get(&DeadLetterKind::Rejected);
    assert_eq!(rejected.copied(), Some(seen.rejected));
    assert!(seen.rejected >= 5, "{seen:?}");
}
