//! The simulated multi-source stream: pull-based, paced on tokio's clock.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{Stream, StreamExt};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use sluice_models::{DataSource, PartitionKey, RecordKey, StreamData};
use sluice_processor::{EpochClock, Incoming};
use tokio::time::{Instant, Sleep};

use crate::generator;
use crate::{SimError, derive_seed};

/// How late a tick may be taken and still be kept on the grid.
const TIMER_SLACK: Duration = Duration::from_millis(5);

/// How the simulated sources behave.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// The sources, each a separate stream.
    pub sources: Vec<DataSource>,
    /// The original's `rate_per_source`: every source ticks
    /// `rate_per_source * sources.len()` times a second.
    pub rate_per_source: f64,
    /// The probability that a source emits a record at a tick (0.8 in the
    /// original).
    pub emit_probability: f64,
    /// The probability that a payload is one of the five problematic kinds.
    pub bad_data_rate: f64,
    /// Partitions per source; records are dealt to them in turn.
    pub partitions: u32,
    /// Occasional bursts of records at once, beyond the original.
    pub burst: Option<Burst>,
    /// Seed of the sources' RNGs.
    pub seed: u64,
}

/// A burst: at a tick, with `probability`, `size` records back to back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    /// Chance of a burst at each tick (0 to 1).
    pub probability: f64,
    /// Records in a burst; at least 1.
    pub size: u32,
}

impl Default for StreamConfig {
    /// The original 10-second check: three sources, rate 3, 15 % bad data,
    /// one partition each.
    fn default() -> Self {
        StreamConfig {
            sources: vec![
                DataSource::UserEvents,
                DataSource::TransactionData,
                DataSource::SystemMetrics,
            ],
            rate_per_source: 3.0,
            emit_probability: 0.8,
            bad_data_rate: 0.15,
            partitions: 1,
            burst: None,
            seed: 0,
        }
    }
}

/// The lowest `rate_per_source` a simulation takes.
pub const MIN_RATE_PER_SOURCE: f64 = 0.001;
/// The highest `rate_per_source` a simulation takes.
pub const MAX_RATE_PER_SOURCE: f64 = 1_000_000.0;

impl StreamConfig {
    /// Checks that every value is usable.
    pub fn validate(&self) -> Result<(), SimError> {
        let probability = |field, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(SimError::new(
                    field,
                    format!("must be between 0 and 1, got {value}"),
                ))
            }
        };
        if self.sources.is_empty() {
            return Err(SimError::new(
                "stream.sources",
                "must name at least one source",
            ));
        }
        for (i, source) in self.sources.iter().enumerate() {
            if self.sources[..i].contains(source) {
                return Err(SimError::new(
                    "stream.sources",
                    format!("{source} is listed twice"),
                ));
            }
        }
        if !(MIN_RATE_PER_SOURCE..=MAX_RATE_PER_SOURCE).contains(&self.rate_per_source) {
            return Err(SimError::new(
                "stream.rate_per_source",
                format!(
                    "must be {MIN_RATE_PER_SOURCE} to {MAX_RATE_PER_SOURCE}, got {}",
                    self.rate_per_source
                ),
            ));
        }
        if self.partitions == 0 {
            return Err(SimError::new("stream.partitions", "must be at least 1"));
        }
        probability("stream.emit_probability", self.emit_probability)?;
        probability("stream.bad_data_rate", self.bad_data_rate)?;
        if let Some(burst) = self.burst {
            probability("stream.burst.probability", burst.probability)?;
            if burst.size == 0 {
                return Err(SimError::new("stream.burst.size", "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The time between two ticks of one source (a day at most, for values
    /// validation refuses).
    pub fn tick_period(&self) -> Duration {
        let seconds = 1.0 / (self.rate_per_source * self.sources.len() as f64);
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(86_400))
    }

    /// Records offered per second, all sources together, when the consumer
    /// keeps up.
    pub fn offered_rate(&self) -> f64 {
        let burst = self
            .burst
            .map_or(0.0, |b| b.probability * f64::from(b.size));
        let per_tick =
            burst + (1.0 - self.burst.map_or(0.0, |b| b.probability)) * self.emit_probability;
        per_tick * self.rate_per_source * (self.sources.len() as f64).powi(2)
    }
}

/// Makes the streams of a simulation and counts what they offered.
#[derive(Debug)]
pub struct StreamSimulator {
    config: StreamConfig,
    clock: EpochClock,
    offered: Offered,
}

impl StreamSimulator {
    /// A simulator whose records are stamped by `clock`.
    pub fn new(config: StreamConfig, clock: EpochClock) -> Result<StreamSimulator, SimError> {
        config.validate()?;
        let offered = Offered {
            sources: config
                .sources
                .iter()
                .map(|&source| {
                    let counts = (0..config.partitions).map(|_| AtomicU64::new(0)).collect();
                    (source, Arc::new(counts))
                })
                .collect(),
        };
        Ok(StreamSimulator {
            config,
            clock,
            offered,
        })
    }

    /// One paced stream per source, in the configured order. Call once:
    /// a second call would restart the sequence ids.
    pub fn streams(&self) -> Vec<SourceStream> {
        self.offered
            .sources
            .iter()
            .map(|(source, counts)| SourceStream {
                generator: RecordGenerator::new(
                    &self.config,
                    *source,
                    self.clock,
                    Arc::clone(counts),
                ),
                period: self.config.tick_period(),
                emit_probability: self.config.emit_probability,
                burst: self.config.burst,
                pending_burst: 0,
                next_tick: Instant::now(),
                sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            })
            .collect()
    }

    /// [`streams`](Self::streams) as the processor takes them: each record
    /// without acknowledgement. Call once, as `streams`.
    pub fn sources(&self) -> Vec<IncomingSource> {
        let wrap: fn(StreamData) -> Incoming<StreamData> = Incoming::new;
        self.streams().into_iter().map(|s| s.map(wrap)).collect()
    }

    /// `per_source` records from each source at once, unpaced: for
    /// benchmarks that generate their input before the clock starts.
    pub fn generate(&self, per_source: usize) -> Vec<Vec<StreamData>> {
        self.offered
            .sources
            .iter()
            .map(|(source, counts)| {
                let mut generator =
                    RecordGenerator::new(&self.config, *source, self.clock, Arc::clone(counts));
                (0..per_source).map(|_| generator.next_record()).collect()
            })
            .collect()
    }

    /// Every source's records, unpaced, one of each source in turn, without
    /// end: for writing a data set (`sluice generate`). Shares sequence
    /// counts with the other ways of drawing records from this simulator.
    pub fn records(&self) -> impl Iterator<Item = StreamData> + use<> {
        let mut generators: Vec<RecordGenerator> = self
            .offered
            .sources
            .iter()
            .map(|(source, counts)| {
                RecordGenerator::new(&self.config, *source, self.clock, Arc::clone(counts))
            })
            .collect();
        let mut turn = 0;
        std::iter::from_fn(move || {
            let count = generators.len();
            let generator = generators.get_mut(turn % count.max(1))?;
            turn = turn.wrapping_add(1);
            Some(generator.next_record())
        })
    }

    /// What the streams have offered so far.
    pub fn offered(&self) -> &Offered {
        &self.offered
    }
}

/// A simulated source as the processor takes it.
pub type IncomingSource =
    futures::stream::Map<SourceStream, fn(StreamData) -> Incoming<StreamData>>;

/// Counts of records offered, per (source, partition). Sequence ids are
/// dense from 1, so a partition that offered `n` records offered ids 1..=n.
#[derive(Debug, Clone)]
pub struct Offered {
    sources: Vec<(DataSource, Arc<Vec<AtomicU64>>)>,
}

impl Offered {
    /// Records offered, all partitions together.
    pub fn total(&self) -> u64 {
        self.per_partition().values().sum()
    }

    /// Records offered per (source, partition).
    pub fn per_partition(&self) -> BTreeMap<PartitionKey, u64> {
        self.sources
            .iter()
            .flat_map(|(source, counts)| {
                counts.iter().enumerate().map(move |(partition, count)| {
                    let key = PartitionKey {
                        source: *source,
                        partition: partition as u32,
                    };
                    (key, count.load(Relaxed))
                })
            })
            .collect()
    }

    /// Every key offered.
    pub fn keys(&self) -> impl Iterator<Item = RecordKey> + '_ {
        self.per_partition()
            .into_iter()
            .flat_map(|(partition, count)| {
                (1..=count).map(move |sequence_id| RecordKey {
                    source: partition.source,
                    partition: partition.partition,
                    sequence_id,
                })
            })
    }
}

/// Makes one source's records, without pacing.
#[derive(Debug)]
struct RecordGenerator {
    source: DataSource,
    rng: ChaCha8Rng,
    bad_data_rate: f64,
    clock: EpochClock,
    next_partition: u32,
    /// Records offered per partition: also the last sequence id.
    offered: Arc<Vec<AtomicU64>>,
}

impl RecordGenerator {
    fn new(
        config: &StreamConfig,
        source: DataSource,
        clock: EpochClock,
        offered: Arc<Vec<AtomicU64>>,
    ) -> Self {
        RecordGenerator {
            source,
            rng: ChaCha8Rng::seed_from_u64(derive_seed(config.seed, source.as_str())),
            bad_data_rate: config.bad_data_rate,
            clock,
            next_partition: 0,
            offered,
        }
    }

    fn next_record(&mut self) -> StreamData {
        let partition = self.next_partition;
        self.next_partition = (partition + 1) % self.offered.len() as u32;
        let sequence_id = self.offered[partition as usize].fetch_add(1, Relaxed) + 1;
        StreamData {
            source: self.source,
            partition,
            timestamp: self.clock.now(),
            priority: generator::priority(&mut self.rng),
            data: generator::payload(self.source, self.bad_data_rate, &mut self.rng),
            sequence_id,
        }
    }
}

/// One source's records, made when polled and paced on tokio's clock.
///
/// At each tick the source emits a record with `emit_probability`. Ticks
/// come one period apart while the consumer keeps up (ticks delayed by the
/// timer's millisecond resolution are caught up); a consumer that pulls
/// more than 5 ms and a period late gets the next tick one period after its
/// pull, as with the original's sleep-after-loop, so it slows the source
/// down (backpressure reaches it) instead of meeting a burst of catch-up
/// records.
pub struct SourceStream {
    generator: RecordGenerator,
    period: Duration,
    emit_probability: f64,
    burst: Option<Burst>,
    pending_burst: u32,
    next_tick: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl std::fmt::Debug for SourceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceStream")
            .field("source", &self.generator.source)
            .field("period", &self.period)
            .field("next_tick", &self.next_tick)
            .finish_non_exhaustive()
    }
}

impl Stream for SourceStream {
    type Item = StreamData;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamData>> {
        let this = self.get_mut();
        loop {
            if this.pending_burst > 0 {
                this.pending_burst -= 1;
                return Poll::Ready(Some(this.generator.next_record()));
            }
            if Instant::now() < this.next_tick {
                if this.sleep.deadline() != this.next_tick {
                    this.sleep.as_mut().reset(this.next_tick);
                }
                ready!(this.sleep.as_mut().poll(cx));
            }
            // Keep to the tick grid while on time: timer wake-ups come up to
            // a millisecond late (tokio's timer resolution), which must not
            // slow a source ticking faster than that, so ticks missed by
            // less than TIMER_SLACK are caught up. A consumer that pulls
            // later than that starts a new grid from now: no burst of
            // catch-up records, the source slows down with it.
            let now = Instant::now();
            let late_by = now.saturating_duration_since(this.next_tick);
            this.next_tick = if late_by < TIMER_SLACK.max(this.period) {
                this.next_tick + this.period
            } else {
                now + this.period
            };
            let rng = &mut this.generator.rng;
            if let Some(burst) = this.burst
                && rng.random_bool(burst.probability)
            {
                this.pending_burst = burst.size;
                continue;
            }
            if rng.random_bool(this.emit_probability) {
                return Poll::Ready(Some(this.generator.next_record()));
            }
        }
    }
}
