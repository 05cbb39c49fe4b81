//! How a processor is configured, with defaults for the original test.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::retry::RetryPolicy;

/// Everything a [`StreamProcessor`](crate::StreamProcessor) can be told.
///
/// The defaults suit the original test's 10-second check: 4 calls in
/// flight, a backlog bound of 100 records, the limit learned from the API
/// (adaptive), per-partition ordering.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// The most downstream calls in flight at once (and the number of
    /// delivery workers). At least 1.
    pub max_in_flight: usize,
    /// The most records waiting in the queue: the backlog bound. When the
    /// queue is full the processor stops pulling from its sources. At least 1.
    pub queue_capacity: usize,
    /// The most records a worker takes from one partition at a time. At least 1.
    pub batch_size: usize,
    /// The client-side rate limit.
    pub rate_limit: RateLimit,
    /// How long past its window a success is still counted by the client's
    /// limiter, to absorb the delay between the client reading its clock and
    /// the API reading its own.
    pub rate_limit_margin: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Whether records of one (source, partition) must be delivered in order.
    pub ordering: Ordering,
    /// How long a stop waits for calls in flight before cancelling them.
    pub drain_deadline: Duration,
    /// Seed of the retry jitter, for deterministic runs.
    pub seed: u64,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            max_in_flight: 4,
            queue_capacity: 100,
            batch_size: 16,
            rate_limit: RateLimit::Adaptive,
            rate_limit_margin: Duration::from_millis(2),
            retry: RetryPolicy::default(),
            ordering: Ordering::Partition,
            drain_deadline: Duration::from_secs(5),
            seed: 0,
        }
    }
}

impl ProcessorConfig {
    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max_queue = tokio::sync::Semaphore::MAX_PERMITS;
        if self.max_in_flight == 0 {
            return Err(ConfigError::new("max_in_flight", "must be at least 1"));
        }
        if self.queue_capacity == 0 || self.queue_capacity > max_queue {
            return Err(ConfigError::new(
                "queue_capacity",
                format!("must be 1 to {max_queue}, got {}", self.queue_capacity),
            ));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::new("batch_size", "must be at least 1"));
        }
        self.retry.validate()
    }
}

/// The client-side rate limit: successful calls per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// No client-side limit: bounded only by `max_in_flight`.
    Unlimited,
    /// A known quota of successful calls per sliding second. Refusals still
    /// lower the limit for a while (another client may share the quota), but
    /// it never rises above this value.
    PerSecond(NonZeroU32),
    /// Unknown: learned from the API's rate-limited answers.
    Adaptive,
}

/// Whether delivery order is promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Records of one (source, partition) are delivered in sequence order,
    /// across retries too; partitions proceed concurrently.
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
    fn zero_sizes_are_refused_naming_the_field() {
        for (config, field) in [
            (
                ProcessorConfig {
                    max_in_flight: 0,
                    ..ProcessorConfig::default()
                },
                "max_in_flight",
            ),
            (
                ProcessorConfig {
                    queue_capacity: 0,
                    ..ProcessorConfig::default()
                },
                "queue_capacity",
            ),
            (
                ProcessorConfig {
                    batch_size: 0,
                    ..ProcessorConfig::default()
                },
                "batch_size",
            ),
        ] {
            let error = config.validate().unwrap_err();
            assert_eq!(error.field, field);
            assert!(error.to_string().contains(field));
        }
    }
}
