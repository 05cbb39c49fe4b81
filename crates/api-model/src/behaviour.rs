//! How the API behaves: its limit, its failures, its latency, its seed.

use std::time::Duration;

use crate::quota::Quota;

/// How the API behaves.
///
/// One admitted call waits a latency drawn uniformly from
/// `latency_min..=latency_max`, then fails with probability `failure_rate`
/// or succeeds. Every draw comes from one RNG seeded with `seed`; the draws
/// are taken in admission order, so the same seed and the same sequence
/// of calls give the same latencies and fates.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// The limit on successes; `None` for no limit.
    pub rate_limit: Option<Quota>,
    /// The probability that an admitted call fails (0 to 1).
    pub failure_rate: f64,
    /// The shortest latency of an admitted call.
    pub latency_min: Duration,
    /// The longest latency of an admitted call.
    pub latency_max: Duration,
    /// The seed of the API's RNG (latency and failure draws).
    pub seed: u64,
}

impl Default for Behaviour {
    /// The original test's API: 15 successes per second, 15 % failures,
    /// 10 to 50 ms of latency, seed 0.
    fn default() -> Self {
        Behaviour {
            rate_limit: Some(Quota::per_second(15)),
            failure_rate: 0.15,
            latency_min: Duration::from_millis(10),
            latency_max: Duration::from_millis(50),
            seed: 0,
        }
    }
}

impl Behaviour {
    /// Checks that every value is usable.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] that names the first unusable field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(quota) = &self.rate_limit {
            quota.validate()?;
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(ConfigError::FailureRate(self.failure_rate));
        }
        if self.latency_min > self.latency_max {
            return Err(ConfigError::LatencyRange {
                min: self.latency_min,
                max: self.latency_max,
            });
        }
        Ok(())
    }
}

/// A setting of the API that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `rate_limit.limit` is 0.
    #[error("invalid {}: {}", self.field(), self.reason())]
    ZeroLimit,
    /// `rate_limit.window` is 0.
    #[error("invalid {}: {}", self.field(), self.reason())]
    ZeroWindow,
    /// A quota's text is not `LIMIT/WINDOW`.
    #[error("invalid rate_limit {text:?}: {reason}")]
    QuotaSyntax {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `failure_rate` is not in `0..=1` (or not a number).
    #[error("invalid {}: {}", self.field(), self.reason())]
    FailureRate(f64),
    /// `latency_min` is above `latency_max`.
    #[error("invalid {}: {}", self.field(), self.reason())]
    LatencyRange {
        /// The `latency_min` given.
        min: Duration,
        /// The `latency_max` given.
        max: Duration,
    },
}

impl ConfigError {
    /// The offending field, e.g. `failure_rate` or `rate_limit.window`.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::ZeroLimit => "rate_limit.limit",
            ConfigError::ZeroWindow => "rate_limit.window",
            ConfigError::QuotaSyntax { .. } => "rate_limit",
            ConfigError::FailureRate(_) => "failure_rate",
            ConfigError::LatencyRange { .. } => "latency_min",
        }
    }

    /// What is wrong with the field, without its name: for callers that
    /// name their settings otherwise.
    pub fn reason(&self) -> String {
        match self {
            ConfigError::ZeroLimit => "must be at least 1".to_owned(),
            ConfigError::ZeroWindow => "must be above 0".to_owned(),
            ConfigError::QuotaSyntax { text, reason } => format!("{text:?}: {reason}"),
            ConfigError::FailureRate(rate) => {
                format!("must be between 0 and 1, got {rate}")
            }
            ConfigError::LatencyRange { min, max } => {
                format!("{min:?} is above latency_max {max:?}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_default_is_valid_and_the_original() {
        let behaviour = Behaviour::default();
        behaviour.validate().unwrap();
        assert_eq!(behaviour.rate_limit, Some(Quota::per_second(15)));
    }

    #[test]
    fn each_bad_value_is_named() {
        let base = Behaviour::default();
        let cases = [
            (
                Behaviour {
                    rate_limit: Some(Quota::per_second(0)),
                    ..base.clone()
                },
                "rate_limit.limit",
                "must be at least 1",
            ),
            (
                Behaviour {
                    rate_limit: Some(Quota {
                        limit: 3,
                        window: Duration::ZERO,
                    }),
                    ..base.clone()
                },
                "rate_limit.window",
                "must be above 0",
            ),
            (
                Behaviour {
                    failure_rate: 1.5,
                    ..base.clone()
                },
                "failure_rate",
                "got 1.5",
            ),
            (
                Behaviour {
                    failure_rate: f64::NAN,
                    ..base.clone()
                },
                "failure_rate",
                "got NaN",
            ),
            (
                Behaviour {
                    latency_min: Duration::from_millis(60),
                    ..base.clone()
                },
                "latency_min",
                "60ms is above latency_max 50ms",
            ),
        ];
        for (behaviour, field, reason) in cases {
            let error = behaviour.validate().unwrap_err();
            assert_eq!(error.field(), field);
            assert!(error.reason().contains(reason), "{error}");
            assert_eq!(
                error.to_string(),
                format!("invalid {field}: {}", error.reason())
            );
        }
        Behaviour {
            rate_limit: None,
            failure_rate: 1.0,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            seed: 1,
        }
        .validate()
        .unwrap();
    }
}
