//! Records that cannot be delivered are dead-lettered with a reason,
//! counted, and never sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use async_trait::async_trait;
use futures::stream::{self, Stream};
use sluice_models::{DataSource, JsonObject, Priority, ProcessedRecord, StreamData};
use sluice_processor::{
    DeadLetterQueue, DeadLetterReason, Envelope, Incoming, ProcessorConfig, RateLimit, RetryPolicy,
    SendError, Sink, SinkError, StreamProcessor,
};
use sluice_profiles::seed::SeedProfile;

fn record(sequence_id: u64) -> StreamData {
    StreamData {
        source: DataSource::UserEvents,
        partition: 0,
        timestamp: 1_000.0,
        priority: Priority::High,
        data: JsonObject::new(),
        sequence_id,
    }
}

fn records(count: u64) -> impl Stream<Item = Incoming<StreamData>> {
    stream::iter((1..=count).map(|sequence_id| Incoming::new(record(sequence_id))))
}

fn seed() -> SeedProfile {
    SeedProfile::new().unwrap()
}

/// A sink answering every call the same way, counting the calls.
struct Answer(Result<(), SinkError>, AtomicU64);

#[async_trait]
impl Sink<ProcessedRecord> for Answer {
    async fn send(&self, _: &[Envelope<ProcessedRecord>]) -> Result<(), SendError> {
        self.1.fetch_add(1, Relaxed);
        Ok(self.0.clone()?)
    }
}

/// A sink that fails every call carrying a record of odd sequence.
struct FailOdd(AtomicU64);

#[async_trait]
impl Sink<ProcessedRecord> for FailOdd {
    async fn send(&self, batch: &[Envelope<ProcessedRecord>]) -> Result<(), SendError> {
        self.0.fetch_add(1, Relaxed);
        if batch.iter().any(|e| e.id.sequence % 2 == 1) {
            return Err(SinkError::Transient("boom".to_owned()).into());
        }
        Ok(())
    }
}

fn config() -> ProcessorConfig {
    ProcessorConfig {
        rate_limit: RateLimit::Unlimited,
        retry: RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        },
        ..ProcessorConfig::default()
    }
}

#[tokio::test(start_paused = true)]

async fn exhausted_retries_are_dead_lettered_with_the_last_error() {
    // Odd records always fail, even ones get through: the API is up, so
    // the odd ones are poison (a sink failing every call is an outage,
    // whose records wait).
    let sink = Arc::new(FailOdd(AtomicU64::new(0)));
    let config = ProcessorConfig {
        ordering: sluice_processor::DeliveryOrder::None,
        ..config()
    };
    let report = StreamProcessor::new(seed(), Arc::clone(&sink), config)
        .unwrap()
        .start([records(10)])
        .finish()
        .await;
    assert_eq!(report.metrics.dead_lettered, 5);
    assert_eq!(report.metrics.delivered, 5);
    assert!(sink.0.load(Relaxed) >= 5 + 15, "three attempts each");
    for letter in &report.dead_letters {
        let expected = DeadLetterReason::RetriesExhausted {
            attempts: 3,
            last_error: "boom".to_owned(),
        };
        assert_eq!(letter.reason, expected);
    }
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn a_rejected_record_is_dead_lettered_after_one_attempt() {
    let sink = Arc::new(Answer(
        Err(SinkError::Rejected("schema".to_owned())),
        AtomicU64::new(0),
    ));
    let report = StreamProcessor::new(seed(), Arc::clone(&sink), config())
        .unwrap()
        .start([records(4)])
        .finish()
        .await;
    assert_eq!(sink.1.load(Relaxed), 4);
    assert!(
        report
            .dead_letters
            .iter()
            .all(|l| l.reason == DeadLetterReason::Rejected("schema".to_owned()))
    );
}

#[tokio::test(start_paused = true)]
async fn records_failing_validation_are_dead_lettered_and_never_sent() {
    // Every third record has a timestamp the validation refuses.
    let inputs = stream::iter((1..=30).map(|sequence_id| {
        let mut input = record(sequence_id);
        if sequence_id % 3 == 0 {
            input.timestamp = -1.0;
        }
        Incoming::new(input)
    }));
    let sink = Arc::new(Answer(Ok(()), AtomicU64::new(0)));
    let outlet = DeadLetterQueue::default();
    let report = StreamProcessor::new(seed(), Arc::clone(&sink), config())
        .unwrap()
        .with_dead_letters(outlet.clone())
        .start([inputs])
        .finish()
        .await;
    assert_eq!(sink.1.load(Relaxed), 20, "invalid records are not sent");
    assert_eq!(report.metrics.delivered, 20);
    assert_eq!(report.metrics.dead_lettered, 10);
    assert!(
        report.dead_letters.is_empty(),
        "they went to the given outlet"
    );
    let letters = outlet.take();
    assert_eq!(letters.len(), 10);
    for letter in letters {
        assert_eq!(letter.id.sequence % 3, 0);
        assert_eq!(letter.id.stream.as_str(), "user_events");
        match letter.reason {
            DeadLetterReason::Invalid(reason) => assert!(reason.contains("timestamp"), "{reason}"),
            other => panic!("expected a validation failure, got {other}"),
        }
        let record = letter.record.expect("the transformed record is kept");
        assert_eq!(record.timestamp, -1.0);
    }
    assert!(report.is_conserved());
}
