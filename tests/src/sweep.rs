//! The deterministic simulation sweep: many seeds, each drawing a whole
//! scenario (sources, partitions, rates, limits, faults, sizes, a stop at a
//! random moment), run in virtual time and checked against every invariant.

use std::fmt;
use std::num::NonZeroU32;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use sluice_models::DataSource;
use sluice_processor::{HandBackReason, Ordering, ProcessorConfig, RateLimit, RetryPolicy};
use sluice_sim::{ApiConfig, Audit, Burst, StreamConfig, WINDOW};

use crate::Harness;

/// One drawn scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The seed it was drawn from (and that seeds its run).
    pub seed: u64,
    /// The downstream.
    pub api: ApiConfig,
    /// The sources.
    pub stream: StreamConfig,
    /// The processor.
    pub processor: ProcessorConfig,
    /// When the processor is stopped.
    pub stop_after: Duration,
}

/// A value drawn log-uniformly from `low..=high`.
fn log_uniform(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    (rng.random_range(low.ln()..=high.ln())).exp()
}

fn whole(rng: &mut ChaCha8Rng, low: u32, high: u32) -> u32 {
    (log_uniform(rng, f64::from(low), f64::from(high) + 1.0).floor() as u32).clamp(low, high)
}

fn millis(rng: &mut ChaCha8Rng, high: u64) -> Duration {
    Duration::from_millis(rng.random_range(0..=high))
}

impl Scenario {
    /// The scenario of `seed`: 1-4 sources of 1-256 partitions, ordering on
    /// or off, 0.5-500 records/s per source, an API limit of 1-10 000/s,
    /// 0-90 % failures, 0-500 ms latency, 0-100 % bad data, a queue of
    /// 1-10 000, 1-1 000 calls in flight, a known, wrong, learned or no
    /// client limit, bursts, and a stop after 0.2-5 s.
    pub fn draw(seed: u64) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut sources = DataSource::ALL.to_vec();
        sources.shuffle(&mut rng);
        sources.truncate(rng.random_range(1..=4));

        let api_limit = whole(&mut rng, 1, 10_000);
        let latency_max = if rng.random_bool(0.2) {
            Duration::ZERO
        } else {
            millis(&mut rng, 500)
        };
        let latency_min =
            Duration::from_secs_f64(latency_max.as_secs_f64() * rng.random_range(0.0..=1.0));
        let api = ApiConfig {
            rate_limit: Some(api_limit),
            failure_rate: rng.random_range(0.0..=0.9),
            latency_min,
            latency_max,
            retry_after_hint: rng.random_bool(0.5),
            keep_log: true,
            seed,
        };
        let stream = StreamConfig {
            sources,
            rate_per_source: log_uniform(&mut rng, 0.5, 500.0),
            emit_probability: 0.8,
            bad_data_rate: rng.random_range(0.0..=1.0),
            partitions: whole(&mut rng, 1, 256),
            burst: rng.random_bool(0.3).then(|| Burst {
                probability: rng.random_range(0.0..=0.2),
                size: whole(&mut rng, 1, 100),
            }),
            seed,
        };
        let known = |limit: f64| {
            RateLimit::PerSecond(
                NonZeroU32::new(limit.round().max(1.0) as u32).unwrap_or(NonZeroU32::MIN),
            )
        };
        let rate_limit = match rng.random_range(0..10) {
            0..=3 => known(f64::from(api_limit)),
            4..=5 => known(f64::from(api_limit) * rng.random_range(0.5..=2.0)),
            6..=8 => RateLimit::Adaptive,
            _ => RateLimit::Unlimited,
        };
        let processor = ProcessorConfig {
            max_in_flight: whole(&mut rng, 1, 1_000) as usize,
            queue_capacity: whole(&mut rng, 1, 10_000) as usize,
            batch_size: whole(&mut rng, 1, 64) as usize,
            rate_limit,
            rate_limit_margin: Duration::ZERO,
            retry: RetryPolicy {
                max_attempts: rng.random_range(1..=8),
                initial_backoff: millis(&mut rng, 100),
                max_elapsed: Duration::from_secs(rng.random_range(1..=30)),
                ..RetryPolicy::default()
            },
            ordering: if rng.random_bool(0.5) {
                Ordering::Partition
            } else {
                Ordering::None
            },
            drain_deadline: millis(&mut rng, 2_000),
            seed,
        };
        Scenario {
            seed,
            api,
            stream,
            processor,
            stop_after: Duration::from_millis(rng.random_range(200..=5_000)),
        }
    }

    /// Runs the scenario on a fresh paused-clock runtime and checks every
    /// invariant.
    pub fn run(&self) -> Result<Outcome, Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|error| self.failure(vec![format!("no runtime: {error}")]))?;
        // Virtual time jumps over waits, so an hour is only a hang guard.
        let outcome = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(3_600), self.run_checked()).await
        });
        match outcome {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(violations)) => Err(self.failure(violations)),
            Err(_) => Err(self.failure(vec![
                "the run did not end within an hour of virtual time".to_owned(),
            ])),
        }
    }

    async fn run_checked(&self) -> Result<Outcome, Vec<String>> {
        let mut violations = Vec::new();
        let capacity = self.processor.queue_capacity as u64;
        let harness = Harness::start(
            self.api.clone(),
            self.stream.clone(),
            self.processor.clone(),
        );
        let mut worst_backlog = 0;
        harness
            .run_for(self.stop_after, Duration::from_millis(50), |metrics| {
                worst_backlog = worst_backlog.max(metrics.backlog);
            })
            .await;
        let report = harness.handle.stop().await;
        let ledger = harness.api.ledger();
        let m = &report.metrics;

        let mut check = |holds: bool, what: String| {
            if !holds {
                violations.push(what);
            }
        };
        check(
            report.task_failures == 0,
            format!("{} task(s) panicked", report.task_failures),
        );
        check(
            report.is_conserved(),
            format!("not conserved: {}", report.conservation()),
        );
        let offered = harness.simulator.offered().total();
        check(
            offered == m.ingested,
            format!("offered {offered} but ingested {}", m.ingested),
        );
        check(
            m.delivered == ledger.successes,
            format!(
                "delivered {} but the API accepted {}",
                m.delivered, ledger.successes
            ),
        );
        check(
            m.attempts == ledger.calls,
            format!(
                "{} attempts but the API saw {} calls",
                m.attempts, ledger.calls
            ),
        );
        check(
            m.failed_calls == ledger.failures,
            format!(
                "{} failed calls but the API failed {}",
                m.failed_calls, ledger.failures
            ),
        );
        check(
            m.rate_limit_hits == ledger.rate_limit_hits,
            format!(
                "{} refusals but the API refused {}",
                m.rate_limit_hits, ledger.rate_limit_hits
            ),
        );
        let cancelled = report
            .handed_back
            .iter()
            .filter(|r| r.reason == HandBackReason::CallCancelled)
            .count() as u64;
        check(
            cancelled == ledger.cancelled,
            format!(
                "{cancelled} calls handed back as cancelled but the API saw {}",
                ledger.cancelled
            ),
        );

        let dead: Vec<_> = report.dead_letters.iter().map(|l| l.key).collect();
        let back: Vec<_> = report.handed_back.iter().map(|r| r.key).collect();
        let audit = Audit::of(harness.simulator.offered(), &ledger, &dead, &back);
        check(audit.lost == 0, format!("{} record(s) lost", audit.lost));
        check(
            audit.duplicates == 0,
            format!("{} duplicate outcome(s)", audit.duplicates),
        );
        check(
            audit.unexpected == 0,
            format!("{} outcome(s) for records never offered", audit.unexpected),
        );
        if self.processor.ordering == Ordering::Partition {
            check(
                audit.order_violations == 0,
                format!(
                    "{} delivery(ies) out of partition order",
                    audit.order_violations
                ),
            );
        }

        if let Some(limit) = self.api.rate_limit {
            let busiest = ledger.max_successes_in_any(WINDOW);
            check(
                busiest <= limit as usize,
                format!("{busiest} successes in one window, limit {limit}"),
            );
        }
        check(
            report.queue_high_water <= capacity && worst_backlog <= capacity,
            format!(
                "{} records inside the pipeline (sampled backlog {worst_backlog}), capacity {capacity}",
                report.queue_high_water
            ),
        );

        if violations.is_empty() {
            Ok(Outcome {
                offered,
                delivered: m.delivered,
                dead_lettered: m.dead_lettered,
                handed_back: m.handed_back,
                rate_limit_hits: m.rate_limit_hits,
            })
        } else {
            Err(violations)
        }
    }

    fn failure(&self, violations: Vec<String>) -> Failure {
        Failure {
            scenario: Box::new(self.clone()),
            violations,
        }
    }
}

/// What a passing scenario did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Records offered.
    pub offered: u64,
    /// Records delivered.
    pub delivered: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Records handed back.
    pub handed_back: u64,
    /// Refused calls.
    pub rate_limit_hits: u64,
}

impl Outcome {
    fn add(&mut self, other: Outcome) {
        self.offered += other.offered;
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.handed_back += other.handed_back;
        self.rate_limit_hits += other.rate_limit_hits;
    }
}

/// A scenario that broke an invariant.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The scenario.
    pub scenario: Box<Scenario>,
    /// Every invariant it broke.
    pub violations: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sweep scenario with seed {} failed:", self.scenario.seed)?;
        for violation in &self.violations {
            writeln!(f, "  - {violation}")?;
        }
        writeln!(f, "  scenario: {:?}", self.scenario)?;
        write!(f, "  replay: {}", replay_command(self.scenario.seed))
    }
}

/// The one command that replays the scenario of `seed`.
pub fn replay_command(seed: u64) -> String {
    format!("cargo xtask sweep --seed {seed} --runs 1")
}

/// The totals of a sweep.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Scenarios run.
    pub runs: u64,
    /// What the passing ones did, summed.
    pub totals: Outcome,
    /// The failing ones.
    pub failures: Vec<Failure>,
}

/// Runs the scenarios of seeds `first..first + runs`, on every core.
pub fn sweep(first: u64, runs: u64) -> Sweep {
    let next = AtomicU64::new(first);
    let end = first.saturating_add(runs);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results: Vec<Sweep> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut part = Sweep::default();
                    loop {
                        let seed = next.fetch_add(1, AtomicOrdering::Relaxed);
                        if seed >= end {
                            return part;
                        }
                        part.runs += 1;
                        let scenario = Scenario::draw(seed);
                        let outcome = catch_unwind(AssertUnwindSafe(|| scenario.run()))
                            .unwrap_or_else(|_| Err(scenario.failure(vec!["panicked".to_owned()])));
                        match outcome {
                            Ok(outcome) => part.totals.add(outcome),
                            Err(failure) => part.failures.push(failure),
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().filter_map(|w| w.join().ok()).collect()
    });
    let mut total = Sweep::default();
    for part in results {
        total.runs += part.runs;
        total.totals.add(part.totals);
        total.failures.extend(part.failures);
    }
    total.failures.sort_by_key(|f| f.scenario.seed);
    total
}
