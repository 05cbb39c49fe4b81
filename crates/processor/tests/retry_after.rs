//! A `Retry-After` hint is waited out before the refused records go again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sluice_processor::{
    Context, Envelope, Incoming, ProcessorConfig, RateLimit, RecordId, Rejected, SendError, Sink,
    SinkError, StreamProcessor, Transformed,
};
use tokio::time::Instant;

/// Refuses its first call with `Retry-After: 2s`; notes when each call came.
#[derive(Default)]
struct RefusesOnce(Mutex<Vec<Instant>>);

#[async_trait]
impl Sink<u64> for RefusesOnce {
    async fn send(&self, _: &[Envelope<u64>]) -> Result<(), SendError> {
        let mut calls = self.0.lock().unwrap();
        calls.push(Instant::now());
        if calls.len() == 1 {
            return Err(SinkError::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
            }
            .into());
        }
        Ok(())
    }
}

fn numbered(n: u64, context: &mut Context) -> Result<Transformed<u64>, Rejected<u64>> {
    let stream = context.stream("retry-after-test").unwrap();
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
async fn without_a_client_limit_the_refused_record_waits_its_retry_after() {
    for rate_limit in [
        RateLimit::Unlimited,
        RateLimit::Adaptive {
            window: Duration::from_secs(1),
        },
    ] {
        let sink = Arc::new(RefusesOnce::default());
        let config = ProcessorConfig {
            rate_limit,
            ..ProcessorConfig::default()
        };
        let source = futures::stream::iter((1..=1).map(Incoming::new));
        let report = StreamProcessor::new(numbered, Arc::clone(&sink), config)
            .unwrap()
            .start([source])
            .finish()
            .await;
        assert_eq!(report.metrics.delivered, 1);
        let calls = sink.0.lock().unwrap().clone();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            calls[1] - calls[0],
            Duration::from_secs(2),
            "{rate_limit:?}"
        );
    }
}
