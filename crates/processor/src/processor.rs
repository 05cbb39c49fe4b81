//! The processor: builder, running handle and final report.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use serde::Serialize;
use sluice_models::StreamData;
use tokio::task::JoinHandle;

use crate::clock::EpochClock;
use crate::config::{ConfigError, ProcessorConfig, RateLimit};
use crate::dead_letter::{DeadLetter, DeadLetterQueue, DeadLetterSink};
use crate::limiter::RateLimiter;
use crate::metrics::MetricsSnapshot;
use crate::queue::DeliveryQueue;
use crate::shared::{HandBackReason, HandedBack, Shared};
use crate::sink::Sink;
use crate::transform::{StandardTransform, Transform};
use crate::{intake, worker};

/// A stream processor, configured and not yet started.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use async_trait::async_trait;
/// use sluice_models::{DataSource, JsonObject, Priority, ProcessedRecord, StreamData};
/// use sluice_processor::{ProcessorConfig, Sink, SinkError, StreamProcessor};
///
/// struct Accept;
/// #[async_trait]
/// impl Sink for Accept {
///     async fn send(&self, _: &ProcessedRecord) -> Result<(), SinkError> { Ok(()) }
/// }
///
/// let records = (1..=3).map(|sequence_id| StreamData {
///     source: DataSource::UserEvents,
///     partition: 0,
///     timestamp: 1.0,
///     priority: Priority::Low,
///     data: JsonObject::new(),
///     sequence_id,
/// });
/// let processor = StreamProcessor::new(Accept, ProcessorConfig::default()).unwrap();
/// let report = processor.start([futures::stream::iter(records)]).finish().await;
/// assert_eq!(report.metrics.delivered, 3);
/// assert!(report.is_conserved());
/// # }
/// ```
pub struct StreamProcessor<S> {
    sink: S,
    config: ProcessorConfig,
    transform: Box<dyn Transform>,
    dead_letters: Option<Box<dyn DeadLetterSink>>,
    clock: Option<EpochClock>,
}

impl<S: Sink> StreamProcessor<S> {
    /// A processor delivering to `sink`, with the standard transform.
    pub fn new(sink: S, config: ProcessorConfig) -> Result<StreamProcessor<S>, ConfigError> {
        config.validate()?;
        Ok(StreamProcessor {
            sink,
            config,
            transform: Box::new(StandardTransform),
            dead_letters: None,
            clock: None,
        })
    }

    /// Replaces the standard transform.
    pub fn with_transform(mut self, transform: impl Transform) -> Self {
        self.transform = Box::new(transform);
        self
    }

    /// Sends dead letters to `outlet`. Without one, they are kept in memory
    /// and returned in [`Report::dead_letters`].
    pub fn with_dead_letters(mut self, outlet: impl DeadLetterSink) -> Self {
        self.dead_letters = Some(Box::new(outlet));
        self
    }

    /// Stamps `processed_at` from `clock` (default: the system clock, read at
    /// start).
    pub fn with_clock(mut self, clock: EpochClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Starts consuming `sources`, each concurrently with the others.
    /// Must be called within a tokio runtime.
    pub fn start<St>(self, sources: impl IntoIterator<Item = St>) -> ProcessorHandle<S>
    where
        St: Stream<Item = StreamData> + Send + 'static,
    {
        let config = self.config;
        let limiter = match config.rate_limit {
            RateLimit::Unlimited => None,
            RateLimit::PerSecond(limit) => Some(RateLimiter::known(
                usize::try_from(NonZeroU32::get(limit)).unwrap_or(usize::MAX),
                config.rate_limit_margin,
            )),
            RateLimit::Adaptive => Some(RateLimiter::adaptive(config.rate_limit_margin)),
        };
        // Without an outlet, dead letters are kept here and returned in the report.
        let (dead_letters, default_dead_letters): (Box<dyn DeadLetterSink>, _) =
            match self.dead_letters {
                Some(outlet) => (outlet, None),
                None => {
                    let queue = DeadLetterQueue::default();
                    (Box::new(queue.clone()), Some(queue))
                }
            };
        let shared = Arc::new(Shared::new(
            self.sink,
            self.transform,
            dead_letters,
            DeliveryQueue::new(config.queue_capacity, config.batch_size, config.ordering),
            limiter,
            self.clock.unwrap_or_else(EpochClock::system),
            config.retry.clone(),
        ));

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
        let intakes = sources
            .into_iter()
            .map(|source| tokio::spawn(intake::run(Arc::clone(&shared), source)))
            .collect();
        ProcessorHandle {
            shared,
            intakes,
            workers,
            releaser,
            drain_deadline: config.drain_deadline,
            default_dead_letters,
            task_failures: 0,
        }
    }
}

/// A running processor.
pub struct ProcessorHandle<S> {
    shared: Arc<Shared<S>>,
    intakes: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    releaser: Option<JoinHandle<()>>,
    drain_deadline: Duration,
    default_dead_letters: Option<DeadLetterQueue>,
    task_failures: u64,
}

impl<S: Sink> ProcessorHandle<S> {
    /// What the processor has done so far. Cheap: sums per-task counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        let client_limit = self.shared.limiter.as_ref().and_then(|l| l.current_limit());
        self.shared
            .metrics
            .snapshot(self.shared.queue.len(), client_limit)
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

    /// Stops: pulls no more records, lets calls in flight finish until the
    /// drain deadline (then cancels them), and hands back every record not
    /// delivered or dead-lettered.
    pub async fn stop(mut self) -> Report {
        let backlog_at_stop = self.metrics().backlog;
        self.shared.stop.raise();
        self.shared.queue.close();
        self.task_failures += join_all(&mut self.intakes).await;
        match tokio::time::timeout(self.drain_deadline, join_all(&mut self.workers)).await {
            Ok(failures) => self.task_failures += failures,
            Err(_) => {
                tracing::warn!(deadline = ?self.drain_deadline, "drain deadline passed: cancelling calls in flight");
                self.shared.abort.raise();
                self.task_failures += join_all(&mut self.workers).await;
            }
        }
        let shard = self.shared.metrics.shard();
        let queued = self.shared.queue.drain();
        let count = queued.len();
        for item in queued {
            self.shared.hand_back(&shard, item, HandBackReason::Queued);
        }
        self.shared.queue.finished(count);
        self.report(backlog_at_stop).await
    }

    /// Runs until every source has ended and every record is delivered or
    /// dead-lettered. Waits forever on a source that never ends; use
    /// [`stop`](Self::stop) for those.
    pub async fn finish(mut self) -> Report {
        self.task_failures += join_all(&mut self.intakes).await;
        self.shared.queue.seal();
        self.task_failures += join_all(&mut self.workers).await;
        self.report(0).await
    }

    async fn report(mut self, backlog_at_stop: u64) -> Report {
        if let Some(releaser) = self.releaser.take() {
            releaser.abort();
        }
        self.shared.metrics.mark_stopped();
        let handed_back = self.shared.take_handed_back();
        let dead_letters = self
            .default_dead_letters
            .as_ref()
            .map(DeadLetterQueue::take)
            .unwrap_or_default();
        Report {
            metrics: self.metrics(),
            queue_high_water: self.shared.queue.high_water() as u64,
            backlog_at_stop,
            task_failures: self.task_failures,
            handed_back,
            dead_letters,
        }
    }
}

/// Awaits every task, removing each as it ends, so that a join cut short
/// (by the drain deadline) can be resumed. Returns how many panicked.
async fn join_all(tasks: &mut Vec<JoinHandle<()>>) -> u64 {
    let mut panicked = 0;
    while let Some(task) = tasks.last_mut() {
        let outcome = task.await;
        tasks.pop();
        if let Err(error) = outcome {
            // A task only fails by panicking (in a user transform, sink or
            // dead-letter outlet); the report counts it.
            tracing::error!(%error, "a processor task failed");
            panicked += 1;
        }
    }
    panicked
}

/// What a run did, returned at stop or finish.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The final metrics.
    pub metrics: MetricsSnapshot,
    /// The most records ever inside the pipeline at once; at most the
    /// queue capacity.
    pub queue_high_water: u64,
    /// Records inside the pipeline (not yet delivered or dead-lettered) when
    /// the stop began; 0 after a finish.
    pub backlog_at_stop: u64,
    /// Tasks that panicked (in a user transform, sink or dead-letter
    /// outlet). A panicked intake may take a record with it: the
    /// conservation check then fails.
    pub task_failures: u64,
    /// Records not delivered because of the stop, in (source, partition,
    /// sequence) order.
    #[serde(skip)]
    pub handed_back: Vec<HandedBack>,
    /// Dead letters, when no outlet was given (see
    /// [`StreamProcessor::with_dead_letters`]).
    #[serde(skip)]
    pub dead_letters: Vec<DeadLetter>,
}

impl Report {
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

impl<S> Drop for ProcessorHandle<S> {
    /// A handle dropped without [`stop`](ProcessorHandle::stop) or
    /// [`finish`](ProcessorHandle::finish) ends its tasks; records inside
    /// the pipeline are then abandoned, not handed back.
    fn drop(&mut self) {
        self.shared.stop.raise();
        self.shared.abort.raise();
        self.shared.queue.close();
        if let Some(releaser) = self.releaser.take() {
            releaser.abort();
        }
    }
}
