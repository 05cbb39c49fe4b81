//! Retry policy for transient failures: exponential backoff with full jitter.

use std::time::Duration;

use rand::{Rng, RngExt};

use crate::config::ConfigError;

/// The shortest first wait after a rate-limited answer without a hint.
pub const MIN_REFUSAL_BACKOFF: Duration = Duration::from_millis(10);

/// How failed calls are retried.
///
/// The delay before retry `n` (1-based) is drawn uniformly from
/// `[0, min(max_backoff, initial_backoff * multiplier^(n-1))]` ("full
/// jitter"), so that many records failing together do not retry together.
/// `n` is the attempts a record has used, or, while the API fails for its
/// own sake (unreachable, misconfigured), the calls in a row that failed
/// so: an outage is asked less and less often, up to `max_backoff`.
///
/// A record is dead-lettered once it has failed `max_attempts` times. Only
/// failures that may be the record's own use an attempt: a transient
/// failure while other calls get through (see [`Sink`](crate::Sink)).
/// Rate-limited answers, an unreachable or misconfigured API, transient
/// failures while nothing gets through, and waiting on the limits (the
/// shared limit's store unreachable included) use none, and never
/// dead-letter a record however long they last: it waits until delivered
/// or the processor stops.
///
/// The jitter is drawn from the processor's seeded RNG rather than by a
/// retry crate (backon, backoff) because those draw from a global RNG, which
/// would make simulated runs non-deterministic.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before a record is dead-lettered, the first included. At least 1.
    pub max_attempts: u32,
    /// The cap of the first retry's delay.
    pub initial_backoff: Duration,
    /// The largest cap of any retry's delay.
    pub max_backoff: Duration,
    /// Growth of the cap per retry; at least 1.
    pub multiplier: f64,
    /// The longest a record that keeps failing on its own may take: from
    /// its first failure that used an attempt, a later such failure past
    /// this dead-letters it
    /// ([`TimedOut`](crate::DeadLetterReason::TimedOut)) even with
    /// attempts left. Checked only at failures that use an attempt, so it
    /// never dead-letters a record that is waiting on the limits or
    /// through an outage of the API (though an outage between two of its
    /// own failures counts in the time). Default 5 minutes.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
            multiplier: 2.0,
            max_elapsed: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new("retry.max_attempts", "must be at least 1"));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ConfigError::new(
                "retry.multiplier",
                format!("must be a finite number >= 1, got {}", self.multiplier),
            ));
        }
        Ok(())
    }

    /// Whether a record that has failed `failures` times may be tried again.
    pub fn allows_retry(&self, failures: u32) -> bool {
        failures < self.max_attempts
    }

    /// The delay before retry number `retry` (1 for the first retry) of a
    /// failed call: full jitter under an exponentially growing cap.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let cap = self.cap(self.initial_backoff, retry);
        if cap <= 0.0 {
            return Duration::ZERO;
        }
        seconds(rng.random_range(0.0..=cap))
    }

    /// The wait after the `refusals`-th consecutive rate-limited answer
    /// that gave no retry-after hint: half of an exponentially growing cap
    /// (from at least [`MIN_REFUSAL_BACKOFF`]) plus jitter over the other
    /// half, so that a refused call is never retried at once, which would
    /// spin against the API.
    pub fn refusal_delay(&self, refusals: u32, rng: &mut impl Rng) -> Duration {
        let cap = self.cap(self.initial_backoff.max(MIN_REFUSAL_BACKOFF), refusals);
        seconds(cap / 2.0 + rng.random_range(0.0..=cap / 2.0))
    }

    /// `base * multiplier^(n-1)` seconds, at most `max_backoff` (or `base`
    /// when that is larger).
    fn cap(&self, base: Duration, n: u32) -> f64 {
        let growth = self.multiplier.powi(n.saturating_sub(1).min(1_000) as i32);
        let ceiling = self.max_backoff.max(base).as_secs_f64();
        let cap = (base.as_secs_f64() * growth).min(ceiling);
        if cap.is_finite() { cap.max(0.0) } else { 0.0 }
    }
}

/// `secs` as a duration, saturating at `Duration::MAX` (a backoff as long as
/// that is a wait until the stop).
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    use super::*;

    #[test]
    fn delays_stay_under_an_exponentially_growing_cap() {
        let policy = RetryPolicy::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for retry in 1..=12 {
            let cap = (0.020 * 2f64.powi(retry as i32 - 1)).min(2.0);
            let delays: Vec<f64> = (0..200)
                .map(|_| policy.delay(retry, &mut rng).as_secs_f64())
                .collect();
            assert!(delays.iter().all(|d| (0.0..=cap + 1e-9).contains(d)));
            // Jittered: spread over the range, not pinned to the cap.
            let max = delays.iter().cloned().fold(0.0, f64::max);
            let min = delays.iter().cloned().fold(f64::MAX, f64::min);
            assert!(
                max > cap * 0.9 && min < cap * 0.1,
                "retry {retry}: {min}..{max}"
            );
        }
    }

    #[test]
    fn refusals_always_wait_even_with_no_backoff_configured() {
        let policy = RetryPolicy {
            initial_backoff: Duration::ZERO,
            ..RetryPolicy::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for refusals in 1..=20 {
            let wait = policy.refusal_delay(refusals, &mut rng);
            let cap = (0.010 * 2f64.powi(refusals as i32 - 1)).min(2.0);
            assert!(
                wait.as_secs_f64() >= cap / 2.0 - 1e-9,
                "{refusals}: {wait:?}"
            );
            assert!(wait.as_secs_f64() <= cap + 1e-9, "{refusals}: {wait:?}");
        }
        assert_eq!(policy.delay(1, &mut rng), Duration::ZERO);
    }

    #[test]
    fn retries_stop_at_max_attempts() {
        let policy = RetryPolicy::default();
        assert!(policy.allows_retry(1));
        assert!(policy.allows_retry(5));
        assert!(!policy.allows_retry(6));
    }

    #[test]
    fn the_longest_backoffs_saturate() {
        let policy = RetryPolicy {
            initial_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            ..RetryPolicy::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [1, 2, 60, u32::MAX] {
            let _ = policy.delay(n, &mut rng);
            assert!(policy.refusal_delay(n, &mut rng) > Duration::from_secs(1 << 62));
        }
    }

    #[test]
    fn unusable_policies_are_refused() {
        let zero = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(zero.validate().unwrap_err().field, "retry.max_attempts");
        let shrinking = RetryPolicy {
            multiplier: 0.5,
            ..RetryPolicy::default()
        };
        assert_eq!(shrinking.validate().unwrap_err().field, "retry.multiplier");
    }
}
