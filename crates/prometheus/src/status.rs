//! `GET /status.json`: what a run is doing, for the live page and for
//! scripts: the counts, the rate against the quota, the calls by outcome,
//! the latencies, the inputs' progress, and a minute or so of history.
//!
//! Every figure is read from one [`MetricsSnapshot`], so the figures of a
//! response agree with each other and with a `/metrics` scrape of the same
//! snapshot.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use sluice_processor::{CallOutcome, InputSnapshot, LimitUnit, MetricsSnapshot};

/// The samples the history keeps: five minutes at one a second.
pub const HISTORY_SAMPLES: usize = 300;

/// How many seconds of history the current rate is measured over.
const RATE_SECONDS: f64 = 5.0;

/// What `/status.json` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// sluice's version.
    pub version: &'static str,
    /// `running`, or `stopping` once a stop began.
    pub state: State,
    /// Seconds since the run started.
    pub elapsed_seconds: f64,
    /// What became of the records so far.
    pub records: Records,
    /// Deliveries per second, and the quota.
    pub rate: Rate,
    /// Dead letters by kind of reason (every kind, 0 when none).
    pub dead_letters: BTreeMap<&'static str, u64>,
    /// The calls to the API.
    pub calls: Calls,
    /// The queue inside the pipeline.
    pub queue: Queue,
    /// The API's answer times, milliseconds.
    pub api_latency_ms: Percentiles,
    /// From intake to delivery (queueing included), milliseconds.
    pub delivery_latency_ms: Percentiles,
    /// Each input and how far it is read.
    pub inputs: Vec<InputSnapshot>,
    /// How far the run is through its inputs.
    pub progress: Progress,
    /// One sample a second, oldest first, at most [`HISTORY_SAMPLES`].
    pub history: Vec<Sample>,
}

/// Whether the run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Reading and delivering.
    Running,
    /// A stop began: no more reading; finishing what is in flight.
    Stopping,
}

/// What became of the records so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Records {
    /// Taken from the inputs.
    pub ingested: u64,
    /// Accepted by the API.
    pub delivered: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
    /// Handed back unprocessed.
    pub handed_back: u64,
    /// Inside the pipeline now: ingested, not yet resolved.
    pub in_pipeline: u64,
}

/// Deliveries per second, against the quota.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Over the last five seconds (or since the start, if sooner).
    pub delivered_per_second: f64,
    /// Calls per second over the same seconds.
    pub calls_per_second: f64,
    /// Over the whole run.
    pub average_per_second: f64,
    /// The client's limit now, per window, when there is one.
    pub limit: Option<u64>,
    /// What the limit counts.
    pub unit: Option<LimitUnit>,
    /// The limit's window, seconds.
    pub window_seconds: Option<f64>,
    /// The limit per second: `limit / window_seconds`.
    pub quota_per_second: Option<f64>,
}

/// The calls to the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Calls {
    /// Calls made.
    pub total: u64,
    /// In flight now.
    pub in_flight: u64,
    /// Calls that ended, by outcome (every outcome, 0 when none).
    pub by_outcome: BTreeMap<&'static str, u64>,
    /// Whether the API is failing now (nothing delivered since calls
    /// failed for its sake).
    pub api_failing: bool,
    /// Outages seen so far.
    pub api_outages: u64,
}

/// The queue inside the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Queue {
    /// Records waiting for a worker.
    pub depth: u64,
    /// The most records inside the pipeline.
    pub capacity: u64,
}

/// A latency's percentiles, milliseconds (0 before anything was measured).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many were measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// How far the run is through its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Progress {
    /// The share of the inputs read, 0 to 1, when every input's size is
    /// known.
    pub share_read: Option<f64>,
    /// Seconds until the inputs are delivered at the current rate, when
    /// known.
    pub eta_seconds: Option<f64>,
    /// Records a broker still holds, for a broker's inputs.
    pub pending: Option<u64>,
}

/// One second of history: running totals at that moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub elapsed_seconds: f64,
    /// Records delivered so far.
    pub delivered: u64,
    /// Records dead-lettered so far.
    pub dead_lettered: u64,
    /// Calls that ended so far.
    pub calls: u64,
    /// Calls that ended without delivering anything so far.
    pub calls_failed: u64,
    /// Calls in flight then.
    pub in_flight: u64,
    /// Records in the queue then.
    pub queue_depth: u64,
}

impl Sample {
    fn of(snapshot: &MetricsSnapshot) -> Sample {
        let ended: u64 = snapshot.calls.iter().map(|count| count.calls).sum();
        let delivering =
            snapshot.calls_with(CallOutcome::Delivered) + snapshot.calls_with(CallOutcome::Partial);
        Sample {
            elapsed_seconds: snapshot.elapsed.as_secs_f64(),
            delivered: snapshot.delivered,
            dead_lettered: snapshot.dead_lettered,
            calls: ended,
            calls_failed: ended - delivering,
            in_flight: snapshot.in_flight,
            queue_depth: snapshot.queued,
        }
    }
}

/// The last [`HISTORY_SAMPLES`] samples, one taken each second by the
/// server's sampler.
#[derive(Debug, Default)]
pub struct History(Mutex<VecDeque<Sample>>);

impl History {
    /// Adds a sample of `snapshot`, dropping the oldest beyond
    /// [`HISTORY_SAMPLES`].
    pub fn record(&self, snapshot: &MetricsSnapshot) {
        let mut samples = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() == HISTORY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(Sample::of(snapshot));
    }

    fn samples(&self) -> Vec<Sample> {
        let samples = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        samples.iter().copied().collect()
    }
}

impl Status {
    /// The status `snapshot` shows, with the samples of `history` (the
    /// rate measured from the last of them to `snapshot`), `stopping` once
    /// a stop began.
    pub fn of(snapshot: &MetricsSnapshot, history: &History, stopping: bool) -> Status {
        let now = Sample::of(snapshot);
        let history = history.samples();
        // The sample about RATE_SECONDS before now; else the start.
        let since = history
            .iter()
            .rev()
            .find(|sample| now.elapsed_seconds - sample.elapsed_seconds >= RATE_SECONDS - 0.5)
            .copied()
            .unwrap_or_default();
        let seconds = now.elapsed_seconds - since.elapsed_seconds;
        let per_second = |now: u64, then: u64| {
            if seconds > 0.0 {
                now.saturating_sub(then) as f64 / seconds
            } else {
                0.0
            }
        };
        let delivered_per_second = per_second(now.delivered, since.delivered);
        let window = snapshot.limit_window;
        let limit = snapshot.client_rate_limit.map(|limit| limit as u64);
        let window_seconds = window.map(|window| window.window.as_secs_f64());
        let quota_per_second = limit
            .zip(window_seconds)
            .filter(|&(_, seconds)| seconds > 0.0)
            .map(|(limit, seconds)| limit as f64 / seconds);
        Status {
            version: env!("CARGO_PKG_VERSION"),
            state: if stopping {
                State::Stopping
            } else {
                State::Running
            },
            elapsed_seconds: now.elapsed_seconds,
            records: Records {
                ingested: snapshot.ingested,
                delivered: snapshot.delivered,
                dead_lettered: snapshot.dead_lettered,
                handed_back: snapshot.handed_back,
                in_pipeline: snapshot.backlog,
            },
            rate: Rate {
                delivered_per_second,
                calls_per_second: per_second(now.calls, since.calls),
                average_per_second: snapshot.delivery_rate(),
                limit,
                unit: window.map(|window| window.unit),
                window_seconds,
                quota_per_second,
            },
            dead_letters: sluice_processor::DeadLetterKind::ALL
                .into_iter()
                .map(|kind| {
                    let count = snapshot.dead_lettered_by_reason.get(&kind);
                    (kind.as_str(), count.copied().unwrap_or(0))
                })
                .collect(),
            calls: Calls {
                total: snapshot.attempts,
                in_flight: snapshot.in_flight,
                by_outcome: CallOutcome::ALL
                    .into_iter()
                    .map(|outcome| (outcome.as_str(), snapshot.calls_with(outcome)))
                    .collect(),
                api_failing: snapshot.api_failing,
                api_outages: snapshot.api_outages,
            },
            queue: Queue {
                depth: snapshot.queued,
                capacity: snapshot.queue_capacity,
            },
            api_latency_ms: Percentiles {
                count: snapshot.call_latency_histogram.count,
                p50: snapshot.call_latency.p50_ms,
                p90: snapshot.call_latency.p90_ms,
                p99: snapshot.call_latency.p99_ms,
                max: snapshot.call_latency.max_ms,
            },
            delivery_latency_ms: Percentiles {
                count: snapshot.latency_histogram.count,
                p50: snapshot.latency.p50_ms,
                p90: snapshot.latency.p90_ms,
                p99: snapshot.latency.p99_ms,
                max: snapshot.latency.max_ms,
            },
            inputs: snapshot.inputs.clone(),
            progress: Progress {
                share_read: snapshot.share_read(),
                eta_seconds: snapshot
                    .eta(delivered_per_second)
                    .map(|eta| eta.as_secs_f64()),
                pending: snapshot.pending(),
            },
            history,
        }
    }
}
