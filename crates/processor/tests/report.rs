//! What the report says about faults of user code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sluice_processor::{
    Context, Envelope, FaultyTask, Incoming, MAX_FAILURES_KEPT, ProcessorConfig, RateLimit,
    RecordId, Rejected, RetryPolicy, SendError, Sink, StreamProcessor, Transformed,
};

/// Panics on every call, counting them.
struct AlwaysPanics(Arc<AtomicU64>);

#[async_trait]
impl Sink<u64> for AlwaysPanics {
    async fn send(&self, _: &[Envelope<u64>]) -> Result<(), SendError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        panic!("injected: the sink is broken")
    }
}

fn numbered(n: u64, context: &mut Context) -> Result<Transformed<u64>, Rejected<u64>> {
    let stream = context.stream("report-test").unwrap();
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
async fn a_fault_on_every_call_is_counted_but_listed_only_so_many_times() {
    // Nothing is ever delivered, but the sink says it is up (the default
    // `Sink::is_up`): each failure is the record's, which has one attempt.
    let records = 3 * MAX_FAILURES_KEPT as u64 / 2;
    let config = ProcessorConfig {
        rate_limit: RateLimit::Unlimited,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..ProcessorConfig::default()
    };
    let source = futures::stream::iter((1..=records).map(Incoming::new));
    let calls = Arc::new(AtomicU64::new(0));
    let sink = AlwaysPanics(Arc::clone(&calls));
    let report = StreamProcessor::new(numbered, sink, config)
        .unwrap()
        .start([source])
        .finish()
        .await;
    assert_eq!(calls.load(Ordering::Relaxed), records);
    assert_eq!(report.failure_count, records, "every fault is counted");
    assert_eq!(
        report.failures.len(),
        MAX_FAILURES_KEPT,
        "the list is bounded"
    );
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.task == FaultyTask::Sink && f.message.contains("the sink is broken"))
    );
    assert_eq!(report.metrics.dead_lettered, records);
    assert!(!report.metrics.api_failing, "not taken for an outage");
    assert!(report.is_conserved());
}
