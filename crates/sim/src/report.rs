//! What a simulated run did, judged against the original test's thresholds
//! and the API's ledger.

use std::collections::BTreeMap;

use crate::{Accuracy, Audit, Ledger};
use serde::Serialize;
use sluice_models::ProcessedRecord;
use sluice_models::{DataSource, Priority, SourceStats};
use sluice_processor::{DeadLetterKind, DeliveryOrder, HandBackReason, Report};
use sluice_profiles::seed::pipeline_metrics;

use crate::simulation::SimulationConfig;

/// The original test's thresholds.
pub const MIN_PROCESSING_RATE: f64 = 5.0;
/// The largest acceptable error rate.
pub const MAX_ERROR_RATE: f64 = 0.30;
/// The largest acceptable final backlog.
pub const MAX_FINAL_BACKLOG: u64 = 100;
/// Accuracy checks that must pass, of four.
pub const MIN_ACCURACY_CHECKS: usize = 3;

/// Everything a run measured; serialized as the `--json` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// The run's seed: the same seed replays a virtual-time run exactly.
    pub seed: u64,
    /// Whether the run used tokio's paused clock.
    pub virtual_time: bool,
    /// How long the sources ran.
    pub duration_s: f64,
    /// The API's limit, successes per second.
    pub api_rate_limit: Option<u32>,
    /// Records the sources made.
    pub offered: u64,
    /// Records the processor pulled.
    pub ingested: u64,
    /// Records the API accepted.
    pub delivered: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Records handed back at stop.
    pub handed_back: u64,
    /// API calls, refused ones included (as `sluice run --json` names them).
    pub calls: u64,
    /// The same as `calls` (this report's name for it before `calls`; kept
    /// for one release).
    pub attempts: u64,
    /// API calls that failed.
    pub failed_calls: u64,
    /// API calls refused as rate limited.
    pub rate_limit_hits: u64,
    /// Delivered records per second of run time (the original's name).
    pub processing_rate_per_second: f64,
    /// The same (as `sluice run --json` names it).
    pub delivered_per_second: f64,
    /// How long the processor ran, seconds (as `sluice run --json` names
    /// it): the sources' duration and the stop's drain.
    pub elapsed_seconds: f64,
    /// Mean time from intake to delivery, ms.
    pub avg_processing_time_ms: f64,
    /// Median time from intake to delivery, ms.
    pub p50_latency_ms: f64,
    /// 99th percentile of the time from intake to delivery, ms.
    pub p99_latency_ms: f64,
    /// Failed calls / all calls.
    pub error_rate: f64,
    /// Records inside the pipeline (not yet delivered or dead-lettered)
    /// when the stop began.
    pub backlog_size: u64,
    /// The most records ever inside the pipeline: at most the queue capacity.
    pub queue_high_water: u64,
    /// Delivered / (API limit x duration), when the API has a limit.
    pub ceiling_utilization: Option<f64>,
    /// Offered records with no outcome (from the API's ledger).
    pub lost: u64,
    /// Extra outcomes of a record (from the API's ledger).
    pub duplicates: u64,
    /// Records delivered after a later one of their partition.
    pub order_violations: u64,
    /// ingested = delivered + dead-lettered + handed back.
    pub conserved: bool,
    /// The share of the original's four accuracy checks passed, 0 to 1.
    pub metrics_accuracy: f64,
    /// The accuracy checks.
    pub accuracy: Accuracy,
    /// Dead letters by reason.
    pub dead_letter_reasons: BTreeMap<DeadLetterKind, u64>,
    /// Handed-back records by where the stop found them.
    pub handed_back_reasons: BTreeMap<HandBackReason, u64>,
    /// The client-side limit at the end (learned, in adaptive mode).
    pub client_rate_limit: Option<usize>,
    /// The API's ledger, in counts.
    pub api: ApiTotals,
    /// Per-source counts.
    pub by_source: BTreeMap<DataSource, SourceStats>,
    /// Delivered records per priority.
    pub by_priority: BTreeMap<Priority, u64>,
    /// The pass/fail checks of this run.
    pub checks: Vec<Check>,
    /// Every check passed.
    pub passed: bool,
}

/// The API's own counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ApiTotals {
    /// Calls.
    pub calls: u64,
    /// Successes.
    pub successes: u64,
    /// Failures.
    pub failures: u64,
    /// Refusals.
    pub rate_limit_hits: u64,
    /// Calls abandoned by the client mid-flight.
    pub cancelled: u64,
}

/// One pass/fail check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it holds.
    pub passed: bool,
    /// The measured value against the bound.
    pub detail: String,
}

impl Check {
    /// A check named `name`.
    pub fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed,
            detail: detail.into(),
        }
    }
}

/// The most deliveries the API admits in the run: its limit once per
/// window the run's duration starts (admissions at 0, w, 2w, ... < d), so
/// at least one window's worth however short the run.
pub fn ceiling(config: &SimulationConfig) -> Option<u64> {
    let limit = config.api.rate_limit?;
    let window = config.api.window.as_nanos().max(1);
    let windows = config.duration.as_nanos().div_ceil(window).max(1);
    Some(u64::from(limit).saturating_mul(u64::try_from(windows).unwrap_or(u64::MAX)))
}

impl RunReport {
    /// Gathers a run's results.
    pub fn new(
        config: &SimulationConfig,
        report: &Report<ProcessedRecord>,
        ledger: &Ledger,
        audit: Audit,
        accuracy: Accuracy,
    ) -> RunReport {
        let m = &report.metrics;
        let pipeline = pipeline_metrics(m);
        let duration_s = config.duration.as_secs_f64();
        let ceiling_utilization = ceiling(config).map(|most| m.delivered as f64 / most as f64);
        let mut dead_letter_reasons = BTreeMap::new();
        for letter in &report.dead_letters {
            *dead_letter_reasons.entry(letter.reason.kind()).or_default() += 1;
        }
        let mut handed_back_reasons = BTreeMap::new();
        for record in &report.handed_back {
            *handed_back_reasons.entry(record.reason).or_default() += 1;
        }

        let mut run = RunReport {
            seed: config.seed,
            virtual_time: config.virtual_time,
            duration_s,
            api_rate_limit: config.api.rate_limit,
            offered: audit.offered,
            ingested: m.ingested,
            delivered: m.delivered,
            dead_lettered: m.dead_lettered,
            handed_back: m.handed_back,
            calls: m.attempts,
            attempts: m.attempts,
            failed_calls: m.failed_calls,
            rate_limit_hits: m.rate_limit_hits,
            processing_rate_per_second: pipeline.processing_rate_per_second,
            delivered_per_second: pipeline.processing_rate_per_second,
            elapsed_seconds: m.elapsed.as_secs_f64(),
            avg_processing_time_ms: pipeline.avg_processing_time_ms,
            p50_latency_ms: m.latency.p50_ms,
            p99_latency_ms: m.latency.p99_ms,
            error_rate: pipeline.error_rate,
            backlog_size: report.backlog_at_stop,
            queue_high_water: report.queue_high_water,
            ceiling_utilization,
            lost: audit.lost,
            duplicates: audit.duplicates + audit.unexpected,
            order_violations: audit.order_violations,
            conserved: report.is_conserved(),
            metrics_accuracy: accuracy.score(),
            accuracy,
            dead_letter_reasons,
            handed_back_reasons,
            client_rate_limit: m.client_rate_limit,
            api: ApiTotals {
                calls: ledger.counts.calls,
                successes: ledger.counts.successes,
                failures: ledger.counts.failures,
                rate_limit_hits: ledger.counts.rate_limit_hits,
                cancelled: ledger.counts.cancelled,
            },
            by_source: pipeline.by_source,
            by_priority: pipeline.by_priority,
            checks: Vec::new(),
            passed: false,
        };
        run.checks = run.threshold_checks(config.processor.ordering);
        run.passed = run.checks.iter().all(|check| check.passed);
        run
    }

    /// The original's thresholds, and nothing lost.
    fn threshold_checks(&self, ordering: DeliveryOrder) -> Vec<Check> {
        let accuracy_passed = self.accuracy.passed();
        let mut checks = vec![
            Check::new(
                "processing rate >= 5/s",
                self.processing_rate_per_second >= MIN_PROCESSING_RATE,
                format!("{:.1}/s", self.processing_rate_per_second),
            ),
            Check::new(
                "error rate <= 30%",
                self.error_rate <= MAX_ERROR_RATE,
                format!("{:.1}%", self.error_rate * 100.0),
            ),
            Check::new(
                "final backlog <= 100",
                self.backlog_size <= MAX_FINAL_BACKLOG,
                self.backlog_size.to_string(),
            ),
            Check::new(
                "metric accuracy >= 3 of 4",
                accuracy_passed >= MIN_ACCURACY_CHECKS,
                format!("{accuracy_passed} of {}", self.accuracy.checks.len()),
            ),
            Check::new(
                "conservation",
                self.conserved,
                format!(
                    "ingested {} = delivered {} + dead-lettered {} + handed back {}",
                    self.ingested, self.delivered, self.dead_lettered, self.handed_back
                ),
            ),
            Check::new(
                "nothing lost or duplicated",
                self.lost == 0 && self.duplicates == 0,
                format!("lost {}, duplicates {}", self.lost, self.duplicates),
            ),
        ];
        if ordering == DeliveryOrder::Partition {
            checks.push(Check::new(
                "per-partition order kept",
                self.order_violations == 0,
                format!("{} violations", self.order_violations),
            ));
        }
        checks
    }
}
