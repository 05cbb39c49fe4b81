//! Intake: pulls records from one source, transforms them, and queues
//! them for delivery or dead-letters them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{FutureExt, Stream, StreamExt};
use tokio::time::Instant;

use crate::ack::{Ack, Incoming};
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::fault::{FaultyTask, panic_message};
use crate::metrics::Shard;
use crate::places::Place;
use crate::queue::{Meta, Queued};
use crate::shared::Shared;
use crate::stream::RecordId;
use crate::transform::{Context, Transform};

/// The most records intake gathers before queueing them under one lock,
/// when its source has them ready at once.
const BATCH: usize = 32;

/// The acknowledgement of the record a transform is working on, where a
/// stop can reach it if the transform never returns.
#[derive(Debug, Default)]
pub(crate) struct InTransform(Mutex<Option<Ack>>);

impl InTransform {
    fn put(&self, ack: Ack) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(ack);
    }

    /// Takes the acknowledgement back; `None` if a stop took it first.
    pub(crate) fn take(&self) -> Option<Ack> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// What became of one pulled record.
enum Taken<'a, R> {
    Queued,
    /// To dead-letter; it keeps its place until the outlet has settled it,
    /// so that the queue's bound covers records waiting on the outlet.
    Rejected(DeadLetter<R>, Option<Ack>, Place<'a>),
    /// A stop gave up on the transform and resolved the record meanwhile.
    Abandoned,
}

/// Runs until the source ends, fails, or the processor stops.
///
/// A place in the queue is reserved *before* the next record is pulled, so
/// a full queue stops the pulling (backpressure). Records gathered for one
/// push are queued before any await, so a stop never finds a record held
/// here: every await point holds none, but for a dead letter being handed
/// to the outlet, which the outlet call settles itself.
pub(crate) async fn run<In, R: Send + Sync + 'static, S, T, St>(
    shared: Arc<Shared<R, S, T>>,
    index: usize,
    source: St,
    in_transform: Arc<InTransform>,
) where
    T: Transform<In, Output = R>,
    St: Stream<Item = Incoming<In>> + Send,
{
    let shard = shared.metrics.shard();
    let mut source = pin!(source);
    let mut batch: Vec<Queued<R>> = Vec::with_capacity(BATCH);
    let mut context = Context::new(0.0);
    let mut pulled: u64 = 0;
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
        let mut next = AssertUnwindSafe(source.next()).catch_unwind();
        let next = match (&mut next).now_or_never() {
            Some(next) => next,
            None => {
                shared.queue.push_all(&mut batch);
                tokio::select! {
                    biased;
                    () = shared.stop.raised() => return,
                    next = next => next,
                }
            }
        };
        let incoming = match next {
            Ok(Some(incoming)) => incoming,
            Ok(None) => break,
            Err(panic) => {
                shared.failed(FaultyTask::Source(index), panic_message(&*panic));
                break;
            }
        };
        pulled += 1;
        match take(
            &shared,
            &shard,
            &mut context,
            &in_transform,
            slot,
            incoming,
            pulled,
            &mut batch,
        ) {
            Taken::Queued | Taken::Abandoned => {}
            Taken::Rejected(letter, ack, place) => {
                shared.queue.push_all(&mut batch);
                shared.dead_letter(&shard, letter, ack).await;
                drop(place);
            }
        }
    }
    shared.queue.push_all(&mut batch);
}

/// Transforms one record: into `batch` with its place, or out as a dead
/// letter with its place.
#[allow(clippy::too_many_arguments)]
fn take<'q, In, R: Send + Sync + 'static, S, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    context: &mut Context,
    in_transform: &InTransform,
    slot: Place<'q>,
    incoming: Incoming<In>,
    pulled: u64,
    batch: &mut Vec<Queued<R>>,
) -> Taken<'q, R>
where
    T: Transform<In, Output = R>,
{
    let intake_at = Instant::now();
    context.set_now(shared.clock.at(intake_at), intake_at);
    let Incoming { payload, ack } = incoming;
    // Only a record with an acknowledgement leaves it where a stop can
    // resolve it; others pay nothing.
    let tracked = ack.is_some();
    if let Some(ack) = ack {
        in_transform.put(ack);
    }
    let transformed = catch_unwind(AssertUnwindSafe(|| {
        shared.transform.transform(payload, context)
    }));
    let ack = if tracked {
        match in_transform.take() {
            Some(ack) => Some(ack),
            None => return Taken::Abandoned,
        }
    } else {
        None
    };
    match transformed {
        Ok(Ok(done)) => {
            shard.ingested(done.id.stream);
            slot.keep();
            let meta = Meta {
                priority: done.priority,
                bytes: done.bytes,
                intake_at,
                ack,
                failures: 0,
                seen: None,
                first_failed_at: None,
            };
            batch.push(Queued::new(done.id, done.record, done.key, meta));
            Taken::Queued
        }
        Ok(Err(rejected)) => {
            shard.ingested(rejected.id.stream);
            let letter = DeadLetter {
                id: rejected.id,
                record: rejected.record,
                raw: rejected.raw,
                reason: DeadLetterReason::Invalid(rejected.reason),
            };
            Taken::Rejected(letter, ack, slot)
        }
        Err(panic) => {
            let message = panic_message(&*panic).to_owned();
            shared.failed(FaultyTask::Transform, message.clone());
            let id = RecordId {
                stream: shared.settings.unidentified,
                partition: 0,
                sequence: pulled,
            };
            shard.ingested(id.stream);
            let letter = DeadLetter {
                id,
                record: None,
                raw: None,
                reason: DeadLetterReason::TransformPanicked(message),
            };
            Taken::Rejected(letter, ack, slot)
        }
    }
}
