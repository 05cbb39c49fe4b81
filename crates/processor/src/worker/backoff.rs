//! Backoff: how long the records left after a call wait before they are
//! tried again.

use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use tokio::time::Instant;

use super::Flow;
use crate::limit::{Refusal, later};
use crate::queue::Meta;
use crate::retry::RetryPolicy;
use crate::shared::Shared;

/// The waits between one chunk's calls, by the chunk's retry policy.
pub(super) struct Backoff<'a> {
    policy: &'a RetryPolicy,
    /// Refused calls of the chunk so far.
    refusals: u32,
    /// The chunk's calls in a row that failed for the API's sake (down,
    /// misconfigured, or failing with nothing delivered anywhere).
    down: u32,
}

impl<'a> Backoff<'a> {
    /// The backoff of a chunk not yet refused.
    pub(super) fn new(policy: &'a RetryPolicy) -> Backoff<'a> {
        Backoff {
            policy,
            refusals: 0,
            down: 0,
        }
    }

    /// The wait before the records of `retries` are tried again.
    ///
    /// After a refusal: its retry-after hint, or without one a delay that
    /// grows with the chunk's refusals, with jitter
    /// ([`RetryPolicy::refusal_delay`]); never nothing, so that a refusal
    /// the limiter did not foresee cannot turn into a burst of calls.
    /// After failures: the policy's jittered delay
    /// ([`RetryPolicy::delay`]) for the record that used most attempts, or
    /// for the chunk's calls in a row that failed for the API's sake
    /// (`down`: failures that use no attempt), whichever is more, so that
    /// an outage is asked less and less often, up to `max_backoff`.
    pub(super) fn before_retry(
        &mut self,
        refusal: Option<Refusal>,
        down: bool,
        retries: &[Meta],
        rng: &mut ChaCha8Rng,
    ) -> Duration {
        self.down = if down { self.down.saturating_add(1) } else { 0 };
        match refusal {
            Some(refusal) => {
                self.refusals += 1;
                match refusal.retry_after {
                    Some(hint) => hint,
                    None => self.policy.refusal_delay(self.refusals, rng),
                }
            }
            None => {
                let most = retries.iter().map(|m| m.failures).max().unwrap_or(1);
                self.policy.delay(most.max(self.down), rng)
            }
        }
    }
}

/// Waits `wait` before `records` records are retried; [`Flow::Stopped`]
/// when the processor stops first (or has stopped).
pub(super) async fn wait_before_retry<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    wait: Duration,
    records: usize,
) -> Flow {
    tracing::debug!(?wait, records, "waiting before the retry");
    if shared.stop.is_raised() {
        return Flow::Stopped;
    }
    if !wait.is_zero() {
        tokio::select! {
            biased;
            () = shared.stop.raised() => return Flow::Stopped,
            () = tokio::time::sleep_until(later(Instant::now(), wait)) => {}
        }
    }
    Flow::Continue
}
