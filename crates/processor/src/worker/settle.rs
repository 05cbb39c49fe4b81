//! Settlement: what a call's outcome does to the limits and to each of its
//! records, and what becomes of records the limits did not admit.

use std::borrow::Cow;

use super::call::Outcomes;
use super::{Chunk, Flow};
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::limit::{Admission, NotAdmitted, Refusal};
use crate::metrics::Shard;
use crate::queue::Meta;
use crate::shared::{HandBackReason, Shared};
use crate::sink::{Envelope, SinkError};

/// Settles what a call of `records` records took of the limits (see
/// [`Admission::settle`]) and counts the call: as failed when a record
/// failed (transiently or rejected), as rate limited when refused. Returns
/// the refusal, its wait cut to `max_retry_after`.
pub(super) async fn settle_limits<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    admission: Admission<'_>,
    outcomes: &Outcomes,
    records: usize,
) -> Option<Refusal> {
    let delivered = outcomes.delivered(records);
    let refusal = outcomes.refusal(shared.settings.max_retry_after);
    if outcomes.any(|o| matches!(o, Err(SinkError::Transient(_) | SinkError::Rejected(_)))) {
        shard.call_failed();
    }
    admission.settle(shared, delivered, refusal).await;
    if refusal.is_some() {
        shard.rate_limited();
    }
    refusal
}

/// Settles each record of `chunk` by its outcome, leaving `chunk` empty:
///
/// - delivered: counted and acknowledged;
/// - rate limited: kept in `retries` (not a failure of the record: it uses
///   up no attempt);
/// - failed transiently: an attempt used up; kept in `retries` while
///   `retry.max_attempts` allows (its message becomes `last_error`), else
///   dead-lettered ([`DeadLetterReason::RetriesExhausted`]);
/// - rejected: dead-lettered ([`DeadLetterReason::Rejected`]).
///
/// The records kept in `retries` stay in their order.
pub(super) async fn settle_records<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    outcomes: &Outcomes,
    chunk: &mut Chunk<R>,
    retries: &mut Chunk<R>,
    last_error: &mut Cow<'static, str>,
) {
    let retry = &shared.settings.retry;
    let mut letters = Vec::new();
    let records = chunk.envelopes.drain(..).zip(chunk.metas.drain(..));
    for (i, (envelope, mut meta)) in records.enumerate() {
        match outcomes.get(i) {
            Ok(()) => shared.delivered(shard, envelope.id, meta),
            Err(SinkError::RateLimited { .. }) => retries.push(envelope, meta),
            Err(SinkError::Transient(message)) => {
                shard.failed_attempt(envelope.id.stream);
                meta.failures += 1;
                if retry.allows_retry(meta.failures) {
                    *last_error = Cow::Owned(message.clone());
                    retries.push(envelope, meta);
                } else {
                    let reason = DeadLetterReason::RetriesExhausted {
                        attempts: meta.failures,
                        last_error: message.clone(),
                    };
                    letters.push((envelope, meta, reason));
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

/// Settles a chunk the limits did not admit, leaving it empty: at a stop
/// its records are handed back (as queued, or as awaiting a retry once
/// `attempted`); past their deadline they are dead-lettered as timed out,
/// with `last_error` (or, when it was the shared limit they waited for,
/// that).
pub(super) async fn not_admitted<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    chunk: &mut Chunk<R>,
    why: NotAdmitted,
    attempted: bool,
    last_error: &str,
) -> Flow {
    match why {
        NotAdmitted::Stopped => {
            let reason = if attempted {
                HandBackReason::AwaitingRetry
            } else {
                HandBackReason::Queued
            };
            hand_back_all(shared, shard, chunk, reason);
            return Flow::Stopped;
        }
        NotAdmitted::TimedOutLocally => time_out_all(shared, shard, chunk, last_error).await,
        NotAdmitted::TimedOutShared => {
            time_out_all(shared, shard, chunk, "waiting for the shared limit").await;
        }
    }
    Flow::Continue
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

/// Dead-letters every record of `chunk` as timed out, with `last_error`.
async fn time_out_all<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    chunk: &mut Chunk<R>,
    last_error: &str,
) {
    let limit = shared.settings.retry.max_elapsed;
    for (envelope, meta) in chunk.envelopes.drain(..).zip(chunk.metas.drain(..)) {
        let reason = DeadLetterReason::TimedOut {
            limit,
            last_error: last_error.to_owned(),
        };
        dead_letter(shared, shard, envelope, meta, reason).await;
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
