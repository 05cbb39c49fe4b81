//! A source ten times faster than the API: the queue stays within its
//! capacity, and the source is slowed rather than buffered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::time::Duration;

use sluice_processor::{ProcessorConfig, RateLimit};
use sluice_sim::{ApiConfig, Audit, StreamConfig};
use sluice_tests::Harness;

#[tokio::test(start_paused = true)]
async fn the_queue_never_exceeds_its_capacity_and_the_source_slows_down() {
    let capacity = 50;
    let stream = StreamConfig {
        rate_per_source: 25.0, // 0.8 x 25 x 3 x 3 = 180 records a second
        seed: 2,
        ..StreamConfig::default()
    };
    let api_limit = 16; // a tenth of what the sources offer
    assert!(stream.offered_rate() >= 10.0 * f64::from(api_limit));
    let harness = Harness::start(
        ApiConfig {
            rate_limit: Some(api_limit),
            seed: 2,
            ..ApiConfig::default()
        },
        stream,
        ProcessorConfig {
            queue_capacity: capacity,
            rate_limit: RateLimit::per_second(api_limit.try_into().unwrap()),
            seed: 2,
            ..ProcessorConfig::default()
        },
    );
    let mut samples = 0;
    harness
        .run_for(
            Duration::from_secs(60),
            Duration::from_millis(10),
            |metrics| {
                samples += 1;
                assert!(metrics.backlog <= capacity as u64, "{metrics:#?}");
                assert!(metrics.queued <= capacity as u64);
            },
        )
        .await;
    assert_eq!(samples, 6_000);
    assert_eq!(
        harness.handle.queue_high_water(),
        capacity,
        "the queue filled up"
    );

    let report = harness.handle.stop().await;
    let ledger = harness.api.ledger();
    // Pull-based: the sources made only what the processor could take.
    let offered = harness.simulator.offered().total();
    assert!(
        offered <= ledger.counts.successes + capacity as u64,
        "offered {offered}"
    );
    assert!(ledger.counts.successes >= 60 * u64::from(api_limit) * 98 / 100);

    let (dead, back) = sluice_tests::outcome_keys(&report);
    let audit = Audit::of(harness.simulator.offered(), &ledger, &dead, &back);
    assert!(audit.is_clean(), "{audit:?}");
}
