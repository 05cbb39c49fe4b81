//! Rate limits as users write them: `20/s`, `1000/min`, `5/200ms`, `auto`,
//! `none`; parsed, printed and (de)serialized as that text.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{Quota, RateLimit};

/// The shortest window a quota may have.
pub const MIN_QUOTA_WINDOW: Duration = Duration::from_millis(1);
/// The longest window a quota may have: a day.
pub const MAX_QUOTA_WINDOW: Duration = Duration::from_secs(86_400);

/// Why a text is not a rate limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a rate limit: {problem} (write N/UNIT, e.g. 20/s, 1000/min or 5/200ms; `auto` to learn it, `none` for no limit)"
)]
pub struct RateLimitParseError {
    text: String,
    problem: String,
}

impl RateLimitParseError {
    fn new(text: &str, problem: impl Into<String>) -> RateLimitParseError {
        RateLimitParseError {
            text: text.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Parses `N/UNIT`: N from 1 to 4294967295, UNIT `s`, `min`, `h` or a
/// duration from 1ms to 1 day (`200ms`, `10s`).
///
/// ```
/// use std::time::Duration;
/// use sluice_processor::Quota;
///
/// let quota: Quota = "1000/min".parse()?;
/// assert_eq!((quota.limit.get(), quota.window), (1000, Duration::from_secs(60)));
/// assert_eq!(quota.to_string(), "1000/min");
/// assert!("0/s".parse::<Quota>().is_err());
/// # Ok::<(), sluice_processor::RateLimitParseError>(())
/// ```
impl FromStr for Quota {
    type Err = RateLimitParseError;

    fn from_str(text: &str) -> Result<Quota, RateLimitParseError> {
        let (count, unit) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| RateLimitParseError::new(text, "no `/`"))?;
        let limit: NonZeroU32 = count.trim().parse().map_err(|_| {
            RateLimitParseError::new(
                text,
                format!("{count:?} is not a whole number from 1 to 4294967295"),
            )
        })?;
        let window = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3_600),
            other => humantime::parse_duration(other)
                .map_err(|error| RateLimitParseError::new(text, format!("{other:?}: {error}")))?,
        };
        if !(MIN_QUOTA_WINDOW..=MAX_QUOTA_WINDOW).contains(&window) {
            return Err(RateLimitParseError::new(
                text,
                "the window must be 1ms to 1 day",
            ));
        }
        Ok(Quota { limit, window })
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.limit)?;
        match self.window.as_secs() {
            1 | 60 | 3_600 if self.window.subsec_nanos() == 0 => {
                f.write_str(match self.window.as_secs() {
                    1 => "s",
                    60 => "min",
                    _ => "h",
                })
            }
            _ => write!(f, "{}", humantime::format_duration(self.window)),
        }
    }
}

/// Parses a [`Quota`] (`20/s`), `auto` (learned from refusals over
/// one-second windows; `auto/10s` for other windows) or `none`.
///
/// ```
/// use sluice_processor::RateLimit;
///
/// for text in ["20/s", "5/200ms", "auto", "auto/10s", "none"] {
///     let limit: RateLimit = text.parse()?;
///     assert_eq!(limit.to_string(), text);
/// }
/// assert!("fast".parse::<RateLimit>().is_err());
/// # Ok::<(), sluice_processor::RateLimitParseError>(())
/// ```
impl FromStr for RateLimit {
    type Err = RateLimitParseError;

    fn from_str(text: &str) -> Result<RateLimit, RateLimitParseError> {
        match text.trim() {
            "none" => Ok(RateLimit::Unlimited),
            "auto" => Ok(RateLimit::Adaptive {
                window: Duration::from_secs(1),
            }),
            trimmed => match trimmed.strip_prefix("auto/") {
                Some(window) => {
                    let window = humantime::parse_duration(window.trim()).map_err(|error| {
                        RateLimitParseError::new(text, format!("{window:?}: {error}"))
                    })?;
                    if !(MIN_QUOTA_WINDOW..=MAX_QUOTA_WINDOW).contains(&window) {
                        return Err(RateLimitParseError::new(
                            text,
                            "the window must be 1ms to 1 day",
                        ));
                    }
                    Ok(RateLimit::Adaptive { window })
                }
                None => trimmed.parse().map(RateLimit::Fixed),
            },
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimit::Unlimited => f.write_str("none"),
            RateLimit::Fixed(quota) => quota.fmt(f),
            RateLimit::Adaptive { window } if *window == Duration::from_secs(1) => {
                f.write_str("auto")
            }
            RateLimit::Adaptive { window } => {
                write!(f, "auto/{}", humantime::format_duration(*window))
            }
        }
    }
}

macro_rules! serde_as_text {
    ($type:ty, $expecting:literal) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Text;
                impl serde::de::Visitor<'_> for Text {
                    type Value = $type;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$type, E> {
                        text.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Text)
            }
        }
    };
}

serde_as_text!(Quota, "a quota as N/UNIT, e.g. \"20/s\"");
serde_as_text!(
    RateLimit,
    "a rate limit: N/UNIT (e.g. \"20/s\"), \"auto\" or \"none\""
);

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(limit: u32, window: Duration) -> RateLimit {
        RateLimit::Fixed(Quota {
            limit: NonZeroU32::new(limit).unwrap(),
            window,
        })
    }

    #[test]
    fn limits_are_read_as_apis_state_them() {
        let cases = [
            ("20/s", quota(20, Duration::from_secs(1))),
            (" 1000 / min ", quota(1_000, Duration::from_secs(60))),
            ("7/hour", quota(7, Duration::from_secs(3_600))),
            ("5/200ms", quota(5, Duration::from_millis(200))),
            ("none", RateLimit::Unlimited),
            (
                "auto",
                RateLimit::Adaptive {
                    window: Duration::from_secs(1),
                },
            ),
        ];
        for (text, limit) in cases {
            assert_eq!(text.parse::<RateLimit>(), Ok(limit), "{text}");
        }
    }

    #[test]
    fn what_is_not_a_limit_is_refused_saying_why() {
        for (bad, why) in [
            ("0/s", "not a whole number"),
            ("20", "no `/`"),
            ("x/s", "not a whole number"),
            ("20/fortnight", "fortnight"),
            ("20/0ms", "1ms to 1 day"),
            ("20/2days", "1ms to 1 day"),
            ("99999999999/s", "not a whole number"),
            ("auto/0s", "1ms to 1 day"),
        ] {
            let error = bad.parse::<RateLimit>().unwrap_err().to_string();
            assert!(
                error.contains(why) && error.contains("N/UNIT"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn limits_print_as_they_are_read_and_survive_serde() {
        for text in [
            "20/s", "1000/min", "7/h", "5/200ms", "3/1m 30s", "none", "auto", "auto/10s",
        ] {
            let limit: RateLimit = text.parse().unwrap();
            assert_eq!(limit.to_string(), text);
            let json = serde_json::to_string(&limit).unwrap();
            assert_eq!(serde_json::from_str::<RateLimit>(&json).unwrap(), limit);
        }
        let error = serde_json::from_str::<RateLimit>("15").unwrap_err();
        assert!(error.to_string().contains("N/UNIT"), "{error}");
    }
}
