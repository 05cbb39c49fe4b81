//! How the mock API behaves: its limit, its failures, its latency, its seed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A rate limit: at most `limit` successful calls admitted in any sliding
/// window of length `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Successful calls admitted per window; at least 1.
    pub limit: u32,
    /// The window the limit counts in; above 0.
    pub window: Duration,
}

impl Quota {
    /// `limit` successful calls per second, as in the original test.
    pub const fn per_second(limit: u32) -> Quota {
        Quota {
            limit,
            window: Duration::from_secs(1),
        }
    }
}

impl fmt::Display for Quota {
    /// `LIMIT/WINDOW`, e.g. `15/1s` or `60/1m`: what [`Quota::from_str`]
    /// reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            self.limit,
            humantime::format_duration(self.window)
        )
    }
}

impl FromStr for Quota {
    type Err = ConfigError;

    /// Reads `LIMIT/WINDOW`: `15/1s`, `60/1m`, `100/500ms`; a bare unit is
    /// one of it (`20/s`, `60/min`). The quota is validated.
    fn from_str(text: &str) -> Result<Quota, ConfigError> {
        let bad = |reason: String| ConfigError::QuotaSyntax {
            text: text.to_owned(),
            reason,
        };
        let (limit, window) = text
            .split_once('/')
            .ok_or_else(|| bad("expected LIMIT/WINDOW, e.g. 15/1s".to_owned()))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|e| bad(format!("limit {limit:?}: {e}")))?;
        let window = window.trim();
        let window = match humantime::parse_duration(window) {
            Ok(window) => window,
            // A bare unit: `s` is `1s`.
            Err(first) => humantime::parse_duration(&format!("1{window}"))
                .map_err(|_| bad(format!("window {window:?}: {first}")))?,
        };
        let quota = Quota { limit, window };
        quota.validate()?;
        Ok(quota)
    }
}

impl Quota {
    /// Checks that the limit is at least 1 and the window above 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.limit == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        if self.window.is_zero() {
            return Err(ConfigError::ZeroWindow);
        }
        Ok(())
    }
}

/// How the mock API behaves.
///
/// One admitted call waits a latency drawn uniformly from
/// `latency_min..=latency_max`, then fails with probability `failure_rate`
/// or succeeds. Every draw comes from one RNG seeded with `seed`; the draws
/// are taken in admission order, so the same seed and the same sequence
/// of calls give the same latencies and fates.
#[derive(Debug, Clone, PartialEq)]
pub struct MockApiConfig {
    /// The limit on successes; `None` for no limit.
    pub rate_limit: Option<Quota>,
    /// The probability that an admitted call fails with `503` (0 to 1).
    pub failure_rate: f64,
    /// The shortest latency of an admitted call.
    pub latency_min: Duration,
    /// The longest latency of an admitted call.
    pub latency_max: Duration,
    /// The seed of the API's RNG (latency and failure draws).
    pub seed: u64,
}

impl Default for MockApiConfig {
    /// The original test's API: 15 successes per second, 15 % failures,
    /// 10 to 50 ms of latency, seed 0.
    fn default() -> Self {
        MockApiConfig {
            rate_limit: Some(Quota::per_second(15)),
            failure_rate: 0.15,
            latency_min: Duration::from_millis(10),
            latency_max: Duration::from_millis(50),
            seed: 0,
        }
    }
}

impl MockApiConfig {
    /// Checks that every value is usable; the error names the field.
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

/// A mock API setting that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `rate_limit.limit` is 0.
    #[error("invalid rate_limit.limit: must be at least 1")]
    ZeroLimit,
    /// `rate_limit.window` is 0.
    #[error("invalid rate_limit.window: must be above 0")]
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
    #[error("invalid failure_rate: must be between 0 and 1, got {0}")]
    FailureRate(f64),
    /// `latency_min` is above `latency_max`.
    #[error("invalid latency_min: {min:?} is above latency_max {max:?}")]
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_default_is_valid_and_the_original() {
        let config = MockApiConfig::default();
        config.validate().unwrap();
        assert_eq!(config.rate_limit, Some(Quota::per_second(15)));
    }

    #[test]
    fn each_bad_value_is_named() {
        let base = MockApiConfig::default();
        let cases = [
            (
                MockApiConfig {
                    rate_limit: Some(Quota::per_second(0)),
                    ..base.clone()
                },
                "rate_limit.limit",
            ),
            (
                MockApiConfig {
                    rate_limit: Some(Quota {
                        limit: 3,
                        window: Duration::ZERO,
                    }),
                    ..base.clone()
                },
                "rate_limit.window",
            ),
            (
                MockApiConfig {
                    failure_rate: 1.5,
                    ..base.clone()
                },
                "failure_rate",
            ),
            (
                MockApiConfig {
                    failure_rate: f64::NAN,
                    ..base.clone()
                },
                "failure_rate",
            ),
            (
                MockApiConfig {
                    latency_min: Duration::from_millis(60),
                    ..base.clone()
                },
                "latency_min",
            ),
        ];
        for (config, field) in cases {
            let error = config.validate().unwrap_err();
            assert_eq!(error.field(), field);
            assert!(error.to_string().contains(field), "{error}");
        }
        MockApiConfig {
            rate_limit: None,
            failure_rate: 1.0,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            seed: 1,
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn quotas_read_back_what_they_print() {
        let cases = [
            ("15/1s", Quota::per_second(15)),
            ("20/s", Quota::per_second(20)),
            (
                "60/1m",
                Quota {
                    limit: 60,
                    window: Duration::from_secs(60),
                },
            ),
            (
                "60/min",
                Quota {
                    limit: 60,
                    window: Duration::from_secs(60),
                },
            ),
            (
                " 100 / 500ms ",
                Quota {
                    limit: 100,
                    window: Duration::from_millis(500),
                },
            ),
        ];
        for (text, quota) in cases {
            assert_eq!(text.parse::<Quota>().unwrap(), quota, "{text}");
            assert_eq!(quota.to_string().parse::<Quota>().unwrap(), quota);
        }
        for bad in ["15", "x/1s", "15/forever", "-1/1s"] {
            assert_eq!(bad.parse::<Quota>().unwrap_err().field(), "rate_limit");
        }
        assert_eq!("0/1s".parse::<Quota>().unwrap_err(), ConfigError::ZeroLimit);
        assert_eq!(
            "5/0s".parse::<Quota>().unwrap_err(),
            ConfigError::ZeroWindow
        );
    }
}
