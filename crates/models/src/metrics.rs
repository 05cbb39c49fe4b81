//! The pipeline's metrics, in the original test's vocabulary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{DataSource, Priority};

/// A snapshot of what the pipeline has done: the eight fields of the
/// original test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineMetrics {
    /// Records the downstream API accepted.
    pub total_processed: u64,
    /// Accepted records per second of run time.
    pub processing_rate_per_second: f64,
    /// Mean time from intake to acceptance, milliseconds.
    pub avg_processing_time_ms: f64,
    /// Failed API calls as a fraction of all API calls (0 to 1).
    pub error_rate: f64,
    /// Records inside the pipeline: taken from a source, not yet delivered
    /// or dead-lettered.
    pub backlog_size: u64,
    /// API calls refused as rate limited.
    pub rate_limit_hits: u64,
    /// Per-source counts.
    pub by_source: BTreeMap<DataSource, SourceStats>,
    /// Accepted records per priority.
    pub by_priority: BTreeMap<Priority, u64>,
}

/// What happened to one source's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStats {
    /// Records the downstream API accepted.
    pub delivered: u64,
    /// API calls that failed (rate-limit refusals not included).
    pub failed_calls: u64,
    /// Records sent to the dead-letter outlet.
    pub dead_lettered: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keyed_by_source_and_priority_round_trip_through_json() {
        let mut metrics = PipelineMetrics {
            total_processed: 3,
            ..PipelineMetrics::default()
        };
        metrics.by_source.insert(
            DataSource::SecurityLogs,
            SourceStats {
                delivered: 3,
                failed_calls: 1,
                dead_lettered: 0,
            },
        );
        metrics.by_priority.insert(Priority::Critical, 3);
        let json = serde_json::to_string(&metrics).unwrap();
        assert!(json.contains(r#""security_logs":{"delivered":3"#), "{json}");
        assert!(json.contains(r#""by_priority":{"4":3}"#), "{json}");
        let back: PipelineMetrics = serde_json::from_str(&json).unwrap();
        assert_eq!(back, metrics);
    }
}
