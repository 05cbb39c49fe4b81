//! What a snapshot of the metrics holds: the public vocabulary of the
//! processor's counts, for reports, status lines and exporters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::config::LimitUnit;
use crate::dead_letter::DeadLetterKind;
use crate::progress::InputSnapshot;
use crate::stream::StreamName;

/// What happened to the records of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// Records taken from the sources.
    pub ingested: u64,
    /// Records the downstream accepted.
    pub delivered: u64,
    /// Records the dead-letter outlet kept.
    pub dead_lettered: u64,
    /// Records handed back (not processed).
    pub handed_back: u64,
    /// Failed attempts to deliver a record (a record retried twice counts
    /// twice; refusals excluded).
    pub failed_attempts: u64,
}

impl StreamStats {
    /// Adds everything of `other` but its arrivals (`ingested`).
    pub(super) fn add_outcomes(&mut self, other: &StreamStats) {
        self.delivered += other.delivered;
        self.dead_lettered += other.dead_lettered;
        self.handed_back += other.handed_back;
        self.failed_attempts += other.failed_attempts;
    }
}

/// A latency's distribution, milliseconds: from intake to delivery, or
/// of the API's answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// A latency as a cumulative histogram, for exporters (Prometheus).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyHistogram {
    /// Deliveries measured.
    pub count: u64,
    /// Their latencies added up, milliseconds.
    pub sum_ms: f64,
    /// (upper bound in ms, deliveries at or below it), for each of
    /// [`LATENCY_BUCKETS_MS`](crate::LATENCY_BUCKETS_MS).
    pub buckets: Vec<(f64, u64)>,
}

/// Everything the processor counts, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Time since start (until stop, once stopped).
    pub elapsed: Duration,
    /// Records taken from the sources.
    pub ingested: u64,
    /// Records the downstream accepted.
    pub delivered: u64,
    /// Records the dead-letter outlet kept.
    pub dead_lettered: u64,
    /// Records handed back at stop (or after a fault), not processed.
    pub handed_back: u64,
    /// Records inside the pipeline: ingested and not yet delivered,
    /// dead-lettered or handed back. At most the queue capacity.
    pub backlog: u64,
    /// Records waiting in the queue, not yet taken by a worker.
    pub queued: u64,
    /// Downstream calls made, refused ones included.
    pub attempts: u64,
    /// Downstream calls that failed (transient or rejected, in whole or in
    /// part).
    pub failed_calls: u64,
    /// Downstream calls cancelled at the call timeout (counted in
    /// `failed_calls` too).
    pub timed_out_calls: u64,
    /// Downstream calls refused as rate limited.
    pub rate_limit_hits: u64,
    /// Downstream calls in flight now.
    pub in_flight: u64,
    /// Latency from intake to delivery: the time a record waited in the
    /// pipeline (queue, rate limit, retries) and its call's.
    pub latency: LatencySummary,
    /// The same, as a cumulative histogram.
    pub latency_histogram: LatencyHistogram,
    /// The API's answer times: from a call's start to its answer (a call
    /// cut at the call timeout counts at the timeout; one cut at the drain
    /// deadline is not counted).
    pub call_latency: LatencySummary,
    /// The same, as a cumulative histogram.
    pub call_latency_histogram: LatencyHistogram,
    /// Calls that ended, by outcome and status; they add up to
    /// `attempts - in_flight`.
    pub calls: Vec<CallCount>,
    /// The client-side limit in force, when there is one.
    pub client_rate_limit: Option<usize>,
    /// What the limit counts and over which window, when there is one.
    pub limit_window: Option<LimitWindow>,
    /// The queue's capacity: the most records inside the pipeline.
    pub queue_capacity: u64,
    /// The sources' inputs and how far each is read.
    pub inputs: Vec<InputSnapshot>,
    /// Per stream, by name.
    pub by_stream: BTreeMap<StreamName, StreamStats>,
    /// Deliveries per record priority.
    pub delivered_by_priority: BTreeMap<u8, u64>,
    /// Dead letters per kind of reason.
    pub dead_lettered_by_reason: BTreeMap<DeadLetterKind, u64>,
    /// Dead letters per stream and kind of reason (the kinds with
    /// letters only).
    pub dead_letters: Vec<DeadLetterCount>,
    /// Whether the API is failing now: the last calls failed for its sake
    /// (unreachable, misconfigured, or failing with nothing delivered
    /// since), and no call has delivered since. Records wait meanwhile.
    pub api_failing: bool,
    /// Outages of the API seen so far (each began by a call failing for
    /// the API's sake, ended by a delivery).
    pub api_outages: u64,
}

impl MetricsSnapshot {
    /// Deliveries per second of elapsed time (0 before any time passed).
    pub fn delivery_rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.delivered as f64 / seconds
        } else {
            0.0
        }
    }

    /// Failed calls as a fraction of calls (0 when there were none).
    pub fn error_rate(&self) -> f64 {
        if self.attempts > 0 {
            self.failed_calls as f64 / self.attempts as f64
        } else {
            0.0
        }
    }
}

impl MetricsSnapshot {
    /// The calls that ended with `outcome`, whatever their status.
    pub fn calls_with(&self, outcome: CallOutcome) -> u64 {
        self.calls
            .iter()
            .filter(|count| count.outcome == outcome)
            .map(|count| count.calls)
            .sum()
    }

    /// The share of the inputs read, 0 to 1, when every input's size is
    /// known (files; not stdin, compressed files or brokers).
    pub fn share_read(&self) -> Option<f64> {
        let mut read = 0;
        let mut size = 0;
        for input in &self.inputs {
            read = u64::saturating_add(read, input.bytes_read.min(input.size_bytes?));
            size = u64::saturating_add(size, input.size_bytes?);
        }
        match (self.inputs.is_empty(), size) {
            (true, _) => None,
            (false, 0) => Some(1.0),
            (false, size) => Some(read as f64 / size as f64),
        }
    }

    /// Records a broker still holds for the inputs, when one says.
    pub fn pending(&self) -> Option<u64> {
        self.inputs
            .iter()
            .filter_map(|input| input.pending)
            .reduce(|a, b| a + b)
    }

    /// When the inputs will be done at `rate` deliveries per second: the
    /// records not yet read (estimated from the bytes per record read so
    /// far) and those inside the pipeline, at that rate. `None` when the
    /// sizes or the rate are not known, or nothing was read yet.
    pub fn eta(&self, rate: f64) -> Option<Duration> {
        let share = self.share_read()?;
        if self.ingested == 0 {
            // No record read yet: no bytes per record to go by.
            return None;
        }
        let unread = self.ingested as f64 * (1.0 - share) / share;
        let seconds = (unread + self.backlog as f64) / rate;
        // A rate of 0 or less, or nothing read, gives no finite time.
        Duration::try_from_secs_f64(seconds).ok()
    }
}

/// How a call to the API ended. The outcomes partition the calls: each
/// call that ended has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Every record delivered.
    Delivered,
    /// Some records delivered, others not.
    Partial,
    /// Nothing delivered; refused as rate limited.
    RateLimited,
    /// Nothing delivered; a record rejected for good.
    Rejected,
    /// Nothing delivered; the client is misconfigured (a 401, a 404...).
    Misconfigured,
    /// Nothing delivered; the API could not be reached.
    Unavailable,
    /// Nothing delivered; a transient failure (a 5xx, a 408).
    Failed,
    /// No answer within the call timeout.
    TimedOut,
    /// Cut off at the drain deadline of a stop.
    Cancelled,
}

impl CallOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [CallOutcome; 9] = [
        CallOutcome::Delivered,
        CallOutcome::Partial,
        CallOutcome::RateLimited,
        CallOutcome::Rejected,
        CallOutcome::Misconfigured,
        CallOutcome::Unavailable,
        CallOutcome::Failed,
        CallOutcome::TimedOut,
        CallOutcome::Cancelled,
    ];

    /// The snake_case name, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Delivered => "delivered",
            CallOutcome::Partial => "partial",
            CallOutcome::RateLimited => "rate_limited",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Misconfigured => "misconfigured",
            CallOutcome::Unavailable => "unavailable",
            CallOutcome::Failed => "failed",
            CallOutcome::TimedOut => "timed_out",
            CallOutcome::Cancelled => "cancelled",
        }
    }
}

/// Calls that ended with one outcome and one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallCount {
    /// How they ended.
    pub outcome: CallOutcome,
    /// The status the sink noted for them
    /// ([`note_call_status`](crate::note_call_status); an HTTP sink's
    /// status code), `None` when it noted none (no answer).
    pub status: Option<u16>,
    /// How many.
    pub calls: u64,
}

/// Dead letters of one stream for one kind of reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeadLetterCount {
    /// The stream.
    pub stream: StreamName,
    /// The kind of reason.
    pub reason: DeadLetterKind,
    /// How many.
    pub records: u64,
}

/// What a rate limit counts, over which window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitWindow {
    /// Calls or records.
    pub unit: LimitUnit,
    /// The window the limit is counted over.
    pub window: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(read: u64, size: Option<u64>, pending: Option<u64>) -> InputSnapshot {
        InputSnapshot {
            name: "input".into(),
            bytes_read: read,
            size_bytes: size,
            checkpoint_offset: None,
            checkpoint_written_unix_seconds: None,
            pending,
        }
    }

    #[test]
    fn progress_and_eta_come_from_the_inputs_and_the_rate() {
        let mut snapshot = MetricsSnapshot {
            ingested: 100,
            backlog: 20,
            inputs: vec![input(300, Some(1_000), None), input(200, Some(1_000), None)],
            ..MetricsSnapshot::default()
        };
        assert_eq!(snapshot.share_read(), Some(0.25));
        // 100 records in a quarter: 300 unread, 20 inside; at 10/s.
        assert_eq!(snapshot.eta(10.0), Some(Duration::from_secs(32)));
        assert_eq!(snapshot.eta(0.0), None);
        assert_eq!(snapshot.eta(-1.0), None);
        assert_eq!(snapshot.eta(f64::NAN), None);
        let unread = MetricsSnapshot {
            ingested: 0,
            inputs: vec![input(0, Some(1_000), None)],
            ..MetricsSnapshot::default()
        };
        assert_eq!(unread.eta(10.0), None, "nothing read yet");
        let nothing_read_yet = MetricsSnapshot {
            ingested: 0,
            inputs: vec![input(500, Some(1_000), None)],
            ..MetricsSnapshot::default()
        };
        assert_eq!(nothing_read_yet.eta(10.0), None, "no record named yet");
        assert_eq!(snapshot.pending(), None);

        snapshot.inputs.push(input(5, None, Some(7)));
        snapshot.inputs.push(input(0, None, Some(3)));
        assert_eq!(snapshot.share_read(), None, "an input of unknown size");
        assert_eq!(snapshot.eta(10.0), None);
        assert_eq!(snapshot.pending(), Some(10));

        assert_eq!(MetricsSnapshot::default().share_read(), None, "no inputs");
        let empty = MetricsSnapshot {
            inputs: vec![input(0, Some(0), None)],
            ..MetricsSnapshot::default()
        };
        assert_eq!(empty.share_read(), Some(1.0));
        let grown = MetricsSnapshot {
            inputs: vec![input(1_500, Some(1_000), None)],
            ..MetricsSnapshot::default()
        };
        assert_eq!(grown.share_read(), Some(1.0), "read past the size seen");
    }

    #[test]
    fn outcomes_have_their_names() {
        let names: Vec<&str> = CallOutcome::ALL.iter().map(|o| o.as_str()).collect();
        for (outcome, name) in CallOutcome::ALL.iter().zip(&names) {
            assert_eq!(serde_json::to_value(outcome).unwrap(), *name);
        }
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(unique.len(), CallOutcome::ALL.len());
    }
}
