//! The 10-second check, in virtual time: the ceiling without hammering,
//! exact metrics, nothing lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of tests may panic

use sluice_processor::RateLimit;
use sluice_sim::simulation::{self, SimulationConfig};
use sluice_tests::virtual_ten_second_check;

async fn run(config: &SimulationConfig) -> sluice_sim::report::RunReport {
    simulation::run(config, |_| {}, std::future::pending())
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_known_limit_reaches_the_ceiling_without_refusals() {
    for seed in 1..=5 {
        let run = run(&virtual_ten_second_check(seed)).await;
        assert!(run.passed, "seed {seed}: {:#?}", run.checks);
        assert!(
            run.ceiling_utilization.unwrap() >= 0.99,
            "seed {seed}: {run:#?}"
        );
        assert!(
            run.rate_limit_hits * 100 <= run.attempts,
            "seed {seed}: {run:#?}"
        );
        assert_eq!((run.lost, run.duplicates, run.order_violations), (0, 0, 0));
        assert!(run.backlog_size <= 100);
        // Exact, not merely within the original's tolerances.
        assert_eq!(run.metrics_accuracy, 1.0);
        assert_eq!(run.delivered, run.api.successes);
        assert_eq!(run.attempts, run.api.calls);
        assert_eq!(run.failed_calls, run.api.failures);
        assert_eq!(run.rate_limit_hits, run.api.rate_limit_hits);
    }
}

#[tokio::test(start_paused = true)]
async fn an_unknown_limit_is_learned_with_few_refusals() {
    for seed in 1..=5 {
        let mut config = virtual_ten_second_check(seed);
        config.processor.rate_limit = RateLimit::Adaptive {
            window: sluice_sim::WINDOW,
        };
        let run = run(&config).await;
        assert!(
            run.ceiling_utilization.unwrap() >= 0.90,
            "seed {seed}: {run:#?}"
        );
        assert!(
            run.rate_limit_hits * 20 <= run.attempts,
            "seed {seed}: {run:#?}"
        );
        assert!(
            run.rate_limit_hits > 0,
            "the limit can only be learned from a refusal"
        );
        assert_eq!(run.client_rate_limit, Some(15), "seed {seed}");
        assert!(run.passed, "seed {seed}: {:#?}", run.checks);
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_client_limit_the_api_is_hammered() {
    // The contrast that shows the limiter matters: the same run, no limiter.
    let mut config = virtual_ten_second_check(1);
    config.processor.rate_limit = RateLimit::Unlimited;
    let run = run(&config).await;
    assert!(run.rate_limit_hits * 20 > run.attempts, "{run:#?}");
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_replays_the_same_run() {
    let config = virtual_ten_second_check(11);
    let first = run(&config).await;
    assert_eq!(first, run(&config).await);
    assert_ne!(first, run(&virtual_ten_second_check(12)).await);
}

#[tokio::test(start_paused = true)]
async fn an_api_that_always_fails_loses_nothing() {
    let mut config = virtual_ten_second_check(3);
    config.api.failure_rate = 1.0;
    let run = run(&config).await;
    assert_eq!(run.delivered, 0);
    assert!(run.dead_lettered > 0);
    assert_eq!(run.ingested, run.dead_lettered + run.handed_back);
    assert_eq!((run.lost, run.duplicates), (0, 0));
    assert!(run.conserved);
    assert!(
        !run.passed,
        "an error rate of 100% fails the original's threshold"
    );
}
