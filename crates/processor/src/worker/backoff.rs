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
}

impl<'a> Backoff<'a> {
    /// The backoff of a chunk not yet refused.
    pub(super) fn new(policy: &'a RetryPolicy) -> Backoff<'a> {
        Backoff {
            policy,
            refusals: 0,
        }
    }

    /// The wait before the records of `retries` are tried again.
    ///
    /// After a refusal: its retry-after hint, or without one a delay that
    /// grows with the chunk's refusals, with jitter
    /// ([`RetryPolicy::refusal_delay`]); never nothing, so that a refusal
    /// the limiter did not foresee cannot turn into a burst of calls.
    /// After transient failures: the policy's jittered delay for the
    /// record that failed most ([`RetryPolicy::delay`]).
    pub(super) fn before_retry(
        &mut self,
        refusal: Option<Refusal>,
        retries: &[Meta],
        rng: &mut ChaCha8Rng,
    ) -> Duration {
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
                self.policy.delay(most, rng)
            }
        }
    }
}

/// Waits `wait` before `records` records are retried, but not past
/// `deadline` (their time is then up); [`Flow::Stopped`] when the
/// processor stops first.
pub(super) async fn wait_before_retry<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    wait: Duration,
    deadline: Instant,
    records: usize,
) -> Flow {
    tracing::debug!(?wait, records, "waiting before the retry");
    if !wait.is_zero() {
        let until = later(Instant::now(), wait).min(deadline);
        tokio::select! {
            biased;
            () = shared.stop.raised() => return Flow::Stopped,
            () = tokio::time::sleep_until(until) => {}
        }
    }
    Flow::Continue
}
