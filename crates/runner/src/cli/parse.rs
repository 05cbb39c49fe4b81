//! Value parsers of the command line, each with its bounds, so that no
//! value a flag accepts can overflow or panic later.

use std::time::Duration;

use sluice_mock_api::Quota as ApiQuota;
use sluice_models::DataSource;
use sluice_sim::{MAX_RATE_PER_SOURCE, MIN_RATE_PER_SOURCE};

use sluice_processor::RateLimit;

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

/// An API's limit (`--rate-limit` of `mock-api`, `--api-rate-limit` of
/// `simulate`): a quota, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimit(pub Option<ApiQuota>);

/// Parses an API's limit: N/UNIT (`15/s`, `1000/min`, `5/200ms`), `none`,
/// or a bare N (per second: the old spelling of `simulate`).
pub(crate) fn api_limit(text: &str) -> Result<ApiLimit, String> {
    match text.trim() {
        "none" => Ok(ApiLimit(None)),
        per_second if per_second.parse::<u32>().is_ok() => format!("{per_second}/s")
            .parse::<ApiQuota>()
            .map(|quota| ApiLimit(Some(quota)))
            .map_err(|e| e.to_string()),
        other => other
            .parse::<ApiQuota>()
            .map(|quota| ApiLimit(Some(quota)))
            .map_err(|e| e.to_string()),
    }
}

/// Parses a client's rate limit: N/UNIT, `auto`, `none`, or a bare N (per
/// second: the old spelling of `simulate --client-rate-limit`).
pub(crate) fn client_rate_limit(text: &str) -> Result<RateLimit, String> {
    let text = text.trim();
    match text.parse::<u32>() {
        Ok(per_second) => format!("{per_second}/s").parse(),
        Err(_) => text.parse::<RateLimit>(),
    }
    .map_err(|error| error.to_string())
}

/// Parses a latency range, `MIN..MAX` (each 0 to 1h), or one value.
pub(crate) fn latency(text: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = text.split_once("..").unwrap_or((text, text));
    let (low, high) = (duration(low.trim())?, duration(high.trim())?);
    if high > MAX_WAIT {
        return Err(format!(
            "{} is longer than 1h",
            humantime::format_duration(high)
        ));
    }
    if low > high {
        return Err(format!(
            "{} is above {}",
            humantime::format_duration(low),
            humantime::format_duration(high)
        ));
    }
    Ok((low, high))
}
