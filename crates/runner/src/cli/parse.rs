//! Value parsers of the command line, each with its bounds, so that no
//! value a flag accepts can overflow or panic later.

use std::num::NonZeroU32;
use std::time::Duration;

use sluice_models::DataSource;
use sluice_sim::{MAX_RATE_PER_SOURCE, MIN_RATE_PER_SOURCE};

use super::simulate::ClientRateLimit;

/// The longest run: a week.
pub(crate) const MAX_RUN: Duration = Duration::from_secs(7 * 86_400);
/// The longest wait a flag sets (latencies, deadlines, timeouts): an hour.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(3_600);

pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error} (write e.g. 10s, 1m or 500ms)"))
}

/// A parser of durations from `low` to `high`.
pub(crate) fn bounded_duration(
    low: Duration,
    high: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| {
        let value = duration(text)?;
        if (low..=high).contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "must be {} to {}, got {}",
                humantime::format_duration(low),
                humantime::format_duration(high),
                humantime::format_duration(value)
            ))
        }
    }
}

fn number(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| format!("{text:?} is not a number"))
}

pub(crate) fn probability(text: &str) -> Result<f64, String> {
    let value = number(text)?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not between 0 and 1"))
    }
}

pub(crate) fn rate_per_source(text: &str) -> Result<f64, String> {
    let value = number(text)?;
    if (MIN_RATE_PER_SOURCE..=MAX_RATE_PER_SOURCE).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{} is not between {MIN_RATE_PER_SOURCE} and {MAX_RATE_PER_SOURCE}",
            text.trim()
        ))
    }
}

pub(crate) fn source(text: &str) -> Result<DataSource, String> {
    text.trim()
        .parse::<DataSource>()
        .map_err(|error| error.to_string())
}

pub(crate) fn client_rate_limit(text: &str) -> Result<ClientRateLimit, String> {
    match text {
        "auto" => Ok(ClientRateLimit::Auto),
        "none" => Ok(ClientRateLimit::Unlimited),
        number => number
            .parse::<NonZeroU32>()
            .map(ClientRateLimit::PerSecond)
            .map_err(|_| format!("{number:?} is not a positive whole number, `auto` or `none`")),
    }
}
