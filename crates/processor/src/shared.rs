//! State shared by a running processor's tasks.

use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Release};
use std::sync::{Mutex, PoisonError};

use sluice_models::{ProcessedRecord, RecordKey};
use tokio_util::sync::CancellationToken;

use crate::clock::EpochClock;
use crate::dead_letter::DeadLetterSink;
use crate::limiter::RateLimiter;
use crate::metrics::{Metrics, Shard};
use crate::queue::{DeliveryQueue, Queued};
use crate::retry::RetryPolicy;
use crate::transform::Transform;

/// What the intake and delivery tasks of one run share.
pub(crate) struct Shared<S> {
    pub(crate) sink: S,
    pub(crate) transform: Box<dyn Transform>,
    pub(crate) dead_letters: Box<dyn DeadLetterSink>,
    pub(crate) queue: DeliveryQueue,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) metrics: Metrics,
    pub(crate) clock: EpochClock,
    pub(crate) retry: RetryPolicy,
    /// Stop pulling from sources and starting calls.
    pub(crate) stop: Signal,
    /// The drain deadline passed: cancel calls in flight.
    pub(crate) abort: Signal,
    handed_back: Mutex<Vec<HandedBack>>,
}

impl<S> Shared<S> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        sink: S,
        transform: Box<dyn Transform>,
        dead_letters: Box<dyn DeadLetterSink>,
        queue: DeliveryQueue,
        limiter: Option<RateLimiter>,
        clock: EpochClock,
        retry: RetryPolicy,
    ) -> Shared<S> {
        Shared {
            sink,
            transform,
            dead_letters,
            queue,
            limiter,
            metrics: Metrics::new(),
            clock,
            retry,
            stop: Signal::default(),
            abort: Signal::default(),
            handed_back: Mutex::new(Vec::new()),
        }
    }

    /// Keeps a record that a stop interrupted, to return in the report.
    pub(crate) fn hand_back(&self, shard: &Shard, item: Queued, reason: HandBackReason) {
        shard.handed_back(item.key.source);
        self.handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(HandedBack {
                key: item.key,
                record: item.record,
                reason,
            });
    }

    /// Every record handed back so far, in (source, partition, sequence) order.
    pub(crate) fn take_handed_back(&self) -> Vec<HandedBack> {
        let mut records = std::mem::take(
            &mut *self
                .handed_back
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        records.sort_by_key(|r| r.key);
        records
    }
}

/// A one-way flag: checked on the hot path without a lock (a
/// `CancellationToken` takes one), and awaited where a task waits.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    raised: AtomicBool,
    token: CancellationToken,
}

impl Signal {
    pub(crate) fn raise(&self) {
        self.raised.store(true, Release);
        self.token.cancel();
    }

    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Acquire)
    }

    /// Completes once the signal is raised.
    pub(crate) async fn raised(&self) {
        self.token.cancelled().await;
    }
}

/// A record not delivered because the processor stopped: returned to the
/// caller, to be resubmitted later.
#[derive(Debug, Clone, PartialEq)]
pub struct HandedBack {
    /// The record's identity.
    pub key: RecordKey,
    /// The record, validated and ready to send.
    pub record: ProcessedRecord,
    /// Where in the pipeline the stop found it.
    pub reason: HandBackReason,
}

/// Where in the pipeline a stop found a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandBackReason {
    /// Waiting in the queue, never sent.
    Queued,
    /// Between attempts: sent before, failed, not yet retried.
    AwaitingRetry,
    /// Its call was cancelled at the drain deadline. The downstream may or
    /// may not have processed it: resubmitting may duplicate it.
    CallCancelled,
}
