//! Against an API whose quota counts calls, a backlog spread over many
//! partitions goes in full calls: the quota moves calls × batch records.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::time::Duration;

use sluice_processor::{BatchConfig, DeliveryOrder, LimitUnit, ProcessorConfig, RateLimit};
use sluice_sim::{ApiConfig, StreamConfig};
use sluice_tests::Harness;

#[tokio::test(start_paused = true)]
async fn a_quota_of_ten_calls_a_second_moves_ten_full_calls_of_500_records() {
    let (calls_per_second, batch) = (10, 500);
    // Three sources of eleven partitions each, offering about 10 000
    // records a second: twice what the quota can take in full calls.
    let stream = StreamConfig {
        rate_per_source: 1_400.0,
        bad_data_rate: 0.0,
        partitions: 11,
        seed: 7,
        ..StreamConfig::default()
    };
    assert!(stream.offered_rate() >= 2.0 * f64::from(calls_per_second * batch));
    let harness = Harness::start(
        ApiConfig {
            rate_limit: Some(calls_per_second),
            seed: 7,
            ..ApiConfig::default() // 15 % failures, 10-50 ms
        },
        stream,
        ProcessorConfig {
            max_in_flight: 16,
            // As `sluice run` sizes it: two full calls per call in flight.
            queue_capacity: 2 * 16 * batch as usize,
            batch: BatchConfig {
                max_records: batch as usize,
                linger: Duration::from_millis(100),
                ..BatchConfig::default()
            },
            rate_limit: RateLimit::per_second(calls_per_second.try_into().unwrap()),
            limit_unit: LimitUnit::Calls,
            ordering: DeliveryOrder::Partition,
            seed: 7,
            ..ProcessorConfig::default()
        },
    );
    let seconds = 30;
    harness
        .run_for(Duration::from_secs(seconds), Duration::from_secs(1), |_| {})
        .await;
    let ledger = harness.api.ledger();
    let report = harness.handle.stop().await;

    let counts = ledger.counts;
    assert_eq!(counts.rate_limit_hits, 0, "{counts:?}");
    assert_eq!(counts.order_violations, 0, "{counts:?}");
    assert_eq!(counts.duplicates, 0, "{counts:?}");
    let per_second = counts.records_delivered as f64 / seconds as f64;
    let ceiling = f64::from(calls_per_second * batch);
    assert!(
        per_second >= 0.9 * ceiling,
        "{per_second:.0} records/s of {ceiling}: {counts:?}"
    );
    // Full calls, not merely many records: at most a call in ten short.
    assert!(
        counts.records_delivered >= counts.successes * u64::from(batch) * 9 / 10,
        "{counts:?}"
    );
    assert!(report.is_conserved(), "{}", report.conservation());
}
