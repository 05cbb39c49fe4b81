//! What a run reports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use sluice_processor::{HandBackReason, Report, SavedCheckpoint, StreamStats};

use crate::settings::Ordering;

/// What a run did: the conservation identity, the calls, the latencies,
/// the dead letters by reason, the checkpoints saved. Serialized as
/// `sluice run --json` prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// Records taken from the inputs.
    pub ingested: u64,
    /// Records the API accepted.
    pub delivered: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Records not processed (a stop): read again after a restart with the
    /// same checkpoint, or redelivered by JetStream.
    pub handed_back: u64,
    /// Of those, records whose partition's lease ended before their call
    /// (another process took it, or was given it): not sent, redelivered
    /// by JetStream to the partition's next holder. They do not make a
    /// run incomplete.
    pub handed_over: u64,
    /// ingested = delivered + dead-lettered + handed back.
    pub conserved: bool,
    /// Calls made, refused ones included.
    pub calls: u64,
    /// Calls refused as rate limited.
    pub rate_limit_hits: u64,
    /// Calls that failed.
    pub failed_calls: u64,
    /// Run time, seconds.
    pub elapsed_seconds: f64,
    /// Deliveries per second.
    pub delivered_per_second: f64,
    /// Median latency from intake to delivery, milliseconds: the time a
    /// record waited in the pipeline (queue, rate limit, retries) and its
    /// call's.
    pub p50_latency_ms: f64,
    /// 99th percentile of the same.
    pub p99_latency_ms: f64,
    /// Median time the API took to answer a call, milliseconds.
    pub api_p50_latency_ms: f64,
    /// 99th percentile of the same.
    pub api_p99_latency_ms: f64,
    /// Calls that ended, by outcome (`delivered`, `partial`,
    /// `rate_limited`, `rejected`, `misconfigured`, `unavailable`,
    /// `failed`, `timed_out`, `cancelled`; only those that occurred). They
    /// add up to `calls`.
    pub calls_by_outcome: BTreeMap<String, u64>,
    /// Dead letters by kind of reason.
    pub dead_letter_reasons: BTreeMap<String, u64>,
    /// The file the dead letters are in, when any were written to one.
    pub dead_letter_file: Option<PathBuf>,
    /// Whether dead letters were discarded (`--dead-letters none`).
    pub dead_letters_discarded: bool,
    /// `--max-dead-letters`, when the run wrote more letters than it
    /// allows (the run then failed).
    pub too_many_dead_letters: Option<String>,
    /// Per stream by name.
    pub streams: BTreeMap<String, StreamStats>,
    /// Whether a signal cut the run short.
    pub interrupted: bool,
    /// Faults of user code or connectors caught during the run.
    pub failures: Vec<String>,
    /// Why the run stopped sending on its own, when the API kept saying
    /// the client is misconfigured (401, 404, a redirect...): what is not
    /// delivered was handed back, for a run with the right settings.
    pub halted: Option<String>,
    /// Inputs that could not be read to their end, each with why: the run
    /// then failed (exit 1), whatever else it did.
    pub read_failures: Vec<String>,
    /// Each checkpoint written at the end: file, byte offset, lines.
    pub checkpoints: Vec<(PathBuf, u64, u64)>,
    /// The delivery order the run used: `partition` or `none` (as set
    /// by [`Pipeline::run`](crate::Pipeline::run); `partition` from
    /// [`new`](Self::new)).
    pub ordering: Ordering,
    /// Why the run used that order, or what it cost, when the inputs
    /// decided it: records that name no partition are not ordered unless
    /// asked, and ordering them by partition sends one call at a time per
    /// input.
    pub ordering_note: Option<String>,
}

impl RunSummary {
    /// The summary of `report`, of a run a stop cut short when
    /// `interrupted`, whose source saved `checkpoints`.
    pub fn new<R>(
        report: &Report<R>,
        interrupted: bool,
        checkpoints: &[SavedCheckpoint],
    ) -> RunSummary {
        let m = &report.metrics;
        RunSummary {
            ingested: m.ingested,
            delivered: m.delivered,
            dead_lettered: m.dead_lettered,
            handed_back: m.handed_back,
            handed_over: report
                .handed_back
                .iter()
                .filter(|record| record.reason == HandBackReason::LeaseEnded)
                .count() as u64,
            conserved: report.is_conserved(),
            calls: m.attempts,
            rate_limit_hits: m.rate_limit_hits,
            failed_calls: m.failed_calls,
            elapsed_seconds: m.elapsed.as_secs_f64(),
            delivered_per_second: m.delivery_rate(),
            p50_latency_ms: m.latency.p50_ms,
            p99_latency_ms: m.latency.p99_ms,
            api_p50_latency_ms: m.call_latency.p50_ms,
            api_p99_latency_ms: m.call_latency.p99_ms,
            calls_by_outcome: m.calls.iter().fold(BTreeMap::new(), |mut by, count| {
                *by.entry(count.outcome.as_str().to_owned()).or_default() += count.calls;
                by
            }),
            dead_letter_reasons: m
                .dead_lettered_by_reason
                .iter()
                .map(|(kind, count)| (kind.as_str().to_owned(), *count))
                .collect(),
            streams: m
                .by_stream
                .iter()
                .map(|(stream, stats)| (stream.as_str().to_owned(), *stats))
                .collect(),
            dead_letter_file: None,
            dead_letters_discarded: false,
            too_many_dead_letters: None,
            interrupted,
            failures: report.failures.iter().map(ToString::to_string).collect(),
            read_failures: Vec::new(),
            halted: report.halted.as_ref().map(ToString::to_string),
            checkpoints: checkpoints
                .iter()
                .map(|saved| (saved.input.clone(), saved.offset, saved.lines))
                .collect(),
            ordering: Ordering::default(),
            ordering_note: None,
        }
    }

    /// Whether every input was read to its end and every record taken was
    /// delivered, dead-lettered, or handed over to another process.
    pub fn is_complete(&self) -> bool {
        self.conserved && self.handed_back == self.handed_over && self.read_failures.is_empty()
    }

    /// Whether the run did its job: complete, and within
    /// `--max-dead-letters`.
    pub fn succeeded(&self) -> bool {
        self.is_complete() && self.too_many_dead_letters.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_complete_when_conserved_fully_read_and_all_it_handed_back_went_over() {
        let conserved = RunSummary {
            conserved: true,
            ..RunSummary::default()
        };
        assert!(conserved.is_complete());
        let lost = RunSummary {
            conserved: false,
            ..conserved.clone()
        };
        assert!(!lost.is_complete());
        let unread = RunSummary {
            read_failures: vec!["in.ndjson: line 3 cut short".into()],
            ..conserved.clone()
        };
        assert!(!unread.is_complete());
        // Records handed to a partition's next holder are not left over;
        // records handed back for the next run are.
        let over = RunSummary {
            handed_back: 3,
            handed_over: 3,
            ..conserved.clone()
        };
        assert!(over.is_complete());
        let left = RunSummary {
            handed_over: 2,
            ..over
        };
        assert!(!left.is_complete());
    }
}
