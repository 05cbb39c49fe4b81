//! Delivery: takes records from the queue and sends them downstream in
//! batches, within the rate limit, retrying what failed, in order.
//!
//! A worker ([`run`]) takes a batch of the queue and cuts it into calls,
//! each delivered by [`deliver`] in rounds of four steps until every
//! record is settled: admission to the limits ([`limit::admit()`]), the call
//! itself (`call.rs`; just before it, records whose lease lapsed are
//! handed back, `settle.rs`'s `fence_out`), settlement of the limits and of each record
//! (`settle.rs`), and the wait before the records left are retried
//! (`backoff.rs`).

mod backoff;
mod call;
mod settle;

use std::collections::VecDeque;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use self::backoff::{Backoff, wait_before_retry};
use self::call::call;
use self::settle::{
    fence_out, hand_back_all, not_admitted, settle_health, settle_limits, settle_records,
    up_despite_failure,
};
use crate::limit;
use crate::metrics::Shard;
use crate::queue::{Batch, Meta, Queued};
use crate::shared::{HandBackReason, Shared};
use crate::sink::{Envelope, Sink};

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
        while !batch.items.is_empty() {
            // Yield now and then: with a sink that answers at once, nothing
            // else here would let the runtime's other tasks run.
            tokio::task::coop::consume_budget().await;
            next_chunk(&shared, &mut batch.items, &mut chunk);
            let records = chunk.envelopes.len();
            let flow = deliver(
                &shared, &shard, &mut chunk, &mut spare, &mut rng, &mut batch,
            )
            .await;
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
///
/// Each round is admitted by the limits, sent, and settled; the records
/// left to retry wait their backoff and go round again, for as long as it
/// takes: only failures of the records themselves (rejections, transient
/// failures while the API is up) dead-letter them, never waiting on the
/// limits or an outage of the API.
async fn deliver<R: Send + Sync + 'static, S: Sink<R>, T>(
    shared: &Shared<R, S, T>,
    shard: &Shard,
    chunk: &mut Chunk<R>,
    spare: &mut Chunk<R>,
    rng: &mut ChaCha8Rng,
    held: &mut Batch<R>,
) -> Flow {
    let mut backoff = Backoff::new(&shared.settings.retry);
    let mut attempted = false;
    while !chunk.is_empty() {
        // Records whose lease ended go back before they wait for the
        // limits (a partition being handed over drains at once), and again
        // after (the lease may lapse while they wait).
        fence_out(shared, shard, chunk, spare);
        if chunk.is_empty() {
            break;
        }
        let admission = match limit::admit(shared, chunk.envelopes.len()).await {
            Ok(admission) => admission,
            Err(stopped) => return not_admitted(shared, shard, chunk, stopped, attempted),
        };
        fence_out(shared, shard, chunk, spare);
        if chunk.is_empty() {
            // Nothing left to send: the units come back at once.
            admission.settle(shared, 0, None).await;
            break;
        }
        attempted = true;
        let before = shared.health.successes();
        for meta in &mut chunk.metas {
            meta.seen.get_or_insert(before);
        }
        let Some(outcomes) = call(shared, shard, &chunk.envelopes).await else {
            drop(admission);
            hand_back_all(shared, shard, chunk, HandBackReason::CallCancelled);
            return Flow::Stopped;
        };
        let records = chunk.envelopes.len();
        let refusal = settle_limits(shared, shard, admission, &outcomes, records).await;
        let up = up_despite_failure(shared, &outcomes, before).await;
        let down = settle_health(shared, &outcomes, records, before, up);
        let successes = shared.health.successes();
        settle_records(shared, shard, &outcomes, chunk, spare, successes, up).await;
        std::mem::swap(chunk, spare);
        if chunk.is_empty() {
            break;
        }
        shared.queue.release_settled(held, &chunk.envelopes);
        let wait = backoff.before_retry(refusal, down, &chunk.metas, rng);
        if let Flow::Stopped = wait_before_retry(shared, wait, chunk.envelopes.len()).await {
            hand_back_all(shared, shard, chunk, HandBackReason::AwaitingRetry);
            return Flow::Stopped;
        }
    }
    Flow::Continue
}
