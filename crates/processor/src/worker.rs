//! Delivery: takes records from the queue and sends them downstream in
//! batches, within the rate limit, retrying what failed, in order.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use futures::FutureExt;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use tokio::time::Instant;

use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::fault::{FaultyTask, panic_message};
use crate::limit::WindowStart;
use crate::limit::later;
use crate::limit::shared::{self as shared_limit, NotReserved};
use crate::metrics::Shard;
use crate::queue::{Batch, Meta, Queued};
use crate::shared::{HandBackReason, Shared};
use crate::sink::{Envelope, SendError, Sink, SinkError};

/// Records sent in one call, with what the processor keeps beside each.
/// A worker reuses two, so that a call allocates nothing.
struct Chunk<R> {
    envelopes: Vec<Envelope<R>>,
    metas: Vec<Meta>,
}

impl<R> Chunk<R> {
    fn new() -> Chunk<R> {
        Chunk {
            envelopes: Vec::new(),
            metas: Vec::new(),
        }
    }

    fn push(&mut self, envelope: Envelope<R>, meta: Meta) {
        self.envelopes.push(envelope);
        self.metas.push(meta);
    }

    fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }
}

/// Whether a worker goes on after a chunk.
enum Flow {
    Continue,
    Stopped,
}

/// Runs until the queue closes (stop) or is sealed and empty (finish).
pub(crate) async fn run<R: Send + Sync + 'static, S: Sink<R>, T>(
    shared: Arc<Shared<R, S, T>>,
    seed: u64,
) {
    let shard = shared.metrics.shard();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut chunk, mut spare) = (Chunk::new(), Chunk::new());
    let mut next = shared.queue.checkout().await;
    while let Some(mut batch) = next {
        linger(&shared, &mut batch).await;
        while !batch.items.is_empty() {
            // Yield now and then: with a sink that answers at once, nothing
            // else here would let the runtime's other tasks run.
            tokio::task::coop::consume_budget().await;
            next_chunk(&shared, &mut batch.items, &mut chunk);
            let records = chunk.envelopes.len();
            let flow = deliver(&shared, &shard, &mut chunk, &mut spare, &mut rng).await;
            shared.queue.finished(records);
            if let Flow::Stopped = flow {
                // Stopping: the rest of the batch goes back, in order.
                let rest = batch.items.len();
                for item in batch.items.drain(..) {
                    shared.hand_back_queued(&shard, item, HandBackReason::Queued);
                }
                shared.queue.finished(rest);
            }
        }
        next = match shared.queue.checkin_and_take(batch) {
            Some(batch) => Some(batch),
            None => shared.queue.checkout().await,
        };
    }
}

/// Lets a batch smaller than a call fill up for at most `linger`.
async fn linger<R: Send + Sync + 'static, S, T>(shared: &Shared<R, S, T>, batch: &mut Batch<R>) {
    let max = shared.settings.max_batch_records;
    if batch.items.len() >= max || shared.settings.linger.is_zero() {
        return;
    }
    tokio::select! {
        biased;
        () = shared.stop.raised() => return,
        () = tokio::time::sleep(shared.settings.linger) => {}
    }
    shared.queue.top_up(batch, max - batch.items.len());
}

/// Moves into the empty `chunk` the head of `items` that fits one call: at
/// most `max_batch_records` records and `max_batch_bytes` bytes, and at
/// least one record.
fn next_chunk<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    items: &mut VecDeque<Queued<R>>,
    chunk: &mut Chunk<R>,
) {
    let settings = &shared.settings;
    let mut bytes: usize = 0;
    while chunk.envelopes.len() < settings.max_batch_records {
        let Some(next) = items.front() else { break };
        bytes = bytes.saturating_add(next.meta.bytes);
        if bytes > settings.max_batch_bytes && !chunk.envelopes.is_empty() {
            break;
        }
        let Some(Queued { envelope, meta }) = items.pop_front() else {
            break;
        };
        chunk.push(envelope, meta);
    }
}

/// Delivers, dead-letters or (when stopping) hands back every record of
/// `chunk`, retrying the failed ones before anything else; leaves `chunk`
/// empty. `spare` is an empty buffer to gather the retries in.
async fn deliver<R: Send + Sync + 'static, S: Sink<R>, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    chunk: &mut Chunk<R>,
    spare: &mut Chunk<R>,
    rng: &mut ChaCha8Rng,
) -> Flow {
    let settings = &shared.settings;
    let deadline = later(Instant::now(), settings.retry.max_elapsed);
    let mut attempted = false;
    let mut refusals: u32 = 0;
    // Borrowed until a failure gives a message of its own: most chunks are
    // delivered at the first try, and need no allocation for it.
    let mut last_error = Cow::Borrowed("waiting for the rate limiter");
    while !chunk.is_empty() {
        let not_yet_sent = if attempted {
            HandBackReason::AwaitingRetry
        } else {
            HandBackReason::Queued
        };
        if shared.stop.is_raised() {
            hand_back_all(shared, shard, chunk, not_yet_sent);
            return Flow::Stopped;
        }
        let units = if settings.count_records {
            chunk.envelopes.len()
        } else {
            1
        };
        let permit = match &shared.limiter {
            None => None,
            Some(limiter) => tokio::select! {
                biased;
                () = shared.stop.raised() => {
                    hand_back_all(shared, shard, chunk, not_yet_sent);
                    return Flow::Stopped;
                }
                () = tokio::time::sleep_until(deadline) => {
                    time_out_all(shared, shard, chunk, &last_error).await;
                    return Flow::Continue;
                }
                permit = limiter.acquire(units) => Some(permit),
            },
        };
        if Instant::now() >= deadline {
            drop(permit);
            time_out_all(shared, shard, chunk, &last_error).await;
            return Flow::Continue;
        }
        let reservation = match &shared.shared_limit {
            None => None,
            Some(limit) => match shared_limit::reserve(shared, &**limit, units, deadline).await {
                Ok(reservation) => Some((&**limit, reservation)),
                Err(NotReserved::Stopped) => {
                    drop(permit);
                    hand_back_all(shared, shard, chunk, not_yet_sent);
                    return Flow::Stopped;
                }
                Err(NotReserved::TimedOut) => {
                    drop(permit);
                    last_error = Cow::Borrowed("waiting for the shared limit");
                    time_out_all(shared, shard, chunk, &last_error).await;
                    return Flow::Continue;
                }
            },
        };

        attempted = true;
        shard.call_started();
        let outcome = call(shared, shard, &chunk.envelopes).await;
        shard.call_ended();
        let Some(outcome) = outcome else {
            drop(permit);
            hand_back_all(shared, shard, chunk, HandBackReason::CallCancelled);
            return Flow::Stopped;
        };

        let outcomes = Outcomes::of(outcome, chunk.envelopes.len());
        let delivered = outcomes.delivered(chunk.envelopes.len());
        // A hint longer than `max_retry_after` is cut to it, for the
        // limiter's pause as for this worker's wait.
        let refused = outcomes
            .refusal()
            .map(|hint| hint.map(|wait| wait.min(settings.max_retry_after)));
        if outcomes.any(|o| matches!(o, Err(SinkError::Transient(_) | SinkError::Rejected(_)))) {
            shard.call_failed();
        }
        let kept = if settings.count_records {
            delivered
        } else {
            usize::from(delivered > 0)
        };
        // Read before the permit settles (it may end the warm-up), and only
        // with a shared limit: it takes the limiter's lock.
        let shared_settlement = reservation.map(|(limit, reservation)| {
            let from = match &shared.limiter {
                Some(limiter) if limiter.counts_from_answers() => WindowStart::Answer,
                Some(_) => WindowStart::Reservation,
                None if settings.window_from_answer => WindowStart::Answer,
                None => WindowStart::Reservation,
            };
            (limit, reservation, from)
        });
        match (permit, &refused) {
            (Some(permit), Some(retry_after)) if delivered == 0 => permit.refused(*retry_after),
            (Some(permit), _) => permit.succeeded(kept),
            (None, _) => {}
        }
        if let Some((limit, reservation, from)) = shared_settlement {
            shared_limit::settle(shared, limit, reservation, kept, from).await;
        }
        if refused.is_some() {
            shard.rate_limited();
        }

        // Settle each record; keep the ones to retry, in order, in `spare`.
        let mut letters = Vec::new();
        let records = chunk.envelopes.drain(..).zip(chunk.metas.drain(..));
        for (i, (envelope, mut meta)) in records.enumerate() {
            match outcomes.get(i) {
                Ok(()) => shared.delivered(shard, envelope.id, meta),
                Err(SinkError::RateLimited { .. }) => spare.push(envelope, meta),
                Err(SinkError::Transient(message)) => {
                    shard.failed_attempt(envelope.id.stream);
                    meta.failures += 1;
                    if settings.retry.allows_retry(meta.failures) {
                        last_error = Cow::Owned(message.clone());
                        spare.push(envelope, meta);
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
        std::mem::swap(chunk, spare);
        if chunk.is_empty() {
            break;
        }

        let wait = match refused {
            Some(retry_after) => {
                refusals += 1;
                last_error = Cow::Borrowed("rate limited");
                // Not a failure of the records: it does not use up attempts.
                // Wait before trying again so that a refusal the limiter did
                // not foresee cannot turn into a burst of calls.
                match retry_after {
                    Some(hint) => hint.min(settings.max_retry_after),
                    None => settings.retry.refusal_delay(refusals, rng),
                }
            }
            None => {
                let most = chunk.metas.iter().map(|m| m.failures).max().unwrap_or(1);
                settings.retry.delay(most, rng)
            }
        };
        tracing::debug!(
            ?wait,
            records = chunk.envelopes.len(),
            "waiting before the retry"
        );
        if !wait.is_zero() {
            let until = later(Instant::now(), wait).min(deadline);
            tokio::select! {
                biased;
                () = shared.stop.raised() => {
                    hand_back_all(shared, shard, chunk, HandBackReason::AwaitingRetry);
                    return Flow::Stopped;
                }
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }
    Flow::Continue
}

/// One call to the sink, with its panics caught and its time bounded.
/// `None` when the drain deadline cut it off.
async fn call<R: Send + Sync + 'static, S: Sink<R>, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    batch: &[Envelope<R>],
) -> Option<Result<(), SendError>> {
    let sink_panicked = |panic: Box<dyn std::any::Any + Send>| {
        let message = panic_message(&*panic).to_owned();
        shared.failed(FaultyTask::Sink, message.clone());
        Err(SinkError::Transient(format!("the sink panicked: {message}")).into())
    };
    let future = match catch_unwind(AssertUnwindSafe(|| shared.sink.send(batch))) {
        Ok(future) => future,
        Err(panic) => return Some(sink_panicked(panic)),
    };
    let mut call = pin!(AssertUnwindSafe(future).catch_unwind());
    // A sink that answers at once needs no timer and no race.
    let outcome = match futures::poll!(call.as_mut()) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => {
            let timeout = shared.settings.call_timeout;
            tokio::select! {
                biased;
                () = shared.abort.raised() => return None,
                () = tokio::time::sleep(timeout) => {
                    // A hang of user code: named in the report, as the
                    // dead-letter outlet's is.
                    let message = format!("no answer within {timeout:?}");
                    shard.call_timed_out();
                    shared.failed(FaultyTask::Sink, message.clone());
                    return Some(Err(SinkError::Transient(message).into()));
                }
                outcome = call => outcome,
            }
        }
    };
    Some(outcome.unwrap_or_else(sink_panicked))
}

/// A call's outcome, per record.
enum Outcomes {
    All(Result<(), SinkError>),
    Each(Vec<Result<(), SinkError>>),
}

impl Outcomes {
    fn of(outcome: Result<(), SendError>, records: usize) -> Outcomes {
        match outcome {
            Ok(()) => Outcomes::All(Ok(())),
            Err(SendError::Batch(error)) => Outcomes::All(Err(error)),
            Err(SendError::PerRecord(each)) if each.len() == records => Outcomes::Each(each),
            Err(SendError::PerRecord(each)) => Outcomes::All(Err(SinkError::Transient(format!(
                "the sink gave {} outcomes for {records} records",
                each.len()
            )))),
        }
    }

    fn get(&self, i: usize) -> &Result<(), SinkError> {
        match self {
            Outcomes::All(outcome) => outcome,
            Outcomes::Each(each) => &each[i],
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Result<(), SinkError>> {
        let (all, each) = match self {
            Outcomes::All(outcome) => (Some(outcome), &[][..]),
            Outcomes::Each(each) => (None, &each[..]),
        };
        all.into_iter().chain(each)
    }

    fn any(&self, test: impl Fn(&Result<(), SinkError>) -> bool) -> bool {
        self.iter().any(test)
    }

    /// Records delivered, of `records`.
    fn delivered(&self, records: usize) -> usize {
        match self {
            Outcomes::All(Ok(())) => records,
            Outcomes::All(Err(_)) => 0,
            Outcomes::Each(each) => each.iter().filter(|o| o.is_ok()).count(),
        }
    }

    /// Whether the API refused (some of) the call as rate limited, with the
    /// longest wait it asked for.
    fn refusal(&self) -> Option<Option<std::time::Duration>> {
        self.iter()
            .filter_map(|outcome| match outcome {
                Err(SinkError::RateLimited { retry_after }) => Some(*retry_after),
                _ => None,
            })
            .reduce(|a, b| a.max(b))
    }
}

fn hand_back_all<R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    chunk: &mut Chunk<R>,
    reason: HandBackReason,
) {
    for (envelope, meta) in chunk.envelopes.drain(..).zip(chunk.metas.drain(..)) {
        shared.hand_back(shard, envelope.id, Some(envelope.record), meta.ack, reason);
    }
}

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
