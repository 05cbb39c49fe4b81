//! Intake: pulls records from one source, transforms and validates them,
//! and queues them for delivery.

use std::pin::pin;
use std::sync::Arc;

use futures::{FutureExt, Stream, StreamExt};
use sluice_models::{ModelError, StreamData};
use tokio::time::Instant;
use validator::Validate;

use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::metrics::Shard;
use crate::places::Place;
use crate::queue::Queued;
use crate::shared::Shared;

/// The most records intake gathers before queueing them under one lock,
/// when its source has them ready at once.
const BATCH: usize = 32;

/// Runs until the source ends or the processor stops.
///
/// A place in the queue is reserved *before* the next record is pulled, so
/// a full queue stops the pulling (backpressure). Records gathered for one
/// push are queued before any await, so a stop never finds a record held
/// here: every await point holds none.
pub(crate) async fn run<S, St>(shared: Arc<Shared<S>>, source: St)
where
    St: Stream<Item = StreamData> + Send,
{
    let shard = shared.metrics.shard();
    let mut source = pin!(source);
    let mut batch: Vec<Queued> = Vec::with_capacity(BATCH);
    loop {
        if batch.len() == BATCH || shared.stop.is_raised() {
            shared.queue.push_all(&mut batch);
            if shared.stop.is_raised() {
                return;
            }
        }
        // Yield now and then: the fast paths below never wait.
        if batch.is_empty() {
            tokio::task::coop::consume_budget().await;
        }
        // Fast paths first: a free place and a ready record need no waiting.
        let slot = match shared.queue.try_reserve() {
            Some(slot) => slot,
            None => {
                shared.queue.push_all(&mut batch);
                tokio::select! {
                    biased;
                    () = shared.stop.raised() => return,
                    slot = shared.queue.reserve() => slot,
                }
            }
        };
        let next = match source.next().now_or_never() {
            Some(next) => next,
            None => {
                shared.queue.push_all(&mut batch);
                tokio::select! {
                    biased;
                    () = shared.stop.raised() => return,
                    next = source.next() => next,
                }
            }
        };
        let Some(data) = next else {
            shared.queue.push_all(&mut batch);
            return;
        };
        if let Some(letter) = take(&shared, &shard, slot, data, &mut batch) {
            shared.queue.push_all(&mut batch);
            tracing::debug!(key = %letter.key, reason = %letter.reason, "dead-lettered at intake");
            shared.dead_letters.dead_letter(letter).await;
        }
    }
}

/// Transforms and validates one record: into `batch` with its place, or
/// out as a dead letter (its place freed), returned.
fn take<S>(
    shared: &Shared<S>,
    shard: &Shard,
    slot: Place<'_>,
    data: StreamData,
    batch: &mut Vec<Queued>,
) -> Option<DeadLetter> {
    shard.ingested(data.source);
    let intake_at = Instant::now();
    let key = data.key();
    let priority = data.priority;
    let mut record = shared.transform.transform(data, shared.clock.at(intake_at));
    record.processing_time_ms = intake_at.elapsed().as_secs_f64() * 1000.0;
    match record.validate() {
        Ok(()) => {
            slot.keep();
            batch.push(Queued {
                record,
                key,
                priority,
                intake_at,
            });
            None
        }
        Err(errors) => {
            drop(slot);
            shard.dead_lettered(key.source);
            Some(DeadLetter {
                key,
                record,
                reason: DeadLetterReason::Invalid(ModelError::from(errors)),
            })
        }
    }
}
