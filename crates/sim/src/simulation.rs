//! One run of the pipeline against the simulator: `sluice simulate`,
//! the acceptance check and the sweep.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::{ApiConfig, Audit, SimulatedApi, StreamConfig, StreamSimulator, metric_accuracy};
use sluice_processor::{EpochClock, MetricsSnapshot, ProcessorConfig, RateLimit, StreamProcessor};
use sluice_profiles::seed::{SeedProfile, pipeline_metrics, record_key};

use crate::report::RunReport;

/// The epoch time a virtual-time run starts at, so that its records are
/// identical from run to run (2025-11-29T07:06:40Z).
pub const VIRTUAL_EPOCH: f64 = 1_764_400_000.0;

/// Everything one simulated run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationConfig {
    /// How long the sources run before the processor is stopped.
    pub duration: Duration,
    /// The simulated downstream.
    pub api: ApiConfig,
    /// The simulated sources.
    pub stream: StreamConfig,
    /// The processor under test.
    pub processor: ProcessorConfig,
    /// Run on tokio's paused clock: as fast as the CPU allows, and
    /// deterministic for a given seed.
    pub virtual_time: bool,
    /// The run's seed; the API, the streams and the retry jitter derive
    /// theirs from it.
    pub seed: u64,
}

impl SimulationConfig {
    /// The original 10-second check, on the real clock, with the client
    /// told the API's limit: `sluice simulate`'s defaults (16 calls in
    /// flight, as `sluice run`; a queue of 100, the original's backlog
    /// bound).
    pub fn ten_second_check(seed: u64) -> SimulationConfig {
        let api = ApiConfig::default();
        let known_limit = api.rate_limit.and_then(NonZeroU32::new).map_or(
            RateLimit::Adaptive {
                window: crate::WINDOW,
            },
            RateLimit::per_second,
        );
        SimulationConfig {
            duration: Duration::from_secs(10),
            api,
            stream: StreamConfig::default(),
            processor: ProcessorConfig {
                rate_limit: known_limit,
                max_in_flight: 16,
                ..ProcessorConfig::default()
            },
            virtual_time: false,
            seed,
        }
        .seeded()
    }

    /// Gives every part the run's seed.
    pub fn seeded(mut self) -> SimulationConfig {
        self.api.seed = self.seed;
        self.stream.seed = self.seed;
        self.processor.seed = self.seed;
        self
    }
}

/// A run that could not start: a setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// A simulator setting.
    #[error(transparent)]
    Simulator(#[from] crate::SimError),
    /// A processor setting.
    #[error(transparent)]
    Processor(#[from] sluice_processor::ConfigError),
    /// The seed profile's stream names could not be interned.
    #[error(transparent)]
    Streams(#[from] sluice_processor::StreamNameError),
    /// The async runtime could not be built.
    #[error("could not start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Runs `config` to completion on a runtime of its own: tokio's paused
/// clock on one thread for virtual time, the multi-threaded runtime
/// otherwise. `on_status` is called about once a second of run time;
/// `interrupt` (made on that runtime) cuts the run short, which then
/// reports on the part that ran.
pub fn run_blocking<Interrupt: Future<Output = ()>>(
    config: &SimulationConfig,
    on_status: impl FnMut(&MetricsSnapshot),
    interrupt: impl FnOnce() -> Interrupt,
) -> Result<RunReport, SimulationError> {
    let runtime = if config.virtual_time {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(async { run(config, on_status, interrupt()).await })
}

/// Runs `config` on the current runtime (which must have a paused clock
/// when `virtual_time` is set, as under `#[tokio::test(start_paused = true)]`),
/// until its duration has passed or `interrupt` completes.
pub async fn run(
    config: &SimulationConfig,
    mut on_status: impl FnMut(&MetricsSnapshot),
    interrupt: impl Future<Output = ()>,
) -> Result<RunReport, SimulationError> {
    let clock = if config.virtual_time {
        EpochClock::starting_at(VIRTUAL_EPOCH)
    } else {
        EpochClock::system()
    };
    let api = Arc::new(SimulatedApi::new(config.api.clone())?);
    let simulator = StreamSimulator::new(config.stream.clone(), clock)?;
    let profile = SeedProfile::new()?;
    let processor = StreamProcessor::new(profile, Arc::clone(&api), config.processor.clone())?
        .with_clock(clock);
    let handle = processor.start(simulator.sources());

    let deadline = tokio::time::Instant::now() + config.duration;
    let mut status = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let started = tokio::time::Instant::now();
    tokio::pin!(interrupt);
    let mut config = config.clone();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = status.tick() => on_status(&handle.metrics()),
            () = &mut interrupt => {
                // Ctrl-C: stop now and report on the part that ran.
                tracing::warn!("interrupted: stopping and reporting the run so far");
                config.duration = started.elapsed().max(Duration::from_millis(1));
                break;
            }
        }
    }
    let config = &config;
    let report = handle.stop().await;

    let ledger = api.ledger();
    let dead_lettered: Vec<_> = report
        .dead_letters
        .iter()
        .filter_map(|letter| record_key(letter.id))
        .collect();
    let handed_back: Vec<_> = report
        .handed_back
        .iter()
        .filter_map(|record| record_key(record.id))
        .collect();
    let audit = Audit::of(simulator.offered(), &ledger, &dead_lettered, &handed_back);
    let accuracy = metric_accuracy(&pipeline_metrics(&report.metrics), &ledger);
    Ok(RunReport::new(config, &report, &ledger, audit, accuracy))
}
