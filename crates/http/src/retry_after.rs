//! The `Retry-After` response header (RFC 9110, section 10.2.3).

use std::time::{Duration, SystemTime};

/// How long a `Retry-After` value asks the client to wait, seen at `now`.
///
/// - delta-seconds (`120`): that many seconds; a number too large for a
///   `u64` saturates (the processor caps every wait at its
///   `max_retry_after`);
/// - an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`, or the obsolete RFC 850
///   and asctime forms): the time from `now` until then, zero for a date
///   in the past;
/// - anything else: `None`, as if the header were absent.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sluice_http::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470);
/// assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
/// assert_eq!(
///     parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
///     Some(Duration::from_secs(10))
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only overflow can fail the parse.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// Wed, 21 Oct 2015 07:28:00 GMT.
    const DATE: u64 = 1_445_412_480;

    #[test]
    fn delta_seconds() {
        let now = at(DATE);
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 30 ", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "1.5", "+3", "3s", "0x10"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn http_dates_in_every_form() {
        for form in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(
                parse_retry_after(form, at(DATE - 5)),
                Some(Duration::from_secs(5)),
                "{form}"
            );
        }
    }

    #[test]
    fn a_past_date_means_now() {
        let value = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(value, at(DATE)), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(value, at(DATE + 60)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn a_fraction_of_a_second_is_kept() {
        let now = at(DATE - 3) + Duration::from_millis(250);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_millis(2_750))
        );
    }
}
