//! Per-partition order, across retries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::collections::HashMap;
use std::time::Duration;

use sluice_models::DataSource;
use sluice_processor::{DeliveryOrder, ProcessorConfig, RateLimit, RetryPolicy};
use sluice_sim::{ApiConfig, StreamConfig};
use sluice_tests::Harness;

/// A flaky API (half the calls fail), many partitions, many workers.
async fn run(ordering: DeliveryOrder) -> (sluice_sim::Ledger, sluice_tests::SeedReport) {
    let harness = Harness::start(
        ApiConfig {
            rate_limit: Some(200),
            failure_rate: 0.5,
            seed: 5,
            ..ApiConfig::default()
        },
        StreamConfig {
            sources: DataSource::ALL.to_vec(),
            rate_per_source: 20.0,
            partitions: 4,
            seed: 5,
            ..StreamConfig::default()
        },
        ProcessorConfig {
            max_in_flight: 16,
            ordering,
            rate_limit: RateLimit::per_second(200.try_into().unwrap()),
            retry: RetryPolicy {
                max_attempts: 20,
                ..RetryPolicy::default()
            },
            seed: 5,
            ..ProcessorConfig::default()
        },
    );
    harness
        .run_for(Duration::from_secs(20), Duration::from_secs(1), |_| {})
        .await;
    let report = harness.handle.stop().await;
    (harness.api.ledger(), report)
}

#[tokio::test(start_paused = true)]
async fn each_partition_is_delivered_in_sequence_across_retries() {
    let (ledger, report) = run(DeliveryOrder::Partition).await;
    assert!(
        ledger.counts.failures > 500,
        "retries happened: {}",
        ledger.counts.failures
    );
    assert!(ledger.counts.successes > 1_000);
    let mut last: HashMap<_, u64> = HashMap::new();
    for key in &ledger.deliveries {
        let previous = last
            .insert(key.partition_key(), key.sequence_id)
            .unwrap_or(0);
        assert!(key.sequence_id > previous, "{key} after #{previous}");
    }
    assert_eq!(last.len(), 16);
    assert_eq!(ledger.counts.order_violations, 0);
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn without_ordering_retries_reorder_deliveries() {
    // The check above would catch an implementation that ignores order.
    let (ledger, report) = run(DeliveryOrder::None).await;
    assert!(ledger.counts.order_violations > 0);
    assert_eq!(ledger.counts.duplicates, 0);
    assert!(report.is_conserved());
}
