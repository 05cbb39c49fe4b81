//! A known quota of 60 per minute, run for ten minutes of virtual time
//! against a sink that enforces it: never more than 60 successes in any
//! 60-second window, and at least 95 % of the ceiling used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{End, Harness, Tail, Verdict};
use sluice_processor::{
    Envelope, ProcessorConfig, Quota, RateLimit, RecordId, RetryPolicy, SendError, Sink, SinkError,
    StreamProcessor,
};
use tokio::time::Instant;

const LIMIT: usize = 60;
const WINDOW: Duration = Duration::from_secs(60);
const RUN: Duration = Duration::from_secs(600);

/// An API that admits at most `LIMIT` successes in any closed window of
/// `WINDOW` (refusing the call otherwise), and records when it admitted
/// each success. Answers after 10 ms.
#[derive(Default)]
struct QuotaSink {
    admitted: Mutex<Vec<(Instant, RecordId)>>,
    refused: Mutex<u64>,
}

#[async_trait]
impl Sink<u64> for QuotaSink {
    async fn send(&self, batch: &[Envelope<u64>]) -> Result<(), SendError> {
        let outcome = {
            let now = Instant::now();
            let mut admitted = self.admitted.lock().unwrap();
            let in_window = admitted
                .iter()
                .filter(|&&(at, _)| at + WINDOW >= now)
                .count();
            if in_window + batch.len() > LIMIT {
                *self.refused.lock().unwrap() += 1;
                Err(SinkError::RateLimited { retry_after: None }.into())
            } else {
                admitted.extend(batch.iter().map(|envelope| (now, envelope.id)));
                Ok(())
            }
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        outcome
    }
}

/// The most successes in any closed window of `WINDOW`, of sorted `times`.
fn most_in_any_window(times: &[Instant]) -> usize {
    let mut most = 0;
    let mut end = 0;
    for (start, &at) in times.iter().enumerate() {
        while end < times.len() && times[end] <= at + WINDOW {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

#[tokio::test(start_paused = true)]
async fn a_quota_of_sixty_a_minute_is_kept_and_used_over_ten_minutes() {
    let harness = Harness::default();
    let sink = Arc::new(QuotaSink::default());
    let config = ProcessorConfig {
        rate_limit: RateLimit::Fixed(Quota {
            limit: NonZeroU32::new(LIMIT as u32).unwrap(),
            window: WINDOW,
        }),
        // A record may wait most of a window for a slot; none should time
        // out while the quota is the only bound.
        retry: RetryPolicy {
            max_elapsed: Duration::from_secs(3_600),
            ..RetryPolicy::default()
        },
        ..ProcessorConfig::default()
    };
    let transform = common::transform(|_| Verdict::Accept);
    let processor = StreamProcessor::new(transform, Arc::clone(&sink), config).unwrap();
    // 1 000 records on offer, more than the 600 the quota allows in ten
    // minutes; the source then waits, so only the stop ends the run.
    let source = harness.source(common::inputs(1, 1_000), Tail::Pending);
    let started = Instant::now();
    let handle = processor.start([source]);
    let report = common::end(handle, End::StopAfter(RUN), Duration::from_secs(5)).await;

    let admitted = sink.admitted.lock().unwrap().clone();
    let accepted: Vec<RecordId> = admitted.iter().map(|&(_, id)| id).collect();
    let accounts = common::account(&report, &harness, &accepted, &[]);
    assert!(
        accounts.dead.is_empty(),
        "nothing timed out waiting for the quota"
    );
    assert!(
        !accounts.handed_back.is_empty(),
        "more was offered than allowed"
    );

    // Never above the quota: in any 60-second window (closed, sliding over
    // every success), at most 60 admissions; and the API never refused.
    let mut times: Vec<Instant> = admitted.iter().map(|&(at, _)| at).collect();
    times.sort();
    assert_eq!(most_in_any_window(&times), LIMIT);
    assert_eq!(*sink.refused.lock().unwrap(), 0);
    assert_eq!(report.metrics.rate_limit_hits, 0);

    // And the quota used: successes counted over the whole run (from the
    // start to the stop, ten minutes of virtual time) reach 95 % of the
    // 600 it allows.
    assert!(times.iter().all(|&at| at <= started + RUN));
    let ceiling = LIMIT as f64 * (RUN.as_secs_f64() / WINDOW.as_secs_f64());
    let used = times.len() as f64;
    assert!(
        used >= 0.95 * ceiling,
        "{used} successes of a {ceiling} ceiling"
    );
}
