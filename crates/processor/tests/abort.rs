//! Cutting a stop short.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use async_trait::async_trait;
use sluice_processor::{
    Context, Envelope, HandBackReason, Incoming, ProcessorConfig, RateLimit, RecordId, Rejected,
    SendError, Sink, StreamProcessor, Transformed,
};
use tokio::time::Instant;

/// Never answers.
struct Hangs;

#[async_trait]
impl Sink<u64> for Hangs {
    async fn send(&self, _: &[Envelope<u64>]) -> Result<(), SendError> {
        std::future::pending().await
    }
}

fn numbered(n: u64, context: &mut Context) -> Result<Transformed<u64>, Rejected<u64>> {
    let stream = context.stream("abort-test").unwrap();
    Ok(Transformed::new(
        RecordId {
            stream,
            partition: 0,
            sequence: n,
        },
        n,
    ))
}

#[tokio::test(start_paused = true)]
async fn an_abort_cuts_a_long_drain_short_and_hands_everything_back() {
    let config = ProcessorConfig {
        rate_limit: RateLimit::Unlimited,
        drain_deadline: Duration::from_secs(3_600),
        call_timeout: Duration::from_secs(3_600),
        max_in_flight: 2,
        ..ProcessorConfig::default()
    };
    let source = futures::stream::iter((1..=10).map(Incoming::new));
    let handle = StreamProcessor::new(numbered, Hangs, config)
        .unwrap()
        .start([source]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let abort = handle.abort_handle();
    let started = Instant::now();
    let stopping = tokio::spawn(handle.stop());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !stopping.is_finished(),
        "the drain waits for the hung calls"
    );
    abort.abort();
    let report = stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.metrics.handed_back, 10);
    let cancelled = report
        .handed_back
        .iter()
        .filter(|r| r.reason == HandBackReason::CallCancelled)
        .count();
    assert_eq!(cancelled, 1, "one partition, in order: one call in flight");
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn finish_unless_finishes_or_stops_on_its_signal() {
    struct Accept;
    #[async_trait]
    impl Sink<u64> for Accept {
        async fn send(&self, _: &[Envelope<u64>]) -> Result<(), SendError> {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        }
    }
    let config = || ProcessorConfig {
        rate_limit: RateLimit::Unlimited,
        ..ProcessorConfig::default()
    };
    // No signal: a finish.
    let source = futures::stream::iter((1..=5).map(Incoming::new));
    let handle = StreamProcessor::new(numbered, Accept, config())
        .unwrap()
        .start([source]);
    let reader = handle.metrics_reader();
    let (report, stopped) = handle.finish_unless(std::future::pending()).await;
    assert!(!stopped);
    assert_eq!(report.metrics.delivered, 5);
    assert_eq!(
        reader.metrics().delivered,
        5,
        "the reader sees the final counts"
    );
    // A signal while a source never ends: a stop, handing back nothing lost.
    let endless = futures::stream::iter((1..).map(Incoming::new));
    let handle = StreamProcessor::new(numbered, Accept, config())
        .unwrap()
        .start([endless]);
    let signal = tokio::time::sleep(Duration::from_secs(1));
    let (report, stopped) = handle.finish_unless(signal).await;
    assert!(stopped);
    assert!(report.metrics.delivered > 0 && report.metrics.handed_back > 0);
    assert!(report.is_conserved(), "{}", report.conservation());
}
