//! Helpers of sluice's workspace-level integration tests (in `tests/`).

use std::sync::Arc;
use std::time::Duration;

use sluice_models::{ProcessedRecord, RecordKey};
use sluice_processor::{EpochClock, ProcessorConfig, ProcessorHandle, Report, StreamProcessor};
use sluice_profiles::seed::{SeedProfile, record_key};
use sluice_sim::simulation::SimulationConfig;
use sluice_sim::{ApiConfig, SimulatedApi, StreamConfig, StreamSimulator};

/// The original 10-second check on tokio's paused clock.
pub fn virtual_ten_second_check(seed: u64) -> SimulationConfig {
    SimulationConfig {
        virtual_time: true,
        ..SimulationConfig::ten_second_check(seed)
    }
}

/// A running processor of the seed profile on the simulated API.
pub type SeedHandle = ProcessorHandle<ProcessedRecord, Arc<SimulatedApi>, SeedProfile>;

/// The report of a seed-profile run.
pub type SeedReport = Report<ProcessedRecord>;

/// The seed-domain keys of a report's dead letters and handed-back records.
pub fn outcome_keys(report: &SeedReport) -> (Vec<RecordKey>, Vec<RecordKey>) {
    let dead = report
        .dead_letters
        .iter()
        .filter_map(|letter| record_key(letter.id))
        .collect();
    let back = report
        .handed_back
        .iter()
        .filter_map(|record| record_key(record.id))
        .collect();
    (dead, back)
}

/// A simulator, its API and a running processor, for tests that drive the
/// processor directly. Call under a paused clock.
pub struct Harness {
    /// The simulated downstream.
    pub api: Arc<SimulatedApi>,
    /// The simulated sources (their offered counts).
    pub simulator: StreamSimulator,
    /// The running processor.
    pub handle: SeedHandle,
}

impl Harness {
    /// Starts a processor on the simulator's streams.
    pub fn start(api: ApiConfig, stream: StreamConfig, processor: ProcessorConfig) -> Harness {
        let clock = EpochClock::starting_at(sluice_sim::simulation::VIRTUAL_EPOCH);
        let api = Arc::new(SimulatedApi::new(api).unwrap_or_else(|e| panic!("{e}")));
        let simulator = StreamSimulator::new(stream, clock).unwrap_or_else(|e| panic!("{e}"));
        let profile = SeedProfile::new().unwrap_or_else(|e| panic!("{e}"));
        let handle = StreamProcessor::new(profile, Arc::clone(&api), processor)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_clock(clock)
            .start(simulator.sources());
        Harness {
            api,
            simulator,
            handle,
        }
    }

    /// Lets the run go on for `duration`, calling `check` on a metrics
    /// snapshot every `every`.
    pub async fn run_for(
        &self,
        duration: Duration,
        every: Duration,
        mut check: impl FnMut(&sluice_processor::MetricsSnapshot),
    ) {
        let deadline = tokio::time::Instant::now() + duration;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(every).await;
            check(&self.handle.metrics());
        }
    }
}

pub mod faults;
pub mod sweep;
mod sweep_run;
