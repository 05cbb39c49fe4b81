//! How a processor is configured, with defaults for the original test.
//!
//! Every duration may be as large as `Duration::MAX`: the processor
//! saturates instead of overflowing (a wait that long is a wait until the
//! stop), so validation only refuses values that make no sense.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::retry::RetryPolicy;

/// Everything a [`StreamProcessor`](crate::StreamProcessor) can be told.
///
/// The defaults suit the original test's 10-second check: 4 calls in
/// flight, a backlog bound of 100 records, one record per call, the limit
/// learned from the API (adaptive), per-partition ordering.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// The most downstream calls in flight at once (and the number of
    /// delivery workers). 1 to [`MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// The most records inside the pipeline: the backlog bound. When the
    /// queue is full the processor stops pulling from its sources. At least 1.
    pub queue_capacity: usize,
    /// The most records a worker takes from one partition at a time
    /// (several calls' worth when batches are small). At least 1.
    pub take_size: usize,
    /// How records are grouped into calls.
    pub batch: BatchConfig,
    /// The client-side rate limit.
    pub rate_limit: RateLimit,
    /// What the rate limit counts: calls (the default) or records.
    pub limit_unit: LimitUnit,
    /// How long past its window a success counted from its call is still
    /// counted by the client's limiter, to absorb the delay between the
    /// client reading its clock and the API reading its own; never past a
    /// window from its answer. A success counted from its answer needs
    /// none: the API counted it before it answered.
    pub rate_limit_margin: Duration,
    /// From when the client's limiter counts a success's window: the call's
    /// start (default), or its answer.
    pub counted_from: CountedFrom,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
    /// The longest a call may take; a call that takes longer is cancelled
    /// and counts as a transient failure. Default 30 s.
    pub call_timeout: Duration,
    /// Retries of failures: backoff, attempts, and the longest a record
    /// that keeps failing may take.
    pub retry: RetryPolicy,
    /// Whether records of one (stream, partition) must be delivered in order.
    pub ordering: DeliveryOrder,
    /// How long a stop waits for work in flight (calls, dead letters)
    /// before cancelling it.
    pub drain_deadline: Duration,
    /// Seed of the retry jitter, for deterministic runs.
    pub seed: u64,
    /// Calls in a row, across workers, answered that the client is
    /// misconfigured ([`SinkError::Misconfigured`](crate::SinkError)) with
    /// no delivery in between, after which the processor halts: it stops
    /// sending, hands back what it holds, and says why in
    /// [`Report::halted`](crate::Report::halted). Default 3; 0 never halts.
    pub circuit_after: u32,
}

/// The most delivery workers a processor runs.
pub const MAX_IN_FLIGHT: usize = 65_536;

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            max_in_flight: 4,
            queue_capacity: 100,
            take_size: 16,
            batch: BatchConfig::default(),
            rate_limit: RateLimit::Adaptive {
                window: Duration::from_secs(1),
            },
            limit_unit: LimitUnit::Calls,
            rate_limit_margin: Duration::from_millis(2),
            counted_from: CountedFrom::Call,
            max_retry_after: Duration::from_secs(60),
            call_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            ordering: DeliveryOrder::Partition,
            drain_deadline: Duration::from_secs(5),
            seed: 0,
            circuit_after: 3,
        }
    }
}

impl ProcessorConfig {
    /// Checks that every value is usable.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first field that is not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max_queue = tokio::sync::Semaphore::MAX_PERMITS;
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            return Err(ConfigError::new(
                "max_in_flight",
                format!("must be 1 to {MAX_IN_FLIGHT}, got {}", self.max_in_flight),
            ));
        }
        if self.queue_capacity == 0 || self.queue_capacity > max_queue {
            return Err(ConfigError::new(
                "queue_capacity",
                format!("must be 1 to {max_queue}, got {}", self.queue_capacity),
            ));
        }
        if self.take_size == 0 {
            return Err(ConfigError::new("take_size", "must be at least 1"));
        }
        self.batch.validate()?;
        if let RateLimit::Fixed(quota) = self.rate_limit {
            quota.validate()?;
            let limit = NonZeroU32::get(quota.limit) as usize;
            if self.limit_unit == LimitUnit::Records && self.batch.max_records > limit {
                return Err(ConfigError::new(
                    "batch.max_records",
                    format!(
                        "{} is above the rate limit of {limit} records per window, so a full batch could never be sent",
                        self.batch.max_records
                    ),
                ));
            }
        }
        if let RateLimit::Adaptive { window } = self.rate_limit
            && window.is_zero()
        {
            return Err(ConfigError::new("rate_limit.window", "must be above 0"));
        }
        if self.call_timeout.is_zero() {
            return Err(ConfigError::new("call_timeout", "must be above 0"));
        }
        self.retry.validate()
    }
}

/// How records are grouped into one call to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// The most records per call. Default 1 (the original API's).
    pub max_records: usize,
    /// The most bytes per call, as the transform measures records; a
    /// single record larger than this still goes, alone. Default no bound.
    pub max_bytes: usize,
    /// How long a worker waits for a batch to fill before it sends what it
    /// has. Default 0: send at once.
    pub linger: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: 1,
            max_bytes: usize::MAX,
            linger: Duration::ZERO,
        }
    }
}

impl BatchConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_records == 0 {
            return Err(ConfigError::new("batch.max_records", "must be at least 1"));
        }
        if self.max_bytes == 0 {
            return Err(ConfigError::new("batch.max_bytes", "must be at least 1"));
        }
        Ok(())
    }
}

/// The client-side rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// No client-side limit: bounded only by `max_in_flight`.
    Unlimited,
    /// A known quota. Refusals still lower the limit for a while (another
    /// client may share the quota), but it never rises above the quota.
    Fixed(Quota),
    /// Unknown: learned from the API's rate-limited answers, counted over
    /// sliding windows of this length.
    Adaptive {
        /// The window the API counts in.
        window: Duration,
    },
}

impl RateLimit {
    /// A known quota of `limit` per second.
    pub fn per_second(limit: NonZeroU32) -> RateLimit {
        RateLimit::Fixed(Quota {
            limit,
            window: Duration::from_secs(1),
        })
    }
}

/// A quota as APIs state them: at most `limit` successes in any sliding
/// window of length `window` (15 per second, 1 000 per minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Successes per window.
    pub limit: NonZeroU32,
    /// The window's length; above 0.
    pub window: Duration,
}

impl Quota {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.window.is_zero() {
            return Err(ConfigError::new("rate_limit.window", "must be above 0"));
        }
        Ok(())
    }
}

/// From when the client counts a success in its window, to mirror the
/// API's own window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountedFrom {
    /// The call's start (plus the margin, or a window from the answer if
    /// that ends sooner): exact when the API admits a call as it starts
    /// (the simulator does), at full use of the quota.
    Call,
    /// The call's answer: the API admitted the call before it answered, so
    /// a window counted from the answer ends after the API's, whatever the
    /// network's delay. Costs the latency's share of the window in
    /// throughput.
    Answer,
    /// The call's start until the API refuses a call as rate limited, then
    /// its answer: full use of the quota while the API counts as the client
    /// does, and no repeated refusals once it shows it counts later. For
    /// real APIs.
    CallThenAnswer,
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitUnit {
    /// Calls, whatever their batch size.
    Calls,
    /// Records.
    Records,
}

impl LimitUnit {
    /// `calls` or `records`, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitUnit::Calls => "calls",
            LimitUnit::Records => "records",
        }
    }
}

/// Whether delivery order is promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOrder {
    /// Records of one (stream, partition) are delivered in sequence order,
    /// across batches and retries; partitions proceed concurrently.
    Partition,
    /// No order: any record may be sent by any worker at any time.
    None,
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid processor configuration: {field} {reason}")]
pub struct ConfigError {
    /// The offending field, e.g. `retry.max_attempts`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ProcessorConfig::default().validate(), Ok(()));
    }

    #[test]
    fn unusable_values_are_refused_naming_the_field() {
        let base = ProcessorConfig::default;
        let quota = |limit, window| {
            RateLimit::Fixed(Quota {
                limit: NonZeroU32::new(limit).unwrap(),
                window,
            })
        };
        let cases = [
            (
                ProcessorConfig {
                    max_in_flight: 0,
                    ..base()
                },
                "max_in_flight",
            ),
            (
                ProcessorConfig {
                    max_in_flight: MAX_IN_FLIGHT + 1,
                    ..base()
                },
                "max_in_flight",
            ),
            (
                ProcessorConfig {
                    queue_capacity: 0,
                    ..base()
                },
                "queue_capacity",
            ),
            (
                ProcessorConfig {
                    take_size: 0,
                    ..base()
                },
                "take_size",
            ),
            (
                ProcessorConfig {
                    batch: BatchConfig {
                        max_records: 0,
                        ..BatchConfig::default()
                    },
                    ..base()
                },
                "batch.max_records",
            ),
            (
                ProcessorConfig {
                    batch: BatchConfig {
                        max_bytes: 0,
                        ..BatchConfig::default()
                    },
                    ..base()
                },
                "batch.max_bytes",
            ),
            (
                ProcessorConfig {
                    rate_limit: quota(5, Duration::ZERO),
                    ..base()
                },
                "rate_limit.window",
            ),
            (
                ProcessorConfig {
                    rate_limit: RateLimit::Adaptive {
                        window: Duration::ZERO,
                    },
                    ..base()
                },
                "rate_limit.window",
            ),
            (
                ProcessorConfig {
                    rate_limit: quota(5, Duration::from_secs(1)),
                    limit_unit: LimitUnit::Records,
                    batch: BatchConfig {
                        max_records: 6,
                        ..BatchConfig::default()
                    },
                    ..base()
                },
                "batch.max_records",
            ),
            (
                ProcessorConfig {
                    call_timeout: Duration::ZERO,
                    ..base()
                },
                "call_timeout",
            ),
        ];
        for (config, field) in cases {
            let error = config.validate().unwrap_err();
            assert_eq!(error.field, field);
            assert!(error.to_string().contains(field));
        }
    }

    #[test]
    fn the_largest_durations_are_accepted() {
        let config = ProcessorConfig {
            rate_limit_margin: Duration::MAX,
            max_retry_after: Duration::MAX,
            call_timeout: Duration::MAX,
            drain_deadline: Duration::MAX,
            rate_limit: RateLimit::Fixed(Quota {
                limit: NonZeroU32::MAX,
                window: Duration::MAX,
            }),
            ..ProcessorConfig::default()
        };
        assert_eq!(config.validate(), Ok(()));
    }
}
