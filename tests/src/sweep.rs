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
use sluice_processor::{
    BatchConfig, CountedFrom, DeliveryOrder, LimitUnit, ProcessorConfig, Quota, RateLimit,
    RetryPolicy,
};
use sluice_sim::{ApiConfig, Burst, StreamConfig, WINDOW};

use crate::faults::Faults;

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
    /// The streams' names, by source index: the core knows no source names.
    pub stream_names: [&'static str; 4],
    /// Faults in user code.
    pub faults: Faults,
    /// Whether dead letters go to an outlet of the scenario's (else the
    /// processor keeps them for the report).
    pub outlet: bool,
    /// When the processor is stopped.
    pub stop_after: Duration,
}

/// Names a scenario may give its streams.
const NAMES: [&str; 10] = [
    "orders-eu",
    "clicks",
    "payments.v2",
    "метрики",
    "a",
    "logs/security",
    "user_events",
    "transaction_data",
    "x",
    "🚀",
];

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

/// A fault rate: 0 most of the time, else up to `high`.
fn sometimes(rng: &mut ChaCha8Rng, high: f64) -> f64 {
    if rng.random_bool(0.25) {
        rng.random_range(0.0..=high)
    } else {
        0.0
    }
}

impl Scenario {
    /// The scenario of `seed`: 1-4 sources of 1-256 partitions under free
    /// stream names, ordering on or off, 0.5-500 records/s per source, an
    /// API limit of 1-10 000 per window of 100 ms to 60 s, 0-90 % failures,
    /// 0-500 ms latency, 0-100 % bad data, a queue of 1-10 000, 1-1 000
    /// calls in flight, batches of 1-64 records with or without linger, a
    /// known, wrong, learned or no client limit counting calls or records,
    /// bursts, in half the scenarios faults in user code (panicking or
    /// hanging sources, sinks and outlets, panicking transforms, huge
    /// Retry-After values), and a stop after 0.2-5 s.
    pub fn draw(seed: u64) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut sources = DataSource::ALL.to_vec();
        sources.shuffle(&mut rng);
        sources.truncate(rng.random_range(1..=4));
        let mut names = NAMES;
        names.shuffle(&mut rng);
        let stream_names = [names[0], names[1], names[2], names[3]];

        let api_limit = whole(&mut rng, 1, 10_000);
        let window = match rng.random_range(0..10) {
            0 => Duration::from_millis(100),
            1 => Duration::from_millis(250),
            2 => Duration::from_secs(5),
            3 => Duration::from_secs(60),
            _ => WINDOW,
        };
        let latency_max = if rng.random_bool(0.2) {
            Duration::ZERO
        } else {
            millis(&mut rng, 500)
        };
        let latency_min =
            Duration::from_secs_f64(latency_max.as_secs_f64() * rng.random_range(0.0..=1.0));
        let api = ApiConfig {
            rate_limit: Some(api_limit),
            window,
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
            RateLimit::Fixed(Quota {
                limit: NonZeroU32::new(limit.round().max(1.0) as u32).unwrap_or(NonZeroU32::MIN),
                window,
            })
        };
        let rate_limit = match rng.random_range(0..10) {
            0..=3 => known(f64::from(api_limit)),
            4..=5 => known(f64::from(api_limit) * rng.random_range(0.5..=2.0)),
            6..=8 => RateLimit::Adaptive { window },
            _ => RateLimit::Unlimited,
        };
        let max_records = if rng.random_bool(0.5) {
            1
        } else {
            whole(&mut rng, 1, 64) as usize
        };
        let limit_unit = match rate_limit {
            RateLimit::Fixed(quota)
                if rng.random_bool(0.3) && max_records <= NonZeroU32::get(quota.limit) as usize =>
            {
                LimitUnit::Records
            }
            _ => LimitUnit::Calls,
        };
        let faulty = rng.random_bool(0.5);
        let faults = if faulty {
            Faults {
                source_fails_after: rng
                    .random_bool(0.2)
                    .then(|| u64::from(whole(&mut rng, 1, 500))),
                source_hangs: rng.random_bool(0.5),
                transform_panics: sometimes(&mut rng, 0.05),
                sink_panics_early: sometimes(&mut rng, 0.05),
                sink_panics: sometimes(&mut rng, 0.05),
                sink_hangs: sometimes(&mut rng, 0.05),
                huge_retry_after: sometimes(&mut rng, 0.5),
                outlet_panics: sometimes(&mut rng, 0.1),
                outlet_hangs: sometimes(&mut rng, 0.1),
                outlet_errs: sometimes(&mut rng, 0.1),
            }
        } else {
            Faults::default()
        };
        let outlet = faults.outlet_panics + faults.outlet_hangs + faults.outlet_errs > 0.0
            || rng.random_bool(0.3);
        let processor = ProcessorConfig {
            max_in_flight: whole(&mut rng, 1, 1_000) as usize,
            queue_capacity: whole(&mut rng, 1, 10_000) as usize,
            take_size: whole(&mut rng, 1, 64) as usize,
            batch: BatchConfig {
                max_records,
                linger: if rng.random_bool(0.3) {
                    millis(&mut rng, 50)
                } else {
                    Duration::ZERO
                },
                ..BatchConfig::default()
            },
            rate_limit,
            limit_unit,
            counted_from: match rng.random_range(0..10) {
                0..=1 => CountedFrom::Answer,
                2..=3 => CountedFrom::CallThenAnswer,
                _ => CountedFrom::Call,
            },
            rate_limit_margin: if rng.random_bool(0.05) {
                Duration::MAX
            } else {
                Duration::ZERO
            },
            max_retry_after: if rng.random_bool(0.2) {
                Duration::MAX
            } else {
                millis(&mut rng, 10_000)
            },
            call_timeout: Duration::from_secs_f64(log_uniform(&mut rng, 0.01, 30.0)),
            retry: RetryPolicy {
                max_attempts: rng.random_range(1..=8),
                initial_backoff: millis(&mut rng, 100),
                max_elapsed: Duration::from_secs(rng.random_range(1..=30)),
                ..RetryPolicy::default()
            },
            ordering: if rng.random_bool(0.5) {
                DeliveryOrder::Partition
            } else {
                DeliveryOrder::None
            },
            drain_deadline: millis(&mut rng, 2_000),
            seed,
            circuit_after: ProcessorConfig::default().circuit_after,
        };
        Scenario {
            seed,
            api,
            stream,
            processor,
            stream_names,
            faults,
            outlet,
            stop_after: Duration::from_millis(rng.random_range(200..=5_000)),
        }
    }

    /// Runs the scenario on a fresh paused-clock runtime and checks every
    /// invariant.
    pub fn run(&self) -> Result<Outcome, Failure> {
        crate::faults::quiet_injected_panics();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|error| self.failure(vec![format!("no runtime: {error}")]))?;
        // Virtual time jumps over waits, so a day is only a hang guard.
        let outcome = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(86_400), self.run_checked()).await
        });
        match outcome {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(violations)) => Err(self.failure(violations)),
            Err(_) => Err(self.failure(vec![
                "the run did not end within a day of virtual time".to_owned(),
            ])),
        }
    }

    async fn run_checked(&self) -> Result<Outcome, Vec<String>> {
        let run = crate::sweep_run::Run::start(self);
        let observed = run.finish(self).await;
        crate::sweep_run::check(self, &observed)
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
    /// Faults of user code caught (injected ones).
    pub faults_caught: u64,
}

impl Outcome {
    fn add(&mut self, other: Outcome) {
        self.offered += other.offered;
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.handed_back += other.handed_back;
        self.rate_limit_hits += other.rate_limit_hits;
        self.faults_caught += other.faults_caught;
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
