//! The limit's parameters: how many successes in what window.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::behaviour::ConfigError;

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

    /// Checks that the limit is at least 1 and the window above 0.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroLimit`] or [`ConfigError::ZeroWindow`].
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

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
            let error = bad.parse::<Quota>().unwrap_err();
            assert_eq!(error.field(), "rate_limit");
            assert!(error.to_string().contains(bad), "{error}");
        }
        assert_eq!("0/1s".parse::<Quota>().unwrap_err(), ConfigError::ZeroLimit);
        assert_eq!(
            "5/0s".parse::<Quota>().unwrap_err(),
            ConfigError::ZeroWindow
        );
    }
}
