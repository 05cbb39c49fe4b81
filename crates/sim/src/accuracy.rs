//! The original test's metric-accuracy checks: the processor's metrics
//! against the API's own ledger.

use serde::Serialize;
use sluice_models::PipelineMetrics;

use crate::ledger::Ledger;

/// One accuracy check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccuracyCheck {
    /// What is compared.
    pub name: &'static str,
    /// Within the original's tolerance.
    pub passed: bool,
    /// Equal to the ledger, not merely close (for counts and the error rate).
    pub exact: bool,
    /// The two values and the tolerance.
    pub detail: String,
}

/// The four checks of the original test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    /// In the original's order.
    pub checks: Vec<AccuracyCheck>,
}

impl Accuracy {
    /// Checks passed, of four.
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }

    /// The fraction of checks passed, 0 to 1.
    pub fn score(&self) -> f64 {
        self.passed() as f64 / self.checks.len().max(1) as f64
    }
}

/// Compares `metrics` with `ledger` as the original test does:
/// - `total_processed` within max(2, 10 %) of the records the API accepted;
/// - `error_rate` within 0.15 of failures / calls (refused and cancelled
///   calls included: `Counts::failures_per_call`);
/// - `processing_rate_per_second` within max(1.0, 20 %) of successes /
///   (time of last success - API start);
/// - `rate_limit_hits` between 0 and 1000.
pub fn metric_accuracy(metrics: &PipelineMetrics, ledger: &Ledger) -> Accuracy {
    let counts = &ledger.counts;
    let successes = counts.records_delivered as f64;
    let total_tolerance = (successes * 0.10).max(2.0);
    let total = metrics.total_processed as f64;

    let api_error_rate = counts.failures_per_call();

    let api_rate = match counts.last_success {
        Some(last) if last.as_secs_f64() > 0.0 => successes / last.as_secs_f64(),
        _ => 0.0,
    };
    let rate_tolerance = (api_rate * 0.20).max(1.0);
    let rate = metrics.processing_rate_per_second;

    let checks = vec![
        AccuracyCheck {
            name: "total_processed",
            passed: (total - successes).abs() <= total_tolerance,
            exact: metrics.total_processed == counts.records_delivered,
            detail: format!(
                "{} vs API deliveries {} (tolerance {total_tolerance:.1})",
                metrics.total_processed, counts.records_delivered
            ),
        },
        AccuracyCheck {
            name: "error_rate",
            passed: (metrics.error_rate - api_error_rate).abs() <= 0.15,
            exact: (metrics.error_rate - api_error_rate).abs() < 1e-12,
            detail: format!(
                "{:.4} vs API failures/calls {}/{} = {api_error_rate:.4} (tolerance 0.15)",
                metrics.error_rate, counts.failures, counts.calls
            ),
        },
        AccuracyCheck {
            name: "processing_rate_per_second",
            passed: (rate - api_rate).abs() <= rate_tolerance,
            exact: false,
            detail: format!("{rate:.2}/s vs API {api_rate:.2}/s (tolerance {rate_tolerance:.2})"),
        },
        AccuracyCheck {
            name: "rate_limit_hits",
            passed: metrics.rate_limit_hits <= 1000,
            exact: metrics.rate_limit_hits == counts.rate_limit_hits,
            detail: format!(
                "{} vs API {} (allowed 0 to 1000)",
                metrics.rate_limit_hits, counts.rate_limit_hits
            ),
        },
    ];
    Accuracy { checks }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sluice_api_model::Counts;

    use super::*;

    fn ledger() -> Ledger {
        Ledger {
            counts: Counts {
                calls: 200,
                successes: 150,
                records_delivered: 150,
                failures: 30,
                rate_limit_hits: 20,
                last_success: Some(Duration::from_secs(10)),
                ..Counts::default()
            },
            ..Ledger::default()
        }
    }

    #[test]
    fn exact_metrics_pass_all_four_checks_exactly() {
        let metrics = PipelineMetrics {
            total_processed: 150,
            processing_rate_per_second: 15.0,
            error_rate: 30.0 / 200.0,
            rate_limit_hits: 20,
            ..PipelineMetrics::default()
        };
        let accuracy = metric_accuracy(&metrics, &ledger());
        assert_eq!(accuracy.passed(), 4);
        assert!(
            accuracy
                .checks
                .iter()
                .filter(|c| c.name != "processing_rate_per_second")
                .all(|c| c.exact)
        );
    }

    #[test]
    fn each_tolerance_is_enforced() {
        let metrics = PipelineMetrics {
            total_processed: 134,             // 16 off, tolerance 15
            processing_rate_per_second: 11.9, // 3.1 off, tolerance 3
            error_rate: 0.31,                 // 0.16 off
            rate_limit_hits: 1001,
            ..PipelineMetrics::default()
        };
        let accuracy = metric_accuracy(&metrics, &ledger());
        assert_eq!(accuracy.passed(), 0, "{accuracy:#?}");
        assert_eq!(accuracy.score(), 0.0);
    }
}
