//! Settlement: what a call's outcome does to the limits, to what the
//! workers know of the API, and to each of its records; and what becomes
//! of records the limits did not admit.

use super::call::{Outcomes, api_is_up};
use super::{Chunk, Flow};
use crate::ack::Ack;
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::health::Halt;
use crate::limit::{Admission, Refusal, Stopped};
use crate::metrics::Shard;
use crate::queue::Meta;
use crate::shared::{HandBackReason, Shared};
use crate::sink::{Envelope, Sink, SinkError};

/// Settles what a call of `records` records took of the limits (see
/// [`Admission::settle`]) and counts the call: as failed when a record
/// failed (any way but rate limited), as rate limited when refused.
/// Returns the refusal, its wait cut to `max_retry_after`.
pub(super) async fn settle_limits<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    admission: Admission<'_>,
    outcomes: &Outcomes,
    records: usize,
) -> Option<Refusal> {
    let delivered = outcomes.delivered(records);
    let refusal = outcomes.refusal(shared.settings.max_retry_after);
    if outcomes.any(|o| matches!(o, Err(error) if !matches!(error, SinkError::RateLimited { .. })))
    {
        shard.call_failed();
    }
    admission.settle(shared, delivered, refusal).await;
    if refusal.is_some() {
        shard.rate_limited();
    }
    refusal
}

/// Whether the API answers as up although a call started when `before`
/// calls had delivered failed transiently with none delivered since: the
/// sink is asked ([`Sink::is_up`](crate::Sink::is_up)) only then, as the
/// failures alone cannot tell an outage from a record that always fails.
/// `false` when not asked.
pub(super) async fn up_despite_failure<R: Send + Sync + 'static, S: Sink<R>, T>(
    shared: &Shared<R, S, T>,
    outcomes: &Outcomes,
    before: u64,
) -> bool {
    let ambiguous = shared.health.successes() == before
        && outcomes.any(|o| matches!(o, Err(SinkError::Transient(_))));
    ambiguous && api_is_up(shared).await
}

/// Tells the API's health what a call of `records` records, started when
/// `before` calls had delivered, says of the API (`up`: the sink said it
/// is up, see [`up_despite_failure`]); returns whether it failed for the
/// API's sake.
///
/// A call that delivered anything shows the API up. One that delivered
/// nothing, and was neither refused nor had a record rejected (answers
/// about the records), failed for the API's sake when a record met
/// `Unavailable` or `Misconfigured`, or failed transiently while no call
/// delivered anything since it started and the sink did not say it is up. A call answered `Misconfigured`
/// counts towards the circuit, which opens (halting the processor) at
/// `circuit_after` such calls in a row.
pub(super) fn settle_health<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    outcomes: &Outcomes,
    records: usize,
    before: u64,
    up: bool,
) -> bool {
    let health = &shared.health;
    if outcomes.delivered(records) > 0 {
        health.delivered();
        return false;
    }
    let answered = outcomes.any(|o| {
        matches!(
            o,
            Err(SinkError::RateLimited { .. } | SinkError::Rejected(_))
        )
    });
    if answered {
        return false;
    }
    let nothing_since = health.successes() == before && !up;
    let mut reason = None;
    let mut misconfigured = None;
    for outcome in outcomes.iter() {
        match outcome {
            Err(SinkError::Misconfigured(message)) => {
                misconfigured.get_or_insert(message);
                reason.get_or_insert(outcome);
            }
            Err(SinkError::Unavailable(_)) => {
                reason.get_or_insert(outcome);
            }
            Err(SinkError::Transient(_)) if nothing_since => {
                reason.get_or_insert(outcome);
            }
            _ => {}
        }
    }
    let Some(Err(error)) = reason else {
        return false;
    };
    health.failed(&error.to_string());
    if let Some(cause) = misconfigured {
        let calls = health.misconfigured();
        let after = shared.settings.circuit_after;
        if after > 0 && calls >= after {
            shared.halt(Halt {
                cause: cause.clone(),
                calls,
            });
        }
    }
    true
}

/// Settles each record of `chunk` by its outcome, leaving `chunk` empty.
/// `successes` is the count of calls that delivered, this one included;
/// `up`, whether the sink said the API is up (see [`up_despite_failure`]):
///
/// - delivered: counted and acknowledged;
/// - rate limited: kept in `retries` (not a failure of the record: it uses
///   up no attempt);
/// - unavailable or misconfigured: kept in `retries`, using no attempt:
///   never the record's fault;
/// - failed transiently while no call delivered since its previous failure
///   (since its call started, for its first) and the sink did not say the
///   API is up: kept in `retries`, using no attempt, as the API may be
///   down;
/// - failed transiently otherwise: an attempt used up; kept
///   in `retries` while `retry.max_attempts` allows, and while
///   `retry.max_elapsed` has not passed since its first such failure; else
///   dead-lettered ([`DeadLetterReason::RetriesExhausted`], or
///   [`DeadLetterReason::TimedOut`]);
/// - rejected: dead-lettered ([`DeadLetterReason::Rejected`]).
///
/// The records kept in `retries` stay in their order.
pub(super) async fn settle_records<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    outcomes: &Outcomes,
    chunk: &mut Chunk<R>,
    retries: &mut Chunk<R>,
    successes: u64,
    up: bool,
) {
    let retry = &shared.settings.retry;
    let mut letters = Vec::new();
    let records = chunk.envelopes.drain(..).zip(chunk.metas.drain(..));
    for (i, (envelope, mut meta)) in records.enumerate() {
        match outcomes.get(i) {
            Ok(()) => shared.delivered(shard, envelope.id, meta),
            Err(SinkError::RateLimited { .. }) => retries.push(envelope, meta),
            Err(SinkError::Unavailable(_) | SinkError::Misconfigured(_)) => {
                meta.seen = Some(successes);
                retries.push(envelope, meta);
            }
            Err(SinkError::Transient(message)) => {
                let got_through = meta.seen.is_some_and(|seen| successes > seen);
                meta.seen = Some(successes);
                if !(got_through || up) {
                    retries.push(envelope, meta);
                    continue;
                }
                shard.failed_attempt(envelope.id.stream);
                meta.failures += 1;
                let first = *meta
                    .first_failed_at
                    .get_or_insert_with(tokio::time::Instant::now);
                if !retry.allows_retry(meta.failures) {
                    let reason = DeadLetterReason::RetriesExhausted {
                        attempts: meta.failures,
                        last_error: message.clone(),
                    };
                    letters.push((envelope, meta, reason));
                } else if first.elapsed() >= retry.max_elapsed {
                    let reason = DeadLetterReason::TimedOut {
                        limit: retry.max_elapsed,
                        last_error: message.clone(),
                    };
                    letters.push((envelope, meta, reason));
                } else {
                    retries.push(envelope, meta);
                }
            }
            Err(SinkError::Rejected(message)) => {
                shard.failed_attempt(envelope.id.stream);
                letters.push((envelope, meta, DeadLetterReason::Rejected(message.clone())));
            }
        }
    }
    for (envelope, meta, reason) in letters {
        dead_letter(shared, shard, envelope, meta, reason).await;
    }
}

/// Settles a chunk the limits did not admit (the processor is stopping),
/// leaving it empty: its records are handed back, as queued, or as
/// awaiting a retry once `attempted`.
pub(super) fn not_admitted<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    chunk: &mut Chunk<R>,
    _: Stopped,
    attempted: bool,
) -> Flow {
    let reason = if attempted {
        HandBackReason::AwaitingRetry
    } else {
        HandBackReason::Queued
    };
    hand_back_all(shared, shard, chunk, reason);
    Flow::Stopped
}

/// Checks, just before a call, the lease of each record of `chunk` that
/// was read under one (its [`Fence`](crate::Fence)): a record whose lease
/// lapsed is handed back ([`HandBackReason::LeaseEnded`]), not sent; each
/// other one carries its lease's token into the call. The records kept
/// stay in order; `spare` is an empty buffer to gather them in.
pub(super) fn fence_out<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    chunk: &mut Chunk<R>,
    spare: &mut Chunk<R>,
) {
    let mut lapsed = false;
    for (envelope, meta) in chunk.envelopes.iter_mut().zip(&chunk.metas) {
        let Some(fence) = meta.ack.as_ref().and_then(Ack::fence) else {
            continue;
        };
        envelope.fence = fence.check();
        lapsed |= envelope.fence.is_none();
    }
    if !lapsed {
        return;
    }
    for (envelope, meta) in chunk.envelopes.drain(..).zip(chunk.metas.drain(..)) {
        let fenced_out =
            envelope.fence.is_none() && meta.ack.as_ref().and_then(Ack::fence).is_some();
        if fenced_out {
            tracing::debug!(id = %envelope.id, "its lease lapsed: handed back, not sent");
            let reason = HandBackReason::LeaseEnded;
            shared.hand_back(shard, envelope.id, Some(envelope.record), meta.ack, reason);
        } else {
            spare.push(envelope, meta);
        }
    }
    std::mem::swap(chunk, spare);
}

/// Hands back every record of `chunk` for `reason`, in order.
pub(super) fn hand_back_all<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    chunk: &mut Chunk<R>,
    reason: HandBackReason,
) {
    for (envelope, meta) in chunk.envelopes.drain(..).zip(chunk.metas.drain(..)) {
        shared.hand_back(shard, envelope.id, Some(envelope.record), meta.ack, reason);
    }
}

/// Gives one record to the dead-letter outlet for `reason`.
async fn dead_letter<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    envelope: Envelope<R>,
    meta: Meta,
    reason: DeadLetterReason,
) {
    let letter = DeadLetter {
        id: envelope.id,
        record: Some(envelope.record),
        raw: None,
        reason,
    };
    shared.dead_letter(shard, letter, meta.ack).await;
}
