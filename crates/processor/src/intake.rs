//! Intake: pulls records from one source, transforms and validates them,
//! and queues them for delivery.

use std::pin::pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use sluice_models::{ModelError, StreamData};
use tokio::time::Instant;
use validator::Validate;

use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::queue::Queued;
use crate::shared::Shared;

/// Runs until the source ends or the processor stops.
///
/// A place in the queue is reserved *before* the next record is pulled, so
/// a full queue stops the pulling (backpressure), and a stop never finds a
/// record half-way: every await point holds no record.
pub(crate) async fn run<S, St>(shared: Arc<Shared<S>>, source: St)
where
    St: Stream<Item = StreamData> + Send,
{
    let shard = shared.metrics.shard();
    let mut source = pin!(source);
    loop {
        let slot = tokio::select! {
            biased;
            () = shared.stop.cancelled() => return,
            slot = shared.queue.reserve() => slot,
        };
        let next = tokio::select! {
            biased;
            () = shared.stop.cancelled() => return,
            next = source.next() => next,
        };
        let Some(data) = next else { return };
        shard.ingested(data.source);

        let intake_at = Instant::now();
        let key = data.key();
        let priority = data.priority;
        let mut record = shared.transform.transform(data, shared.clock.now());
        record.processing_time_ms = intake_at.elapsed().as_secs_f64() * 1000.0;

        match record.validate() {
            Ok(()) => shared.queue.push(
                slot,
                Queued {
                    record,
                    key,
                    priority,
                    intake_at,
                },
            ),
            Err(errors) => {
                drop(slot);
                let reason = DeadLetterReason::Invalid(ModelError::from(errors));
                tracing::debug!(%key, %reason, "dead-lettered at intake");
                shard.dead_lettered(key.source);
                shared
                    .dead_letters
                    .dead_letter(DeadLetter {
                        key,
                        record,
                        reason,
                    })
                    .await;
            }
        }
    }
}
