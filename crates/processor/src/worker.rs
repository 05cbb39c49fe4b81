//! Delivery: takes records from the queue and sends them downstream, within
//! the rate limit, retrying transient failures.

use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::FutureExt;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use tokio::time::Instant;

use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::metrics::Shard;
use crate::queue::Queued;
use crate::shared::{HandBackReason, Shared};
use crate::sink::{Sink, SinkError};

/// Runs until the queue closes (stop) or is sealed and empty (finish).
pub(crate) async fn run<S: Sink>(shared: Arc<Shared<S>>, seed: u64) {
    let shard = shared.metrics.shard();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    while let Some(mut batch) = shared.queue.checkout().await {
        while let Some(item) = batch.items.pop_front() {
            // Yield now and then: with a sink that answers at once, nothing
            // else here would let the runtime's other tasks run.
            tokio::task::coop::consume_budget().await;
            let outcome = deliver(&shared, &shard, item, &mut rng).await;
            shared.queue.finished(1);
            let Some((item, reason)) = outcome else {
                continue;
            };
            // Stopping: this record and the rest of the batch go back, in order.
            shared.hand_back(&shard, item, reason);
            let rest = batch.items.len();
            for item in batch.items.drain(..) {
                shared.hand_back(&shard, item, HandBackReason::Queued);
            }
            shared.queue.finished(rest);
        }
        shared.queue.checkin(batch.lane);
    }
}

/// Delivers or dead-letters one record. Returns it, with where it was,
/// when a stop interrupts.
async fn deliver<S: Sink>(
    shared: &Shared<S>,
    shard: &Shard,
    item: Queued,
    rng: &mut ChaCha8Rng,
) -> Option<(Queued, HandBackReason)> {
    let mut failures: u32 = 0;
    let mut refusals: u32 = 0;
    let mut first_attempt: Option<Instant> = None;
    loop {
        let not_yet_sent = if first_attempt.is_none() {
            HandBackReason::Queued
        } else {
            HandBackReason::AwaitingRetry
        };
        if shared.stop.is_raised() {
            return Some((item, not_yet_sent));
        }
        let permit = match &shared.limiter {
            None => None,
            Some(limiter) => tokio::select! {
                biased;
                () = shared.stop.raised() => return Some((item, not_yet_sent)),
                permit = limiter.acquire() => Some(permit),
            },
        };

        let first_attempt_at = *first_attempt.get_or_insert_with(Instant::now);
        shard.call_started();
        let outcome = {
            let mut call = pin!(AssertUnwindSafe(shared.sink.send(&item.record)).catch_unwind());
            // A sink that answers at once needs no race with the drain deadline.
            match futures::poll!(call.as_mut()) {
                Poll::Ready(outcome) => Some(outcome),
                Poll::Pending => tokio::select! {
                    biased;
                    () = shared.abort.raised() => None,
                    outcome = call => Some(outcome),
                },
            }
        };
        shard.call_ended();
        let Some(outcome) = outcome else {
            return Some((item, HandBackReason::CallCancelled));
        };
        let outcome = outcome.unwrap_or_else(|panic| {
            Err(SinkError::Transient(format!(
                "the sink panicked: {}",
                panic_message(&*panic)
            )))
        });

        let wait = match outcome {
            Ok(()) => {
                if let Some(permit) = permit {
                    permit.succeeded();
                }
                shard.delivered(item.key.source, item.priority);
                shared
                    .metrics
                    .record_latency(shard, item.intake_at.elapsed());
                return None;
            }
            Err(SinkError::RateLimited { retry_after }) => {
                shard.rate_limited();
                if let Some(permit) = permit {
                    permit.refused(retry_after);
                }
                refusals += 1;
                // Not a failure of the record: it does not use up attempts.
                // Wait before trying again so that a refusal the limiter did
                // not foresee cannot turn into a burst of calls.
                retry_after.unwrap_or_else(|| shared.retry.refusal_delay(refusals, rng))
            }
            Err(SinkError::Transient(message)) => {
                shard.failed_call(item.key.source);
                drop(permit);
                failures += 1;
                if !shared
                    .retry
                    .allows_retry(failures, first_attempt_at.elapsed())
                {
                    let reason = DeadLetterReason::RetriesExhausted {
                        attempts: failures,
                        last_error: message,
                    };
                    dead_letter(shared, shard, item, reason).await;
                    return None;
                }
                shared.retry.delay(failures, rng)
            }
            Err(SinkError::Rejected(message)) => {
                shard.failed_call(item.key.source);
                drop(permit);
                dead_letter(shared, shard, item, DeadLetterReason::Rejected(message)).await;
                return None;
            }
        };
        if wait > Duration::ZERO {
            tokio::select! {
                biased;
                () = shared.stop.raised() => return Some((item, HandBackReason::AwaitingRetry)),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

async fn dead_letter<S>(shared: &Shared<S>, shard: &Shard, item: Queued, reason: DeadLetterReason) {
    tracing::debug!(key = %item.key, %reason, "dead-lettered");
    shard.dead_lettered(item.key.source);
    shared
        .dead_letters
        .dead_letter(DeadLetter {
            key: item.key,
            record: item.record,
            reason,
        })
        .await;
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-text panic payload")
}
