//! The processor: builder, running handle and final report.

use std::marker::PhantomData;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::ack::Incoming;
use crate::clock::EpochClock;
use crate::config::{ConfigError, CountedFrom, LimitUnit, ProcessorConfig, Quota, RateLimit};
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::fault::{FaultyTask, TaskFailure};
use crate::health::Halt;
use crate::intake::{self, InTransform};
use crate::limit::{RateLimiter, SharedLimit, later};
use crate::metrics::{LimitWindow, MetricsSnapshot};
use crate::progress::InputProgress;
use crate::queue::{DeliveryQueue, Fill};
use crate::shared::{HandBackReason, HandedBack, Outlet, Settings, Shared};
use crate::sink::Sink;
use crate::stream::StreamName;
use crate::transform::Transform;
use crate::watchdog::Watchdog;
use crate::worker;

/// The stream a record is counted under when the transform panicked before
/// naming it.
pub const UNIDENTIFIED_STREAM: &str = "unidentified";

/// How long a stop waits, after cancelling work at the drain deadline, for
/// tasks to notice; a task still running then is blocked in user code.
const ABORT_GRACE: Duration = Duration::from_millis(100);

/// A stream processor, configured and not yet started.
///
/// `T` is the transform (the pipeline's profile), `S` the sink, `R` the
/// record the transform makes and the sink takes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use async_trait::async_trait;
/// use sluice_processor::{
///     Context, Envelope, Incoming, ProcessorConfig, RecordId, Rejected, SendError, Sink,
///     StreamProcessor, Transformed,
/// };
///
/// struct Accept;
/// #[async_trait]
/// impl Sink<u64> for Accept {
///     async fn send(&self, _: &[Envelope<u64>]) -> Result<(), SendError> { Ok(()) }
/// }
///
/// let numbers = |n: u64, context: &mut Context| -> Result<Transformed<u64>, Rejected<u64>> {
///     let stream = context.stream("numbers").expect("a valid name");
///     Ok(Transformed::new(RecordId { stream, partition: 0, sequence: n }, n))
/// };
/// let records = futures::stream::iter((1..=3).map(Incoming::new));
/// let processor = StreamProcessor::new(numbers, Accept, ProcessorConfig::default()).unwrap();
/// let report = processor.start([records]).finish().await;
/// assert_eq!(report.metrics.delivered, 3);
/// assert!(report.is_conserved());
/// # }
/// ```
pub struct StreamProcessor<T, S, R> {
    transform: T,
    sink: S,
    config: ProcessorConfig,
    outlet: Option<Box<dyn DeadLetterSink<R>>>,
    clock: Option<EpochClock>,
    shared_limit: Option<Box<dyn SharedLimit>>,
    unidentified: StreamName,
    inputs: InputProgress,
    _record: PhantomData<fn() -> R>,
}

impl<T, S, R> StreamProcessor<T, S, R>
where
    S: Sink<R>,
    T: Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    /// A processor that transforms with `transform` and delivers to `sink`.
    ///
    /// # Errors
    /// A [`ConfigError`] when `config` does not validate.
    pub fn new(transform: T, sink: S, config: ProcessorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let unidentified = StreamName::new(UNIDENTIFIED_STREAM)
            .map_err(|error| ConfigError::new("streams", error.to_string()))?;
        Ok(StreamProcessor {
            transform,
            sink,
            config,
            outlet: None,
            clock: None,
            shared_limit: None,
            unidentified,
            inputs: InputProgress::default(),
            _record: PhantomData,
        })
    }

    /// Where the sources say how far they are through their inputs: hand
    /// it to them (a connector finds it in
    /// [`SourceContext::progress`](crate::SourceContext::progress)), and the
    /// processor's snapshots include what they say
    /// ([`MetricsSnapshot::inputs`]).
    pub fn input_progress(&self) -> InputProgress {
        self.inputs.clone()
    }

    /// Sends dead letters to `outlet`. Without one, they are kept in memory
    /// and returned in [`Report::dead_letters`].
    pub fn with_dead_letters(mut self, outlet: impl DeadLetterSink<R>) -> Self {
        self.outlet = Some(Box::new(outlet));
        self
    }

    /// Gives the transform its clock (default: the system clock, read at
    /// start).
    pub fn with_clock(mut self, clock: EpochClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Makes every call also reserve its units of `limit`, a window shared
    /// with other processes, after this process's own rate limit admits
    /// it (see [`SharedLimit`]).
    pub fn with_shared_limit(mut self, limit: impl SharedLimit) -> Self {
        self.shared_limit = Some(Box::new(limit));
        self
    }

    /// Starts consuming `sources`, each concurrently with the others.
    /// Must be called within a tokio runtime.
    pub fn start<In, St>(self, sources: impl IntoIterator<Item = St>) -> ProcessorHandle<R, S, T>
    where
        T: Transform<In, Output = R>,
        St: Stream<Item = Incoming<In>> + Send + 'static,
        In: Send + 'static,
    {
        let config = self.config;
        let limiter = match config.rate_limit {
            RateLimit::Unlimited => None,
            RateLimit::Fixed(quota) => Some(RateLimiter::known(
                usize::try_from(NonZeroU32::get(quota.limit)).unwrap_or(usize::MAX),
                quota.window,
                config.rate_limit_margin,
            )),
            RateLimit::Adaptive { window } => {
                Some(RateLimiter::adaptive(window, config.rate_limit_margin))
            }
        };
        let limiter = match config.counted_from {
            CountedFrom::Call => limiter,
            CountedFrom::Answer => limiter.map(RateLimiter::counting_from_answers),
            CountedFrom::CallThenAnswer => {
                // A real API's margin is wide enough for the first
                // window's phase to show as a dip: spread that window.
                limiter
                    .map(RateLimiter::counting_from_answers_after_a_refusal)
                    .map(RateLimiter::ramping_the_first_window)
            }
        };
        let limiter = match self.shared_limit {
            Some(_) => limiter.map(RateLimiter::sharing_the_quota),
            None => limiter,
        };
        let outlet = match self.outlet {
            Some(outlet) => Outlet::User(outlet),
            None => Outlet::Keep(Mutex::new(Vec::new())),
        };
        let settings = Settings {
            retry: config.retry.clone(),
            max_batch_records: config.batch.max_records,
            max_batch_bytes: config.batch.max_bytes,
            count_records: config.limit_unit == LimitUnit::Records,
            max_retry_after: config.max_retry_after,
            call_timeout: config.call_timeout,
            unidentified: self.unidentified,
            window_from_answer: config.counted_from == CountedFrom::Answer,
            circuit_after: config.circuit_after,
            queue_capacity: config.queue_capacity,
            limit_window: match config.rate_limit {
                RateLimit::Unlimited => None,
                RateLimit::Fixed(Quota { window, .. }) | RateLimit::Adaptive { window } => {
                    Some(LimitWindow {
                        unit: config.limit_unit,
                        window,
                    })
                }
            },
        };
        let fill = Fill {
            take_size: config.take_size.max(config.batch.max_records),
            call_records: config.batch.max_records,
            call_bytes: config.batch.max_bytes,
            linger: config.batch.linger,
        };
        let mut shared = Shared::new(
            self.sink,
            self.transform,
            outlet,
            DeliveryQueue::new(config.queue_capacity, fill, config.ordering),
            limiter,
            self.clock.unwrap_or_else(EpochClock::system),
            settings,
        );
        shared.shared_limit = self.shared_limit;
        shared.inputs = self.inputs;
        let shared = Arc::new(shared);

        let releaser = shared.limiter.is_some().then(|| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                if let Some(limiter) = &shared.limiter {
                    limiter.run_releaser().await;
                }
            })
        });
        let workers = (0..config.max_in_flight)
            .map(|i| {
                let seed = config.seed.wrapping_add(i as u64);
                tokio::spawn(worker::run(Arc::clone(&shared), seed))
            })
            .collect();
        let (intakes, in_transform) = sources
            .into_iter()
            .enumerate()
            .map(|(index, source)| {
                let in_transform = Arc::new(InTransform::default());
                let task = tokio::spawn(intake::run(
                    Arc::clone(&shared),
                    index,
                    source,
                    Arc::clone(&in_transform),
                ));
                (task, in_transform)
            })
            .unzip();
        ProcessorHandle {
            shared,
            intakes,
            in_transform,
            workers,
            releaser,
            drain_deadline: config.drain_deadline,
        }
    }
}

/// A running processor.
pub struct ProcessorHandle<R, S, T> {
    shared: Arc<Shared<R, S, T>>,
    intakes: Vec<JoinHandle<()>>,
    /// Per intake, the acknowledgement of a record in its transform.
    in_transform: Vec<Arc<InTransform>>,
    workers: Vec<JoinHandle<()>>,
    releaser: Option<JoinHandle<()>>,
    drain_deadline: Duration,
}

impl<R: Send + Sync + 'static, S, T> ProcessorHandle<R, S, T> {
    /// What the processor has done so far. Cheap: sums per-task counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        snapshot(&self.shared)
    }

    /// The most records ever inside the pipeline at once; at most the
    /// queue capacity.
    pub fn queue_high_water(&self) -> usize {
        self.shared.queue.high_water()
    }

    /// The downstream, e.g. to read a simulator's ledger.
    pub fn sink(&self) -> &S {
        &self.shared.sink
    }

    /// Stops: pulls no more records, lets work in flight (calls, dead
    /// letters) finish until the drain deadline, then cancels it, and hands
    /// back every record not delivered or dead-lettered.
    ///
    /// Returns within the drain deadline plus a fraction of a second,
    /// whatever user code does: a task blocked in user code past that is
    /// left behind, named in [`Report::failures`], and the acknowledgement
    /// of a record stuck in the transform is resolved as not processed.
    pub async fn stop(mut self) -> Report<R> {
        let backlog_at_stop = self.metrics().backlog;
        self.shared.stop.raise();
        self.shared.queue.close();
        let deadline = later(tokio::time::Instant::now(), self.drain_deadline);
        let watchdog = Watchdog::start(self.drain_deadline);
        let mut tasks = std::mem::take(&mut self.intakes);
        tasks.append(&mut self.workers);
        let mut task_failures = join_until(&mut tasks, deadline, Some(&watchdog)).await;
        if !tasks.is_empty() {
            tracing::warn!(deadline = ?self.drain_deadline, "drain deadline passed: cancelling work in flight");
            self.shared.abort.raise();
            let grace = later(tokio::time::Instant::now(), ABORT_GRACE);
            task_failures += join_until(&mut tasks, grace, Some(&watchdog)).await;
        }
        for task in tasks.drain(..) {
            task.abort();
            self.shared.failed(
                FaultyTask::Stuck,
                "still running after the drain deadline: blocked in user code",
            );
        }
        for in_transform in &self.in_transform {
            // A transform that never returned: its record was never counted;
            // its source hears "not processed".
            drop(in_transform.take());
        }
        self.hand_back_queued();
        self.report(backlog_at_stop, task_failures)
    }

    /// Hands back every record still queued (after a stop, or a halt).
    fn hand_back_queued(&self) {
        let shard = self.shared.metrics.shard();
        let queued = self.shared.queue.drain();
        let count = queued.len();
        for item in queued {
            self.shared
                .hand_back_queued(&shard, item, HandBackReason::Queued);
        }
        self.shared.queue.finished(count);
    }

    /// Why the processor halted on its own, once it has: the circuit
    /// opened (see [`ProcessorConfig::circuit_after`]). It then stops
    /// sending; [`finish`](Self::finish) returns once the calls in flight
    /// end, and its [`Report::halted`] says the same.
    pub fn halted(&self) -> Option<Halt> {
        self.shared.health.halted()
    }

    /// Runs until every source has ended and every record is delivered,
    /// dead-lettered or handed back (when the dead-letter outlet fails), or
    /// until the processor halts (see [`halted`](Self::halted)): then what
    /// is left is handed back. Waits forever on a source that never ends,
    /// and while the API is down or a limit admits nothing (records wait
    /// for it, they are not dead-lettered); use
    /// [`finish_unless`](Self::finish_unless) or [`stop`](Self::stop) to
    /// bound it. Every call and dead letter is bounded by the call
    /// timeout, so a sink or outlet that hangs or panics does not keep it
    /// from returning.
    pub async fn finish(mut self) -> Report<R> {
        let far = later(tokio::time::Instant::now(), Duration::MAX);
        let mut task_failures = join_until(&mut self.intakes, far, None).await;
        self.shared.queue.seal();
        task_failures += join_until(&mut self.workers, far, None).await;
        self.hand_back_queued();
        self.report(0, task_failures)
    }

    /// Runs as [`finish`](Self::finish) until `stop` completes (a signal);
    /// then stops as [`stop`](Self::stop) does. Returns the report and
    /// whether `stop` cut the run short.
    pub async fn finish_unless(mut self, stop: impl Future<Output = ()>) -> (Report<R>, bool) {
        let far = later(tokio::time::Instant::now(), Duration::MAX);
        tokio::pin!(stop);
        let mut task_failures = tokio::select! {
            biased;
            () = &mut stop => return (self.stop().await, true),
            failures = join_until(&mut self.intakes, far, None) => failures,
        };
        self.shared.queue.seal();
        task_failures += tokio::select! {
            biased;
            () = &mut stop => return (self.stop().await, true),
            failures = join_until(&mut self.workers, far, None) => failures,
        };
        self.hand_back_queued();
        (self.report(0, task_failures), false)
    }

    fn report(mut self, backlog_at_stop: u64, panicked_tasks: u64) -> Report<R> {
        if let Some(releaser) = self.releaser.take() {
            releaser.abort();
        }
        self.shared.metrics.mark_stopped();
        if panicked_tasks > 0 {
            self.shared.failed(
                FaultyTask::Processor,
                format!("{panicked_tasks} processor task(s) ended by a panic"),
            );
        }
        let metrics = self.metrics();
        let failures = self.shared.take_failures();
        Report {
            abandoned: metrics.backlog,
            metrics,
            queue_high_water: self.shared.queue.high_water() as u64,
            backlog_at_stop,
            failures: failures.kept,
            failure_count: failures.count,
            handed_back: self.shared.take_handed_back(),
            dead_letters: self.shared.take_kept_letters(),
            halted: self.shared.health.halted(),
        }
    }
}

impl<R, S, T> ProcessorHandle<R, S, T>
where
    R: Send + Sync + 'static,
    S: Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    /// A handle that cuts a stop short from elsewhere (a second Ctrl-C):
    /// see [`AbortHandle::abort`].
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle(Arc::clone(&self.shared) as Arc<dyn Abort>)
    }

    /// A reader of the metrics that outlives `&self`: for an exporter or a
    /// status line while the handle is busy finishing.
    pub fn metrics_reader(&self) -> MetricsReader {
        MetricsReader(Arc::clone(&self.shared) as Arc<dyn Abort>)
    }
}

/// Reads a processor's metrics from anywhere, as
/// [`ProcessorHandle::metrics`] does; frozen once the processor stopped.
#[derive(Clone)]
pub struct MetricsReader(Arc<dyn Abort>);

impl MetricsReader {
    /// What the processor has done so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.0.metrics()
    }
}

impl std::fmt::Debug for MetricsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsReader")
    }
}

/// Cuts a processor's stop short: work in flight is cancelled at once, as
/// if the drain deadline had passed. Records are still handed back, not
/// lost; the stop still returns its report.
#[derive(Clone)]
pub struct AbortHandle(Arc<dyn Abort>);

impl AbortHandle {
    /// Stops pulling and cancels calls and dead letters in flight now.
    pub fn abort(&self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AbortHandle")
    }
}

/// What the type-erased handles need of a running processor.
trait Abort: Send + Sync {
    fn abort(&self);
    fn metrics(&self) -> MetricsSnapshot;
}

impl<R, S, T> Abort for Shared<R, S, T>
where
    R: Send + Sync,
    S: Send + Sync,
    T: Send + Sync,
{
    fn abort(&self) {
        tracing::warn!("aborting: cancelling work in flight now");
        self.stop.raise();
        self.abort.raise();
        self.queue.close();
    }

    fn metrics(&self) -> MetricsSnapshot {
        snapshot(self)
    }
}

fn snapshot<R, S, T>(shared: &Shared<R, S, T>) -> MetricsSnapshot {
    let client_limit = shared.limiter.as_ref().and_then(|l| l.current_limit());
    let mut snapshot = shared.metrics.snapshot(shared.queue.len(), client_limit);
    snapshot.api_failing = shared.health.is_failing();
    snapshot.api_outages = shared.health.outages();
    snapshot.queue_capacity = shared.settings.queue_capacity as u64;
    snapshot.limit_window = shared.settings.limit_window;
    snapshot.inputs = shared.inputs.snapshot();
    snapshot
}

/// Awaits tasks until `deadline`, removing each as it ends, so that a
/// join cut short can be resumed. Returns how many ended by a panic.
async fn join_until(
    tasks: &mut Vec<JoinHandle<()>>,
    deadline: tokio::time::Instant,
    watchdog: Option<&Watchdog>,
) -> u64 {
    let mut panicked = 0;
    while let Some(task) = tasks.last_mut() {
        let outcome = tokio::select! {
            biased;
            outcome = task => outcome,
            () = tokio::time::sleep_until(deadline) => return panicked,
            () = Watchdog::passed(watchdog, deadline) => return panicked,
        };
        tasks.pop();
        if let Err(error) = outcome
            && error.is_panic()
        {
            tracing::error!(%error, "a processor task panicked");
            panicked += 1;
        }
    }
    panicked
}

/// What a run did, returned at stop or finish.
#[derive(Debug, Clone, Serialize)]
pub struct Report<R> {
    /// The final metrics.
    pub metrics: MetricsSnapshot,
    /// The most records ever inside the pipeline at once; at most the
    /// queue capacity.
    pub queue_high_water: u64,
    /// Records inside the pipeline (not yet delivered or dead-lettered) when
    /// the stop began; 0 after a finish.
    pub backlog_at_stop: u64,
    /// Records neither delivered, dead-lettered nor handed back: held by a
    /// task that user code blocked past the drain deadline. 0 unless
    /// [`failures`](Self::failures) names a stuck task.
    pub abandoned: u64,
    /// Faults of user code that the processor caught, in the order seen:
    /// the first [`MAX_FAILURES_KEPT`](crate::MAX_FAILURES_KEPT).
    pub failures: Vec<TaskFailure>,
    /// Every fault caught, listed or not.
    pub failure_count: u64,
    /// Records not processed, in (stream, partition, sequence) order.
    #[serde(skip)]
    pub handed_back: Vec<HandedBack<R>>,
    /// Dead letters, when no outlet was given (see
    /// [`StreamProcessor::with_dead_letters`]), in identity order.
    #[serde(skip)]
    pub dead_letters: Vec<DeadLetter<R>>,
    /// Why the processor halted on its own, when it did: the circuit
    /// opened because the API kept answering that the client is
    /// misconfigured (see [`ProcessorConfig::circuit_after`]). Records not
    /// delivered were handed back, none dead-lettered for it. `None` after
    /// a normal finish or stop. A runner should exit with a code of its
    /// own when it is `Some`, saying the cause.
    pub halted: Option<Halt>,
}

impl<R> Report<R> {
    /// Whether every record is accounted for:
    /// ingested = delivered + dead-lettered + handed back.
    pub fn is_conserved(&self) -> bool {
        let m = &self.metrics;
        m.ingested == m.delivered + m.dead_lettered + m.handed_back
            && m.handed_back == self.handed_back.len() as u64
    }

    /// The conservation identity with this run's numbers.
    pub fn conservation(&self) -> String {
        let m = &self.metrics;
        format!(
            "ingested {} = delivered {} + dead-lettered {} + handed back {}{}",
            m.ingested,
            m.delivered,
            m.dead_lettered,
            m.handed_back,
            if self.is_conserved() {
                ""
            } else {
                "  (VIOLATED)"
            }
        )
    }
}

impl<R, S, T> Drop for ProcessorHandle<R, S, T> {
    /// A handle dropped without [`stop`](ProcessorHandle::stop) or
    /// [`finish`](ProcessorHandle::finish) ends its tasks; records inside
    /// the pipeline are then abandoned (their acknowledgements resolve as
    /// not processed as they are dropped), not handed back.
    fn drop(&mut self) {
        self.shared.stop.raise();
        self.shared.abort.raise();
        self.shared.queue.close();
        if let Some(releaser) = self.releaser.take() {
            releaser.abort();
        }
    }
}
