//! The calls' metrics: each call that ended has one outcome and the status
//! its sink noted, the outcomes add up to the calls, and the API's answer
//! times are measured apart from the time records wait.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use sluice_processor::{
    CallOutcome, Context, DeadLetterKind, Envelope, Incoming, ProcessorConfig, RateLimit, RecordId,
    Rejected, RetryPolicy, SendError, Sink, SinkError, StreamProcessor, Transformed,
    note_call_status,
};

/// Answers each call by the record's number: 1 mod 5 rejected (422), 2
/// mod 5 refused the first time (429), 3 mod 5 failed once (503), the
/// rest delivered (200); every answer takes 40 ms.
#[derive(Default)]
struct Scripted {
    seen: Mutex<Vec<u64>>,
}

#[async_trait]
impl Sink<u64> for Scripted {
    async fn send(&self, batch: &[Envelope<u64>]) -> Result<(), SendError> {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let n = batch[0].record;
        let first = {
            let mut seen = self.seen.lock().unwrap();
            let first = !seen.contains(&n);
            seen.push(n);
            first
        };
        let (status, answer) = match n % 5 {
            1 => (422, Err(SinkError::Rejected("422".into()))),
            2 if first => (429, Err(SinkError::RateLimited { retry_after: None })),
            3 if first => (503, Err(SinkError::Transient("503".into()))),
            _ => (200, Ok(())),
        };
        note_call_status(status);
        answer.map_err(SendError::Batch)
    }
}

fn numbered(n: u64, context: &mut Context) -> Result<Transformed<u64>, Rejected<u64>> {
    let stream = context
        .stream(if n.is_multiple_of(2) { "even" } else { "odd" })
        .unwrap();
    Ok(Transformed::new(
        RecordId {
            stream,
            partition: u32::try_from(n).unwrap(),
            sequence: 0,
        },
        n,
    ))
}

#[tokio::test(start_paused = true)]
async fn every_call_has_one_outcome_and_its_status_and_its_answer_time() {
    let records = 50;
    let config = ProcessorConfig {
        rate_limit: RateLimit::Unlimited,
        retry: RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        },
        ..ProcessorConfig::default()
    };
    let source = futures::stream::iter((1..=records).map(Incoming::new));
    let report = StreamProcessor::new(numbered, Scripted::default(), config)
        .unwrap()
        .start([source])
        .finish()
        .await;
    let metrics = &report.metrics;
    let count = |outcome, status| {
        metrics
            .calls
            .iter()
            .find(|c| c.outcome == outcome && c.status == status)
            .map_or(0, |c| c.calls)
    };
    // 10 rejected, 10 refused then delivered, 10 failed then delivered, 20
    // delivered at once.
    assert_eq!(count(CallOutcome::Rejected, Some(422)), 10);
    assert_eq!(count(CallOutcome::RateLimited, Some(429)), 10);
    assert_eq!(count(CallOutcome::Failed, Some(503)), 10);
    assert_eq!(count(CallOutcome::Delivered, Some(200)), 40);
    let ended: u64 = metrics.calls.iter().map(|c| c.calls).sum();
    assert_eq!(ended, metrics.attempts, "the outcomes partition the calls");
    assert_eq!(metrics.attempts, 70);
    assert_eq!(metrics.calls_with(CallOutcome::Delivered), 40);

    // Every answer took 40 ms on the paused clock; records waited longer.
    assert_eq!(metrics.call_latency_histogram.count, 70);
    assert!(
        (metrics.call_latency.p50_ms - 40.0).abs() < 1.0,
        "{:?}",
        metrics.call_latency
    );
    assert!(
        (metrics.call_latency.max_ms - 40.0).abs() < 1.0,
        "{:?}",
        metrics.call_latency
    );
    assert!(metrics.latency.max_ms > metrics.call_latency.max_ms);

    // Dead letters by stream and reason: 1 mod 5 alternates odd and even.
    let letters: Vec<_> = metrics
        .dead_letters
        .iter()
        .map(|c| (c.stream.as_str(), c.reason, c.records))
        .collect();
    assert_eq!(
        letters,
        [
            ("even", DeadLetterKind::Rejected, 5),
            ("odd", DeadLetterKind::Rejected, 5)
        ]
    );
    assert_eq!(metrics.queue_capacity, 100);
    assert_eq!(metrics.limit_window, None, "no limit");
}

/// Never answers.
struct Silent;

#[async_trait]
impl Sink<u64> for Silent {
    async fn send(&self, _: &[Envelope<u64>]) -> Result<(), SendError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_without_an_answer_times_out_or_is_cancelled_with_no_status() {
    let config = ProcessorConfig {
        rate_limit: RateLimit::Unlimited,
        call_timeout: Duration::from_secs(2),
        drain_deadline: Duration::from_secs(1),
        max_in_flight: 1,
        ..ProcessorConfig::default()
    };
    let source = futures::stream::iter([Incoming::new(1)]).chain(futures::stream::pending());
    let handle = StreamProcessor::new(numbered, Silent, config)
        .unwrap()
        .start([source]);
    // Two timeouts, then a stop whose drain deadline cuts the third call.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let report = handle.stop().await;
    let metrics = &report.metrics;
    let timed_out = metrics.calls_with(CallOutcome::TimedOut);
    assert!(timed_out >= 2, "{:?}", metrics.calls);
    assert_eq!(
        metrics.calls_with(CallOutcome::Cancelled),
        1,
        "{:?}",
        metrics.calls
    );
    assert!(metrics.calls.iter().all(|c| c.status.is_none()));
    let ended: u64 = metrics.calls.iter().map(|c| c.calls).sum();
    assert_eq!(ended, metrics.attempts);
    // Timed-out calls count at the timeout; the cancelled one not at all.
    assert_eq!(metrics.call_latency_histogram.count, timed_out);
    assert!((metrics.call_latency.max_ms - 2_000.0).abs() < 20.0);
}

/// Answers per record: the first call's second record fails once (503),
/// every other record is delivered.
#[derive(Default)]
struct HalfFirst {
    calls: Mutex<u64>,
}

#[async_trait]
impl Sink<u64> for HalfFirst {
    async fn send(&self, batch: &[Envelope<u64>]) -> Result<(), SendError> {
        let first = {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            *calls == 1
        };
        note_call_status(207);
        if !first {
            return Ok(());
        }
        Err(SendError::PerRecord(
            (0..batch.len())
                .map(|i| {
                    if i == 1 {
                        Err(SinkError::Transient("503".into()))
                    } else {
                        Ok(())
                    }
                })
                .collect(),
        ))
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_delivered_some_records_is_partial() {
    let config = ProcessorConfig {
        rate_limit: RateLimit::Unlimited,
        max_in_flight: 1,
        batch: sluice_processor::BatchConfig {
            max_records: 2,
            ..sluice_processor::BatchConfig::default()
        },
        ..ProcessorConfig::default()
    };
    let source = futures::stream::iter([1, 2].map(Incoming::new));
    let report = StreamProcessor::new(numbered, HalfFirst::default(), config)
        .unwrap()
        .start([source])
        .finish()
        .await;
    let metrics = &report.metrics;
    assert_eq!(metrics.delivered, 2);
    assert_eq!(
        metrics.calls_with(CallOutcome::Partial),
        1,
        "{:?}",
        metrics.calls
    );
    assert_eq!(
        metrics.calls_with(CallOutcome::Delivered),
        1,
        "{:?}",
        metrics.calls
    );
    assert_eq!(metrics.attempts, 2);
}
