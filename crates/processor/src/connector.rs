//! Connectors that describe themselves: what a source or sink crate
//! implements so that a pipeline can be built from a configuration.
//!
//! A connector's configuration type (serde, in its own crate) implements
//! [`SourceConnector`] or [`SinkConnector`]: its name (its section in a
//! configuration file), how it builds its source or sink, which processor
//! settings it implies ([`SinkPolicy`]), and how it finishes ([`Finish`]).
//! `sluice-pipeline` registers connectors by these traits and builds a
//! running pipeline from a configuration.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::ack::Incoming;
use crate::config::{CountedFrom, DeliveryOrder, ProcessorConfig};
use crate::raw::RawRecord;
use crate::sink::Sink;

/// An error of a connector, boxed at the boundary between the connector
/// and the pipeline; the pipeline names the connector when it reports it.
pub type ConnectorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One stream of records a source yields.
pub type RawStream = BoxStream<'static, Incoming<RawRecord>>;

/// What the pipeline tells a source connector when it builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceContext {
    /// The inputs the user named for this source, as given (paths, `-`,
    /// URLs of the source's [schemes](SourceConnector::SCHEMES)).
    pub inputs: Vec<String>,
    /// Where to keep the source's progress, when the user asked for
    /// checkpoints: a file for one input, a directory for several.
    pub checkpoint: Option<PathBuf>,
    /// The most records inside the pipeline: a source that holds records
    /// until they are acknowledged (a broker's messages) should ask for no
    /// more at once.
    pub queue_capacity: usize,
    /// The pipeline's delivery order: a source that can split its input
    /// among processes by partition does so only when order is per
    /// partition.
    pub ordering: DeliveryOrder,
    /// Where the source says how far it is through each input (a
    /// [`StreamProcessor::input_progress`](crate::StreamProcessor::input_progress)):
    /// a gauge per input, updated as it reads. A source that says nothing
    /// leaves the status without progress or ETA.
    pub progress: crate::progress::InputProgress,
}

/// A source as built: its record streams (each read by an intake task of
/// its own), and what to do once the processor has stopped.
pub struct BuiltSource {
    /// The streams, e.g. one per file.
    pub streams: Vec<RawStream>,
    /// Saves progress and lets go of what the source holds; run after the
    /// processor stopped, when every record is resolved.
    pub finish: Box<dyn Finish>,
}

impl std::fmt::Debug for BuiltSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltSource")
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

/// A position a source saved at the end of a run, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCheckpoint {
    /// The input (a file's canonical path).
    pub input: PathBuf,
    /// The byte offset saved: every record before it is done.
    pub offset: u64,
    /// How many lines (records) come before `offset`.
    pub lines: u64,
}

/// What a source did when it finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// The checkpoints it saved, one per input that has one.
    pub checkpoints: Vec<SavedCheckpoint>,
    /// Inputs whose reading failed before their end, each with why (the
    /// input named): the run did not read all it was asked to.
    pub read_failures: Vec<String>,
}

/// How a source finishes once the processor has stopped (saving its
/// checkpoints, giving up its leases, closing its consumers).
#[async_trait]
pub trait Finish: Send {
    /// Finishes the source.
    ///
    /// # Errors
    /// When what the source must keep could not be kept (a checkpoint not
    /// written): the run then failed, though every record is resolved.
    async fn finish(self: Box<Self>) -> Result<Finished, ConnectorError>;
}

/// A source that needs nothing at its end.
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingToFinish;

#[async_trait]
impl Finish for NothingToFinish {
    async fn finish(self: Box<Self>) -> Result<Finished, ConnectorError> {
        Ok(Finished::default())
    }
}

/// A source connector: implemented by the source's configuration type.
///
/// ```
/// use async_trait::async_trait;
/// use futures::StreamExt;
/// use sluice_processor::{
///     BuiltSource, ConnectorError, Incoming, NothingToFinish, Origin, RawRecord, RecordId,
///     SourceConnector, SourceContext, StreamName,
/// };
///
/// /// `count` records `{"n":1}`, `{"n":2}`, ...
/// struct Counter {
///     count: u64,
/// }
///
/// #[async_trait]
/// impl SourceConnector for Counter {
///     const NAME: &'static str = "counter";
///
///     async fn build(&self, _: &SourceContext) -> Result<BuiltSource, ConnectorError> {
///         let stream = StreamName::new("counter")?;
///         let origin = Origin::new("counter");
///         let records = futures::stream::iter(1..=self.count).map(move |n| {
///             let position = RecordId { stream, partition: 0, sequence: n };
///             Incoming::new(RawRecord::new(origin.clone(), position, format!("{{\"n\":{n}}}")))
///         });
///         Ok(BuiltSource { streams: vec![records.boxed()], finish: Box::new(NothingToFinish) })
///     }
/// }
/// ```
#[async_trait]
pub trait SourceConnector: Send + Sync + 'static {
    /// The connector's name: `source = "NAME"` and its section `[NAME]`
    /// in a configuration.
    const NAME: &'static str;

    /// The URL schemes of the inputs it reads (`["nats"]` for
    /// `nats://HOST:PORT`): an input with one of them chooses this source.
    /// Empty for a source of paths.
    const SCHEMES: &'static [&'static str] = &[];

    /// Whether the positions it gives records name partitions of their
    /// own (a JetStream subject's last token). `false` for a source whose
    /// every input is one sequence (a file, stdin): unless the profile
    /// takes a partition from each record, ordering by partition would
    /// send one call at a time per input.
    const PARTITIONED: bool = true;

    /// Opens the source: checks its inputs and connects, so that an error
    /// shows before any record is read.
    ///
    /// # Errors
    /// An input, a checkpoint or a server that cannot be used, saying
    /// which and why.
    async fn build(&self, context: &SourceContext) -> Result<BuiltSource, ConnectorError>;

    /// Checks what [`build`](Self::build) would use (inputs, a checkpoint,
    /// a server) without reading a record or taking any state, and says
    /// what it checked (`sluice check`). By default checks nothing.
    ///
    /// # Errors
    /// What cannot be used, and why.
    async fn check(&self, context: &SourceContext) -> Result<String, ConnectorError> {
        let _ = context;
        Ok("nothing to check".to_owned())
    }

    /// This configuration as it may be shown (`--print-config`), with
    /// every secret it holds masked. By default, itself.
    fn redacted(&self) -> Self
    where
        Self: Clone,
    {
        self.clone()
    }
}

/// The processor settings a sink implies: how long a call may take, and
/// how the API counts the successes its quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkPolicy {
    /// The processor's bound on one call (see
    /// [`ProcessorConfig::call_timeout`]).
    pub call_timeout: Duration,
    /// When a success starts counting in the API's window.
    pub counted_from: CountedFrom,
    /// How long past its window a success is still counted (see
    /// [`ProcessorConfig::rate_limit_margin`]).
    pub rate_limit_margin: Duration,
}

impl SinkPolicy {
    /// `config` with this policy's settings.
    pub fn apply(self, config: ProcessorConfig) -> ProcessorConfig {
        ProcessorConfig {
            call_timeout: self.call_timeout,
            counted_from: self.counted_from,
            rate_limit_margin: self.rate_limit_margin,
            ..config
        }
    }
}

/// A sink connector: implemented by the sink's configuration type, for the
/// records `R` it can deliver.
pub trait SinkConnector<R>: Send + Sync + 'static {
    /// The connector's name: `sink = "NAME"` and its section `[NAME]` in a
    /// configuration.
    const NAME: &'static str;

    /// The sink it builds.
    type Sink: Sink<R>;

    /// Builds the sink.
    ///
    /// # Errors
    /// A setting that cannot be used (a malformed URL, a header whose
    /// variable is not set), saying which and why.
    fn build(&self) -> Result<Self::Sink, ConnectorError>;

    /// The processor settings this sink implies.
    fn policy(&self) -> SinkPolicy;

    /// This configuration as it may be shown (`--print-config`), with
    /// every secret it holds masked. By default, itself.
    fn redacted(&self) -> Self
    where
        Self: Clone,
    {
        self.clone()
    }
}

/// A setting a connector cannot use: names its configuration key (e.g.
/// `nats.lease`, also `SLUICE_NATS_LEASE`) and its flag, and says why.
///
/// ```
/// use std::time::Duration;
/// use sluice_processor::SettingError;
///
/// let error = SettingError::out_of_range(
///     "nats.lease", "--nats-lease", Duration::ZERO, Duration::from_secs(1), Duration::from_secs(3600),
/// );
/// assert_eq!(error.to_string(), "nats.lease (--nats-lease): must be 1s to 1h, got 0s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} ({flag}): {problem}")]
pub struct SettingError {
    /// The configuration key, as a path (`section.field`).
    pub key: &'static str,
    /// The command-line flag that sets it.
    pub flag: &'static str,
    /// What is wrong and what to do.
    pub problem: String,
}

impl SettingError {
    /// The setting `key` (flag `flag`) cannot be used: `problem`.
    pub fn new(key: &'static str, flag: &'static str, problem: impl Into<String>) -> SettingError {
        SettingError {
            key,
            flag,
            problem: problem.into(),
        }
    }

    /// The duration `value` of `key` is not within `low..=high`.
    pub fn out_of_range(
        key: &'static str,
        flag: &'static str,
        value: Duration,
        low: Duration,
        high: Duration,
    ) -> SettingError {
        let show = humantime::format_duration;
        SettingError::new(
            key,
            flag,
            format!(
                "must be {} to {}, got {}",
                show(low),
                show(high),
                show(value)
            ),
        )
    }

    /// `Ok(value)` when `value` is within `low..=high`.
    ///
    /// # Errors
    /// [`out_of_range`](Self::out_of_range) otherwise.
    pub fn check_duration(
        key: &'static str,
        flag: &'static str,
        value: Duration,
        low: Duration,
        high: Duration,
    ) -> Result<Duration, SettingError> {
        if (low..=high).contains(&value) {
            Ok(value)
        } else {
            Err(SettingError::out_of_range(key, flag, value, low, high))
        }
    }
}
