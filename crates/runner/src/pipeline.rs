//! `sluice run`: records from files, stdin or JetStream, through a
//! profile, to an HTTP API, with checkpoints, dead letters and metrics.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use futures::Stream;
use serde::Serialize;
use sluice_files::{Checkpointer, JsonLines, NdjsonDeadLetters};
use sluice_http::{HttpSink, HttpSinkConfig};
use sluice_nats::PartitionLeases;
use sluice_processor::{
    BatchConfig, CountedFrom, DeliveryOrder, Incoming, MetricsSnapshot, ProcessorConfig, Report,
    RetryPolicy, StreamProcessor, StreamStats, Transform,
};
use sluice_profiles::json::{JsonInput, JsonProfile, JsonProfileConfig};
use sluice_profiles::seed::SeedProfile;

use crate::cli::{Profile, RunOrdering, RunSettings};
use crate::inputs;

/// How much longer than the HTTP timeout the processor lets a call run,
/// so that the HTTP client's own timeout is the one that answers.
const CALL_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// How long past its window the client counts a success: covers the
/// delay between sending a call and the API counting it, on a good
/// network; a longer delay shows as a refusal, after which windows count
/// from answers.
pub(crate) const RUN_RATE_LIMIT_MARGIN: Duration = Duration::from_millis(25);

/// Why a run could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A setting, an input or a checkpoint that cannot be used: exit 2.
    #[error("{0}")]
    Setting(String),
    /// Something failed while running: exit 1.
    #[error("{0}")]
    Failed(String),
}

/// What `sluice run` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Records taken from the inputs.
    pub ingested: u64,
    /// Records the API accepted.
    pub delivered: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Records not processed (a stop): read again after a restart with the
    /// same checkpoint.
    pub handed_back: u64,
    /// ingested = delivered + dead-lettered + handed back.
    pub conserved: bool,
    /// Calls made, refused ones included.
    pub calls: u64,
    /// Calls refused as rate limited.
    pub rate_limit_hits: u64,
    /// Calls that failed.
    pub failed_calls: u64,
    /// Run time, seconds.
    pub elapsed_seconds: f64,
    /// Deliveries per second.
    pub delivered_per_second: f64,
    /// Median latency from intake to delivery.
    pub p50_latency_ms: f64,
    /// 99th percentile of the same.
    pub p99_latency_ms: f64,
    /// Dead letters by kind of reason.
    pub dead_letter_reasons: BTreeMap<String, u64>,
    /// Per stream by name.
    pub streams: BTreeMap<String, StreamStats>,
    /// Whether a signal cut the run short.
    pub interrupted: bool,
    /// Faults of user code or connectors caught during the run.
    pub failures: Vec<String>,
    /// Each checkpoint written at the end: file, byte offset, lines.
    pub checkpoints: Vec<(PathBuf, u64, u64)>,
}

impl RunSummary {
    fn new<R>(report: &Report<R>, interrupted: bool) -> RunSummary {
        let m = &report.metrics;
        RunSummary {
            ingested: m.ingested,
            delivered: m.delivered,
            dead_lettered: m.dead_lettered,
            handed_back: m.handed_back,
            conserved: report.is_conserved(),
            calls: m.attempts,
            rate_limit_hits: m.rate_limit_hits,
            failed_calls: m.failed_calls,
            elapsed_seconds: m.elapsed.as_secs_f64(),
            delivered_per_second: m.delivery_rate(),
            p50_latency_ms: m.latency.p50_ms,
            p99_latency_ms: m.latency.p99_ms,
            dead_letter_reasons: m
                .dead_lettered_by_reason
                .iter()
                .map(|(kind, count)| (kind.as_str().to_owned(), *count))
                .collect(),
            streams: m
                .by_stream
                .iter()
                .map(|(stream, stats)| (stream.as_str().to_owned(), *stats))
                .collect(),
            interrupted,
            failures: report.failures.iter().map(ToString::to_string).collect(),
            checkpoints: Vec::new(),
        }
    }
}

/// Hooks of a run: a status callback about once a second, and where the
/// metrics exporter reads from.
pub struct Hooks<Status, Stop> {
    /// Called about once a second with the metrics.
    pub on_status: Status,
    /// Completes when the run should stop (the first signal).
    pub stop: Stop,
    /// Completes when a stop should cut its drain short (the second signal).
    pub abort: Stop,
}

/// Runs `settings` to the end of the inputs, or until `hooks.stop`.
///
/// # Errors
/// [`RunError::Setting`] for an input, checkpoint, header, schema or
/// address that cannot be used; [`RunError::Failed`] when a checkpoint
/// cannot be written at the end.
pub async fn run<Status, Stop>(
    settings: &RunSettings,
    hooks: Hooks<Status, Stop>,
) -> Result<RunSummary, RunError>
where
    Status: FnMut(&MetricsSnapshot),
    Stop: Future<Output = ()> + Send + 'static,
{
    match settings.profile {
        Profile::Seed => {
            let profile = SeedProfile::new().map_err(|e| RunError::Setting(e.to_string()))?;
            run_profile(settings, profile, hooks).await
        }
        Profile::Json => {
            let mut config = JsonProfileConfig {
                stream_field: settings.fields.stream.clone(),
                partition_field: settings.fields.partition.clone(),
                sequence_field: settings.fields.sequence.clone(),
                priority_field: settings.fields.priority.clone(),
                schema: None,
            };
            if let Some(schema) = &settings.schema {
                config = config
                    .with_schema_file(schema)
                    .map_err(|e| RunError::Setting(format!("--schema: {e}")))?;
            }
            let profile = JsonProfile::new(config).map_err(|e| RunError::Setting(e.to_string()))?;
            run_profile(settings, profile, hooks).await
        }
    }
}

/// Runs `profile` over the inputs `settings` names: files and stdin as
/// lines, or a JetStream stream.
async fn run_profile<P, R, Status, Stop>(
    settings: &RunSettings,
    profile: P,
    hooks: Hooks<Status, Stop>,
) -> Result<RunSummary, RunError>
where
    P: Transform<JsonInput, Output = R>,
    R: Serialize + Send + Sync + 'static,
    Status: FnMut(&MetricsSnapshot),
    Stop: Future<Output = ()> + Send + 'static,
{
    match &settings.nats {
        None => {
            let (sources, checkpointers) = inputs::open_files(settings).await?;
            let ending = Ending::Checkpoints(checkpointers);
            run_with(settings, JsonLines::new(profile), sources, ending, hooks).await
        }
        Some(nats) => {
            let (source, leases) = inputs::open_nats(settings, nats).await?;
            let ending = leases.map_or(Ending::Nothing, Ending::Leases);
            run_with(settings, profile, [source], ending, hooks).await
        }
    }
}

/// What a run does after the processor stopped.
enum Ending {
    /// Writes each file's last checkpoint.
    Checkpoints(Vec<Checkpointer>),
    /// Gives this process's partitions up to the others.
    Leases(PartitionLeases),
    /// Nothing.
    Nothing,
}

async fn run_with<T, In, St, R, Status, Stop>(
    settings: &RunSettings,
    transform: T,
    sources: impl IntoIterator<Item = St>,
    ending: Ending,
    mut hooks: Hooks<Status, Stop>,
) -> Result<RunSummary, RunError>
where
    T: Transform<In, Output = R>,
    In: Send + 'static,
    St: Stream<Item = Incoming<In>> + Send + 'static,
    R: Serialize + Send + Sync + 'static,
    Status: FnMut(&MetricsSnapshot),
    Stop: Future<Output = ()> + Send + 'static,
{
    let sink = http_sink(settings)?;
    let config = processor_config(settings);
    let mut processor = StreamProcessor::new(transform, sink, config)
        .map_err(|e| RunError::Setting(e.to_string()))?;
    if let Some(url) = &settings.shared_limit {
        let limit = inputs::shared_limit(url, settings.rate_limit, RUN_RATE_LIMIT_MARGIN).await?;
        processor = processor.with_shared_limit(limit);
    }
    if let Some(path) = &settings.dead_letters {
        let outlet = NdjsonDeadLetters::open(path)
            .await
            .map_err(|e| RunError::Setting(format!("--dead-letters: {e}")))?;
        processor = processor.with_dead_letters(outlet);
    }
    let metrics_listener = match settings.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| RunError::Setting(format!("--metrics-addr {addr}: {e}")))?,
        ),
        None => None,
    };

    let handle = processor.start(sources);
    let reader = handle.metrics_reader();
    let (exporter_stop, exporter_stopped) = tokio::sync::oneshot::channel::<()>();
    let exporter = metrics_listener.map(|listener| {
        let reader = reader.clone();
        tokio::spawn(crate::exporter::serve(
            listener,
            move || reader.metrics(),
            async move {
                let _ = exporter_stopped.await;
            },
        ))
    });
    let abort = handle.abort_handle();
    let abort_on_second_signal = tokio::spawn(async move {
        hooks.abort.await;
        abort.abort();
    });
    let mut status = tokio::time::interval(Duration::from_secs(1));
    status.tick().await;
    let finishing = handle.finish_unless(hooks.stop);
    tokio::pin!(finishing);
    let (report, interrupted) = loop {
        tokio::select! {
            outcome = &mut finishing => break outcome,
            _ = status.tick() => (hooks.on_status)(&reader.metrics()),
        }
    };
    abort_on_second_signal.abort();

    let mut summary = RunSummary::new(&report, interrupted);
    let mut checkpoint_errors = Vec::new();
    match ending {
        Ending::Checkpoints(checkpointers) => {
            for checkpointer in checkpointers {
                let file = checkpointer.file().to_owned();
                match checkpointer.finish().await {
                    Ok(position) => {
                        summary
                            .checkpoints
                            .push((file, position.offset, position.lines))
                    }
                    Err(error) => checkpoint_errors.push(error.to_string()),
                }
            }
        }
        Ending::Leases(leases) => leases.release().await,
        Ending::Nothing => {}
    }
    let _ = exporter_stop.send(());
    if let Some(exporter) = exporter {
        let _ = exporter.await;
    }
    if !checkpoint_errors.is_empty() {
        return Err(RunError::Failed(checkpoint_errors.join("; ")));
    }
    Ok(summary)
}

fn http_sink(settings: &RunSettings) -> Result<HttpSink, RunError> {
    let mut config = HttpSinkConfig::new(settings.http_url.clone()).timeout(settings.timeout);
    for header in &settings.http_headers {
        let (name, value) = header.split_once(':').ok_or_else(|| {
            // The value may be a secret: name the header only.
            let name: String = header.chars().take_while(|c| *c != ' ').take(64).collect();
            RunError::Setting(format!(
                "--http-header {name}...: write it as 'Name: value'"
            ))
        })?;
        // The sink keeps values read from the environment (and
        // credentials by name) secret itself.
        config = config.header(name.trim(), value.trim());
    }
    HttpSink::new(config).map_err(|e| RunError::Setting(e.to_string()))
}

fn processor_config(settings: &RunSettings) -> ProcessorConfig {
    ProcessorConfig {
        max_in_flight: settings.max_in_flight as usize,
        queue_capacity: settings.queue_capacity as usize,
        batch: BatchConfig {
            max_records: settings.batch_max as usize,
            ..BatchConfig::default()
        },
        rate_limit: settings.rate_limit,
        // A real API counts a call when it arrives, after the client sent
        // it: once it shows that by a refusal, count from answers.
        counted_from: CountedFrom::CallThenAnswer,
        rate_limit_margin: RUN_RATE_LIMIT_MARGIN,
        retry: RetryPolicy {
            max_attempts: settings.max_attempts,
            ..RetryPolicy::default()
        },
        call_timeout: settings.timeout + CALL_TIMEOUT_MARGIN,
        ordering: match settings.ordering {
            RunOrdering::Partition => DeliveryOrder::Partition,
            RunOrdering::None => DeliveryOrder::None,
        },
        drain_deadline: settings.drain_timeout,
        ..ProcessorConfig::default()
    }
}
