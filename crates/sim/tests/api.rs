//! The simulated API, under tokio's paused clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use std::sync::Arc;
use std::time::Duration;

use sluice_models::{JsonObject, ProcessedRecord};
use sluice_processor::{Envelope, RecordId, SendError, Sink, SinkError, StreamName};
use sluice_sim::{ApiConfig, SimulatedApi, WINDOW};
use tokio::time::Instant;

fn record(partition: u32, sequence_id: u64) -> ProcessedRecord {
    let mut data = JsonObject::new();
    data.insert("k".to_owned(), 1.into());
    ProcessedRecord {
        source: "user_events".to_owned(),
        timestamp: 1.0,
        priority: 1,
        processed_at: 1.0,
        transformed_data: data,
        processing_time_ms: 0.0,
        partition,
        sequence_id,
    }
}

/// Sends one record as a batch of one, as the processor does by default.
async fn send(api: &SimulatedApi, record: ProcessedRecord) -> Result<(), SinkError> {
    let id = RecordId {
        stream: StreamName::new(&record.source).unwrap(),
        partition: record.partition,
        sequence: record.sequence_id,
    };
    match api.send(&[Envelope::new(id, record)]).await {
        Ok(()) => Ok(()),
        Err(SendError::Batch(error)) => Err(error),
        Err(other) => panic!("the simulated API answers per batch, got {other:?}"),
    }
}

/// `callers` callers, each sending as fast as refusals let it, for `seconds`.
async fn hammer(api: &Arc<SimulatedApi>, callers: u32, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let api = Arc::clone(api);
            tokio::spawn(async move {
                let mut sequence_id = 1;
                while Instant::now() < deadline {
                    match send(&api, record(caller, sequence_id)).await {
                        Ok(()) => sequence_id += 1,
                        // Refusals are instant; wait a little so that virtual
                        // time moves on.
                        Err(SinkError::RateLimited { .. }) => {
                            tokio::time::sleep(Duration::from_millis(10)).await
                        }
                        Err(_) => {}
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a caller panicked");
    }
}

#[tokio::test(start_paused = true)]
async fn the_limit_holds_in_every_window_under_a_thousand_concurrent_callers() {
    let api = Arc::new(SimulatedApi::new(ApiConfig::default()).unwrap());
    hammer(&api, 1_000, 5).await;
    let ledger = api.ledger();

    assert!(
        ledger.max_successes_in_any(WINDOW) <= 15,
        "{}",
        ledger.max_successes_in_any(WINDOW)
    );
    // The ceiling is reached: 15 a second for 5 seconds.
    assert_eq!(ledger.counts.successes, 75);
    assert!(
        ledger.counts.rate_limit_hits > 100_000,
        "callers were refused, not queued"
    );
    let counts = ledger.counts;
    assert_eq!(
        counts.calls,
        counts.successes + counts.failures + counts.rate_limit_hits
    );
    assert_eq!(counts.duplicates, 0);
}

#[tokio::test(start_paused = true)]
async fn failures_occur_at_the_configured_rate() {
    let config = ApiConfig {
        rate_limit: None,
        ..ApiConfig::default()
    };
    let api = Arc::new(SimulatedApi::new(config).unwrap());
    hammer(&api, 100, 10).await;
    let ledger = api.ledger();
    // 100 callers x 10 s / ~30 ms per call: ~33 000 calls. Four standard
    // deviations of a binomial fraction at p = 0.15 is about 0.008.
    let counts = ledger.counts;
    assert!(counts.calls > 25_000, "{}", counts.calls);
    // No limit, so every call completes: failures per call estimate the
    // failure rate.
    assert_eq!(counts.rate_limit_hits, 0);
    let sigma = (0.15f64 * 0.85 / counts.calls as f64).sqrt();
    assert!(
        (counts.failures_per_call() - 0.15).abs() < 4.0 * sigma,
        "{}",
        counts.failures_per_call()
    );
}

#[tokio::test(start_paused = true)]
async fn latency_is_drawn_from_the_configured_range() {
    let api = SimulatedApi::new(ApiConfig {
        rate_limit: None,
        failure_rate: 0.0,
        ..ApiConfig::default()
    })
    .unwrap();
    let mut latencies = Vec::new();
    for sequence_id in 1..=200 {
        let start = Instant::now();
        send(&api, record(0, sequence_id)).await.unwrap();
        latencies.push(start.elapsed());
    }
    assert!(
        latencies
            .iter()
            .all(|l| (Duration::from_millis(10)..=Duration::from_millis(50)).contains(l))
    );
    let mean = latencies.iter().sum::<Duration>() / 200;
    assert!(
        (Duration::from_millis(25)..=Duration::from_millis(35)).contains(&mean),
        "{mean:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_can_say_when_a_slot_frees() {
    let api = SimulatedApi::new(ApiConfig {
        rate_limit: Some(2),
        failure_rate: 0.0,
        retry_after_hint: true,
        ..ApiConfig::default()
    })
    .unwrap();
    let start = Instant::now();
    send(&api, record(0, 1)).await.unwrap();
    send(&api, record(0, 2)).await.unwrap();
    let after_two = start.elapsed();
    match send(&api, record(0, 3)).await {
        Err(SinkError::RateLimited {
            retry_after: Some(wait),
        }) => {
            assert_eq!(wait, WINDOW - after_two);
            tokio::time::sleep(wait).await;
            send(&api, record(0, 3)).await.unwrap();
        }
        other => panic!("expected a refusal with a hint, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn failed_and_cancelled_calls_give_their_slot_back() {
    let api = Arc::new(
        SimulatedApi::new(ApiConfig {
            rate_limit: Some(1),
            failure_rate: 0.0,
            ..ApiConfig::default()
        })
        .unwrap(),
    );
    // A call abandoned mid-flight frees its slot and is not delivered.
    let cancelled = tokio::time::timeout(Duration::from_millis(5), send(&api, record(0, 1))).await;
    assert!(cancelled.is_err());
    send(&api, record(0, 2)).await.unwrap();
    let ledger = api.ledger();
    assert_eq!((ledger.counts.cancelled, ledger.counts.successes), (1, 1));
    assert_eq!(ledger.deliveries.len(), 1);

    let always_fails = SimulatedApi::new(ApiConfig {
        rate_limit: Some(1),
        failure_rate: 1.0,
        ..ApiConfig::default()
    })
    .unwrap();
    for sequence_id in 1..=5 {
        let outcome = send(&always_fails, record(0, sequence_id)).await;
        assert!(
            matches!(outcome, Err(SinkError::Transient(_))),
            "{outcome:?}"
        );
    }
    assert_eq!(always_fails.ledger().counts.rate_limit_hits, 0);
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_ledger() {
    async fn run(seed: u64) -> sluice_sim::Ledger {
        let api = Arc::new(
            SimulatedApi::new(ApiConfig {
                seed,
                ..ApiConfig::default()
            })
            .unwrap(),
        );
        hammer(&api, 20, 3).await;
        api.ledger()
    }
    let first = run(7).await;
    assert_eq!(first, run(7).await);
    assert_ne!(first.success_times, run(8).await.success_times);
}

#[test]
fn unusable_settings_are_refused_naming_the_setting() {
    for (config, field) in [
        (
            ApiConfig {
                failure_rate: 1.5,
                ..ApiConfig::default()
            },
            "api.failure_rate",
        ),
        (
            ApiConfig {
                rate_limit: Some(0),
                ..ApiConfig::default()
            },
            "api.rate_limit",
        ),
        (
            ApiConfig {
                latency_min: Duration::from_secs(1),
                ..ApiConfig::default()
            },
            "api.latency_min",
        ),
    ] {
        let error = SimulatedApi::new(config).unwrap_err();
        assert_eq!(error.field, field);
        assert!(error.to_string().contains(field));
    }
}
