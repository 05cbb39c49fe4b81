//! Stopping with records in flight: they finish within the drain deadline,
//! or are cancelled and handed back; nothing is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::time::Duration;

use sluice_models::DataSource;
use sluice_processor::{HandBackReason, ProcessorConfig, RateLimit};
use sluice_sim::{ApiConfig, Audit, StreamConfig};
use sluice_tests::Harness;

fn slow_api() -> ApiConfig {
    ApiConfig {
        rate_limit: Some(100),
        failure_rate: 0.3,
        latency_min: Duration::from_millis(300),
        latency_max: Duration::from_millis(500),
        seed: 4,
        ..ApiConfig::default()
    }
}

fn stream() -> StreamConfig {
    StreamConfig {
        sources: DataSource::ALL.to_vec(),
        rate_per_source: 10.0,
        partitions: 8,
        seed: 4,
        ..StreamConfig::default()
    }
}

fn processor(drain_deadline: Duration) -> ProcessorConfig {
    ProcessorConfig {
        max_in_flight: 32,
        rate_limit: RateLimit::per_second(100.try_into().unwrap()),
        drain_deadline,
        seed: 4,
        ..ProcessorConfig::default()
    }
}

async fn stop_mid_flight(
    drain_deadline: Duration,
) -> (sluice_tests::SeedReport, sluice_sim::Ledger, Audit) {
    let harness = Harness::start(slow_api(), stream(), processor(drain_deadline));
    harness
        .run_for(
            Duration::from_millis(5_150),
            Duration::from_millis(50),
            |_| {},
        )
        .await;
    let in_flight = harness.handle.metrics().in_flight;
    assert!(
        in_flight >= 10,
        "calls are in flight when the stop begins: {in_flight}"
    );
    let report = harness.handle.stop().await;
    let ledger = harness.api.ledger();
    let (dead, back) = sluice_tests::outcome_keys(&report);
    let audit = Audit::of(harness.simulator.offered(), &ledger, &dead, &back);
    (report, ledger, audit)
}

#[tokio::test(start_paused = true)]
async fn calls_in_flight_finish_within_the_drain_deadline() {
    let (report, ledger, audit) = stop_mid_flight(Duration::from_secs(2)).await;
    assert!(report.is_conserved(), "{}", report.conservation());
    assert!(audit.is_clean(), "{audit:?}");
    assert_eq!(ledger.counts.cancelled, 0, "nothing needed cancelling");
    assert!(
        report
            .handed_back
            .iter()
            .all(|r| r.reason != HandBackReason::CallCancelled)
    );
    assert!(
        report
            .handed_back
            .iter()
            .any(|r| r.reason == HandBackReason::AwaitingRetry)
    );
    assert_eq!(report.metrics.in_flight, 0);
    assert_eq!(report.metrics.delivered, ledger.counts.successes);
}

#[tokio::test(start_paused = true)]
async fn calls_past_the_deadline_are_cancelled_and_handed_back() {
    let (report, ledger, audit) = stop_mid_flight(Duration::from_millis(10)).await;
    let cancelled = report
        .handed_back
        .iter()
        .filter(|r| r.reason == HandBackReason::CallCancelled)
        .count() as u64;
    assert!(cancelled >= 10, "{cancelled}");
    assert_eq!(
        ledger.counts.cancelled, cancelled,
        "the API saw exactly those calls abandoned"
    );
    assert!(report.is_conserved(), "{}", report.conservation());
    assert!(audit.is_clean(), "{audit:?}");
    // Handed back in order, ready to resubmit.
    let ids: Vec<_> = report.handed_back.iter().map(|r| r.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert!(ids.len() >= 10);
}
