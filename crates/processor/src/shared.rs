//! State shared by a running processor's tasks, and the one place where a
//! record's fate is settled: counted, told to its source, kept if needed.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering::AcqRel, Ordering::Acquire, Ordering::Release};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::ack::{Ack, Resolution};
use crate::clock::EpochClock;
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::fault::{FaultyTask, TaskFailure, panic_message};
use crate::health::{Halt, Health};
use crate::key::RecordKey;
use crate::limit::{RateLimiter, SharedLimit};
use crate::metrics::{Metrics, Shard};
use crate::queue::{DeliveryQueue, Meta, Queued};
use crate::retry::RetryPolicy;
use crate::sink::Envelope;
use crate::stream::{RecordId, StreamName};

/// Where dead letters go: the user's outlet, or kept for the report.
pub(crate) enum Outlet<R> {
    User(Box<dyn DeadLetterSink<R>>),
    Keep(Mutex<Vec<DeadLetter<R>>>),
}

/// Settings the tasks read on every record.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) retry: RetryPolicy,
    pub(crate) max_batch_records: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) count_records: bool,
    pub(crate) max_retry_after: Duration,
    /// Bounds every call of user code that may hang: a sink call, a dead letter.
    pub(crate) call_timeout: Duration,
    /// The stream of records the transform panicked on before naming them.
    pub(crate) unidentified: StreamName,
    /// Without a local limiter: whether a shared limit counts successes
    /// from their answers.
    pub(crate) window_from_answer: bool,
    /// Calls in a row answered `Misconfigured` that open the circuit; 0
    /// never opens it.
    pub(crate) circuit_after: u32,
    /// The queue's capacity, for the metrics.
    pub(crate) queue_capacity: usize,
    /// What the rate limit counts and its window, for the metrics.
    pub(crate) limit_window: Option<crate::metrics::LimitWindow>,
}

/// What the intake and delivery tasks of one run share.
pub(crate) struct Shared<R, S, T> {
    pub(crate) sink: S,
    pub(crate) transform: T,
    pub(crate) outlet: Outlet<R>,
    pub(crate) queue: DeliveryQueue<R>,
    pub(crate) limiter: Option<RateLimiter>,
    /// A window shared with other processes, asked after `limiter`.
    pub(crate) shared_limit: Option<Box<dyn SharedLimit>>,
    /// Whether the shared limit was unreachable when last asked.
    shared_limit_down: AtomicBool,
    pub(crate) metrics: Metrics,
    /// How far the sources are through their inputs.
    pub(crate) inputs: crate::progress::InputProgress,
    /// What the calls tell of the API.
    pub(crate) health: Health,
    pub(crate) clock: EpochClock,
    pub(crate) settings: Settings,
    /// Stop pulling from sources and starting calls.
    pub(crate) stop: Signal,
    /// The drain deadline passed: cancel work in flight.
    pub(crate) abort: Signal,
    handed_back: Mutex<Vec<HandedBack<R>>>,
    failures: Mutex<Failures>,
}

/// The faults kept for the report: the first [`MAX_FAILURES_KEPT`], and a
/// count of all, so that user code failing on every call for hours costs
/// neither memory nor a flood of logs.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    pub(crate) kept: Vec<TaskFailure>,
    pub(crate) count: u64,
}

/// How many faults a report lists (and logs); the rest are only counted.
pub const MAX_FAILURES_KEPT: usize = 100;

impl<R: Send + Sync + 'static, S, T> Shared<R, S, T> {
    pub(crate) fn new(
        sink: S,
        transform: T,
        outlet: Outlet<R>,
        queue: DeliveryQueue<R>,
        limiter: Option<RateLimiter>,
        clock: EpochClock,
        settings: Settings,
    ) -> Self {
        Shared {
            sink,
            transform,
            outlet,
            queue,
            limiter,
            shared_limit: None,
            shared_limit_down: AtomicBool::new(false),
            metrics: Metrics::new(),
            inputs: crate::progress::InputProgress::default(),
            health: Health::default(),
            clock,
            settings,
            stop: Signal::default(),
            abort: Signal::default(),
            handed_back: Mutex::new(Vec::new()),
            failures: Mutex::default(),
        }
    }

    /// Notes that the shared limit could not be asked: said once per
    /// outage, not once per worker and retry.
    pub(crate) fn shared_limit_unreachable(&self, why: &str) {
        if !self.shared_limit_down.swap(true, AcqRel) {
            tracing::warn!(%why, "the shared limit is unreachable: sending nothing until it is back");
        }
    }

    /// Notes that the shared limit answered, ending an outage if one was on.
    pub(crate) fn shared_limit_reached(&self) {
        if self.shared_limit_down.load(Acquire) && self.shared_limit_down.swap(false, AcqRel) {
            tracing::warn!("the shared limit is back: sending again");
        }
    }

    /// Opens the circuit: keeps `halt` for the report and stops as a stop
    /// does (no more pulls nor admissions; calls in flight finish; the
    /// rest is handed back), once.
    pub(crate) fn halt(&self, halt: Halt) {
        let said = halt.to_string();
        if self.health.halt(halt) {
            tracing::error!(
                "{said}: the circuit is open, sending stops; records are handed back, none dead-lettered"
            );
            self.stop.raise();
            self.queue.close();
        }
    }

    /// Notes a fault of user code for the report.
    pub(crate) fn failed(&self, task: FaultyTask, message: impl Into<String>) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.count += 1;
        if failures.kept.len() < MAX_FAILURES_KEPT {
            let failure = TaskFailure {
                task,
                message: message.into(),
            };
            tracing::error!(%failure, "user code failed");
            failures.kept.push(failure);
        } else if failures.count == MAX_FAILURES_KEPT as u64 + 1 {
            tracing::error!("more faults of user code: counted, no longer listed or logged");
        }
    }

    /// Tells a source what became of its record.
    pub(crate) fn resolve(&self, ack: Option<Ack>, resolution: Resolution<'_>) {
        if let Some(ack) = ack
            && let Err(message) = ack.resolve(resolution)
        {
            self.failed(FaultyTask::Acknowledgement, message);
        }
    }

    /// A record the downstream accepted.
    pub(crate) fn delivered(&self, shard: &Shard, id: RecordId, meta: Meta) {
        shard.delivered(id.stream, meta.priority);
        self.metrics.record_latency(shard, meta.intake_at.elapsed());
        self.resolve(meta.ack, Resolution::Delivered);
    }

    /// Keeps a record that will not be processed now, to return in the
    /// report, and tells its source.
    pub(crate) fn hand_back(
        &self,
        shard: &Shard,
        id: RecordId,
        record: Option<R>,
        ack: Option<Ack>,
        reason: HandBackReason,
    ) {
        shard.handed_back(id.stream);
        self.handed_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(HandedBack { id, record, reason });
        self.resolve(ack, Resolution::NotProcessed);
    }

    /// Hands back a queued record.
    pub(crate) fn hand_back_queued(&self, shard: &Shard, item: Queued<R>, reason: HandBackReason) {
        let Queued { envelope, meta } = item;
        self.hand_back(shard, envelope.id, Some(envelope.record), meta.ack, reason);
    }

    /// Gives `letter` to the outlet, within the call timeout and the drain
    /// deadline. Kept: counted as dead-lettered and told so to its source.
    /// Not kept (an error, a panic, a hang): handed back, so that it is
    /// offered again rather than lost.
    pub(crate) async fn dead_letter(&self, shard: &Shard, letter: DeadLetter<R>, ack: Option<Ack>) {
        tracing::debug!(id = %letter.id, reason = %letter.reason, "dead-lettering");
        let kept = match &self.outlet {
            Outlet::Keep(letters) => {
                shard.dead_lettered(letter.id.stream, letter.reason.kind());
                self.resolve(ack, Resolution::DeadLettered(&letter.reason));
                letters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(letter);
                return;
            }
            Outlet::User(outlet) => self.keep(&**outlet, &letter).await,
        };
        match kept {
            Ok(()) => {
                shard.dead_lettered(letter.id.stream, letter.reason.kind());
                self.resolve(ack, Resolution::DeadLettered(&letter.reason));
            }
            Err(reason) => {
                tracing::warn!(id = %letter.id, %reason, "dead letter not kept: handing the record back");
                self.hand_back(
                    shard,
                    letter.id,
                    letter.record,
                    ack,
                    HandBackReason::DeadLetterFailed,
                );
            }
        }
    }

    async fn keep(
        &self,
        outlet: &dyn DeadLetterSink<R>,
        letter: &DeadLetter<R>,
    ) -> Result<(), String> {
        let made = std::panic::catch_unwind(AssertUnwindSafe(|| outlet.dead_letter(letter)));
        let future = match made {
            Ok(future) => future,
            Err(panic) => {
                let message = panic_message(&*panic).to_owned();
                self.failed(FaultyTask::DeadLetterOutlet, message.clone());
                return Err(format!("the outlet panicked: {message}"));
            }
        };
        let outcome = tokio::select! {
            biased;
            () = self.abort.raised() => return Err("cut off at the drain deadline".to_owned()),
            () = tokio::time::sleep(self.settings.call_timeout) => {
                self.failed(FaultyTask::DeadLetterOutlet, format!("no answer within {:?}", self.settings.call_timeout));
                return Err("the outlet did not answer in time".to_owned());
            }
            outcome = AssertUnwindSafe(future).catch_unwind() => outcome,
        };
        match outcome {
            Ok(kept) => kept,
            Err(panic) => {
                let message = panic_message(&*panic).to_owned();
                self.failed(FaultyTask::DeadLetterOutlet, message.clone());
                Err(format!("the outlet panicked: {message}"))
            }
        }
    }

    /// Every record handed back so far, in (stream, partition, sequence) order.
    pub(crate) fn take_handed_back(&self) -> Vec<HandedBack<R>> {
        let mut records = std::mem::take(
            &mut *self
                .handed_back
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        records.sort_by_key(|r| r.id);
        records
    }

    pub(crate) fn take_failures(&self) -> Failures {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn take_kept_letters(&self) -> Vec<DeadLetter<R>> {
        match &self.outlet {
            Outlet::Keep(letters) => {
                let mut letters =
                    std::mem::take(&mut *letters.lock().unwrap_or_else(PoisonError::into_inner));
                letters.sort_by_key(|letter| letter.id);
                letters
            }
            Outlet::User(_) => Vec::new(),
        }
    }
}

impl<R> Queued<R> {
    pub(crate) fn new(id: RecordId, record: R, key: Option<RecordKey>, meta: Meta) -> Queued<R> {
        Queued {
            envelope: Envelope {
                id,
                record,
                key,
                fence: None,
            },
            meta,
        }
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

/// A record not processed, returned to the caller to be offered again.
/// Its acknowledgement was resolved as not processed.
#[derive(Debug, Clone, PartialEq)]
pub struct HandedBack<R> {
    /// The record's identity.
    pub id: RecordId,
    /// The record, transformed and ready to send.
    pub record: Option<R>,
    /// Where in the pipeline it was.
    pub reason: HandBackReason,
}

/// Why a record was handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandBackReason {
    /// The stop found it waiting in the queue, never sent.
    Queued,
    /// The stop found it between attempts: sent before, failed, not yet
    /// retried.
    AwaitingRetry,
    /// Its call was cancelled at the drain deadline. The downstream may or
    /// may not have processed it: resubmitting may duplicate it.
    CallCancelled,
    /// It was to be dead-lettered, but the outlet failed, hung or was cut
    /// off at the drain deadline.
    DeadLetterFailed,
    /// The lease it was read under ended before its call (see
    /// [`Fence`](crate::Fence)): lapsed, lost, or given up for another
    /// process to take. It was not sent; its source hands it to the
    /// partition's next holder.
    LeaseEnded,
}
