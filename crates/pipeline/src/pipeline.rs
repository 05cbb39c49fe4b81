//! A pipeline built from its settings, and its run to the end of its
//! inputs or to a stop.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_files::NdjsonDeadLetters;
use sluice_processor::{
    Finish, MetricsSnapshot, RateLimit, RawStream, SourceContext, StreamProcessor,
};
use sluice_profiles::json::JsonProfile;
use sluice_profiles::seed::SeedProfile;
use sluice_profiles::{Profile, Record};
use tokio::net::TcpListener;

use crate::connectors::{Connectors, PipelineSink};
use crate::dead_letters::{DEFAULT_MAX_DEAD_LETTERS, DeadLetterTarget, Discard, MaxDeadLetters};
use crate::error::PipelineError;
use crate::ordering::{self, OrderingChoice};
use crate::settings::{PipelineSettings, ProfileKind};
use crate::summary::RunSummary;

/// What a run is told from outside: a status callback about once a
/// second, and when to stop.
pub struct Hooks<Status, Stop, Abort> {
    /// Called about once a second with the metrics.
    pub on_status: Status,
    /// Completes when the run should stop: no more reading, calls in
    /// flight finish within the drain deadline, the rest is handed back.
    pub stop: Stop,
    /// Completes when a stop should cut its drain short.
    pub abort: Abort,
}

/// A pipeline built from its settings: its source opened, its sink, its
/// profile and processor ready, its outlets open. [`run`](Self::run) runs
/// it.
///
/// ```no_run
/// # async fn example() -> Result<(), sluice_pipeline::PipelineError> {
/// use sluice_pipeline::{Connectors, Hooks, Pipeline, from_toml};
///
/// let connectors = Connectors::builtin();
/// let settings = from_toml(&connectors, r#"
///     inputs = ["orders.ndjson"]
///     profile = "json"
///     rate_limit = "20/s"
///     [http]
///     url = "http://127.0.0.1:8080/records"
/// "#)?;
/// let pipeline = Pipeline::build(&settings, &connectors).await?;
/// let summary = pipeline
///     .run(Hooks { on_status: |_: &_| {}, stop: std::future::pending(), abort: std::future::pending() })
///     .await?;
/// assert!(summary.conserved);
/// # Ok(()) }
/// ```
pub struct Pipeline {
    processor: StreamProcessor<Profile, PipelineSink, Record>,
    streams: Vec<RawStream>,
    finish: Box<dyn Finish>,
    metrics: Option<TcpListener>,
    /// Where to write the final metrics, for node-exporter.
    metrics_textfile: Option<PathBuf>,
    /// How the metrics label.
    metrics_options: sluice_prometheus::Options,
    /// `None`: discarded.
    dead_letters: Option<LetterFile>,
    max_dead_letters: MaxDeadLetters,
    ordering: OrderingChoice,
}

/// The dead-letter file of a run.
struct LetterFile {
    outlet: Arc<NdjsonDeadLetters>,
    path: PathBuf,
    /// Made by this run, not named by the user: removed if left empty.
    made_by_default: bool,
}

impl LetterFile {
    /// Opens the file `settings` name, or the default one; `None` when
    /// letters are discarded.
    async fn open(settings: &PipelineSettings) -> Result<Option<LetterFile>, PipelineError> {
        let target = DeadLetterTarget::of(
            settings.dead_letters.as_deref(),
            settings.checkpoint.as_deref(),
        );
        let DeadLetterTarget::File { path, chosen } = target else {
            return Ok(None);
        };
        let existed = tokio::fs::try_exists(&path).await.unwrap_or(true);
        let outlet = NdjsonDeadLetters::open(&path).await.map_err(|error| {
            PipelineError::setting(
                "dead_letters",
                format!("{error}; name a writable file with --dead-letters PATH"),
            )
        })?;
        Ok(Some(LetterFile {
            outlet: Arc::new(outlet),
            path,
            made_by_default: !chosen && !existed,
        }))
    }

    /// Removes the file if this run made it and wrote nothing to it;
    /// returns where the letters are, if anywhere.
    async fn close(self, written: u64) -> Option<PathBuf> {
        if written == 0 && self.made_by_default {
            let empty = tokio::fs::metadata(&self.path)
                .await
                .is_ok_and(|metadata| metadata.len() == 0);
            if empty {
                let _ = tokio::fs::remove_file(&self.path).await;
                return None;
            }
        }
        Some(self.path)
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("streams", &self.streams.len())
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Builds the pipeline `settings` describe from `connectors`: checks
    /// every setting, builds the profile and the sink, connects the shared
    /// limit, opens the dead-letter file and the metrics address, and
    /// opens the source last (so that nothing is read, and no broker
    /// state taken, when anything else is wrong).
    ///
    /// # Errors
    /// [`PipelineError`] naming the setting, the connector or the input
    /// that cannot be used.
    pub async fn build(
        settings: &PipelineSettings,
        connectors: &Connectors,
    ) -> Result<Pipeline, PipelineError> {
        settings.check()?;
        let (source_name, source) = connectors.source(settings)?;
        let (sink_name, sink) = connectors.sink(settings)?;
        connectors.check_sections(settings, source_name, sink_name)?;
        let profile = profile(settings)?;
        let (sink, policy) = sink.build(settings.sections.get(sink_name))?;
        // Before anything is read: an API that cannot be reached would
        // have every record wait, and a wrong URL is better said now.
        sink.check()
            .await
            .map_err(|error| PipelineError::unreachable(sink_name, error))?;
        let mut config = settings.processor_config(policy)?;
        let ordering = ordering::choose(settings, source.partitioned());
        config.ordering = ordering.ordering.into();
        let (queue_capacity, ordering_of_delivery) = (config.queue_capacity, config.ordering);
        let mut processor = StreamProcessor::new(profile, sink, config)
            .map_err(|error| PipelineError::setting("limits", error.to_string()))?;
        let context = SourceContext {
            inputs: settings.inputs.clone(),
            checkpoint: settings.checkpoint.clone(),
            queue_capacity,
            ordering: ordering_of_delivery,
            progress: processor.input_progress(),
        };
        if let Some(url) = &settings.shared_limit {
            let RateLimit::Fixed(quota) = settings.rate_limit()? else {
                return Err(PipelineError::setting(
                    "shared_limit",
                    "needs a known quota: set --rate-limit N/UNIT",
                ));
            };
            let limit = sluice_redis::RedisLimit::connect(url, quota, policy.rate_limit_margin)
                .await
                .map_err(|error| PipelineError::setting("shared_limit", error.to_string()))?;
            processor = processor.with_shared_limit(limit);
        }
        let metrics = match settings.metrics_addr {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|error| {
                PipelineError::setting("metrics_addr", format!("cannot listen on {addr}: {error}"))
            })?),
            None => None,
        };
        if let Some(path) = &settings.metrics_textfile {
            check_textfile_directory(path).await?;
        }
        let built = source
            .build(settings.sections.get(source_name), &context)
            .await?;
        // After the source: its globs do not see a file made here.
        let dead_letters = LetterFile::open(settings).await?;
        processor = match &dead_letters {
            Some(file) => processor.with_dead_letters(file.outlet.clone()),
            None => processor.with_dead_letters(Discard),
        };
        Ok(Pipeline {
            processor,
            streams: built.streams,
            finish: built.finish,
            metrics,
            metrics_textfile: settings.metrics_textfile.clone(),
            metrics_options: sluice_prometheus::Options {
                max_streams: settings
                    .metrics_max_streams
                    .unwrap_or(sluice_prometheus::DEFAULT_MAX_STREAMS),
            },
            dead_letters,
            max_dead_letters: settings
                .max_dead_letters
                .unwrap_or(DEFAULT_MAX_DEAD_LETTERS),
            ordering,
        })
    }

    /// What the run says of its delivery order at start, when the inputs
    /// decided it (records that name no partition are not ordered unless
    /// asked) or it caps the calls in flight; also in the report.
    pub fn ordering_note(&self) -> Option<&str> {
        self.ordering.note.as_deref()
    }

    /// Runs to the end of the inputs, or until `hooks.stop`; then finishes
    /// the source (its checkpoints, its leases) and returns the summary.
    ///
    /// # Errors
    /// [`PipelineError::Finish`] when the source could not finish (a
    /// checkpoint not written): every record was resolved, but the next
    /// run may send some again.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping the future drops the processor, whose
    /// records are handed back, and skips the source's finish (a
    /// checkpoint then stays where it was last saved).
    pub async fn run<Status, Stop, Abort>(
        self,
        mut hooks: Hooks<Status, Stop, Abort>,
    ) -> Result<RunSummary, PipelineError>
    where
        Status: FnMut(&MetricsSnapshot),
        Stop: Future<Output = ()> + Send + 'static,
        Abort: Future<Output = ()> + Send + 'static,
    {
        let handle = self.processor.start(self.streams);
        let reader = handle.metrics_reader();
        let exporter = sluice_prometheus::Exporter::new(
            {
                let reader = reader.clone();
                move || reader.metrics()
            },
            self.metrics_options,
        );
        let (exporter_stop, exporter_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = self.metrics.map(|listener| {
            tokio::spawn(exporter.clone().serve(listener, async move {
                let _ = exporter_stopped.await;
            }))
        });
        let abort = handle.abort_handle();
        let abort_on_signal = tokio::spawn(async move {
            hooks.abort.await;
            abort.abort();
        });
        let stop = {
            let exporter = exporter.clone();
            async move {
                hooks.stop.await;
                exporter.mark_stopping();
            }
        };
        let mut status = tokio::time::interval(Duration::from_secs(1));
        status.tick().await;
        let finishing = handle.finish_unless(stop);
        tokio::pin!(finishing);
        let (report, interrupted) = loop {
            tokio::select! {
                outcome = &mut finishing => break outcome,
                _ = status.tick() => (hooks.on_status)(&reader.metrics()),
            }
        };
        exporter.mark_stopping();
        abort_on_signal.abort();
        let finished = self.finish.finish().await;
        let _ = exporter_stop.send(());
        if let Some(server) = server {
            let _ = server.await;
        }
        let textfile = match &self.metrics_textfile {
            Some(path) => write_textfile(path, &exporter.prometheus_text()).await,
            None => Ok(()),
        };
        let letters = match self.dead_letters {
            Some(file) => file.close(report.metrics.dead_lettered).await,
            None => None,
        };
        let finished = finished.map_err(|error| PipelineError::Finish(error.to_string()))?;
        textfile?;
        let mut summary = RunSummary::new(&report, interrupted, &finished.checkpoints);
        summary.read_failures = finished.read_failures;
        summary.ordering = self.ordering.ordering;
        summary.ordering_note = self.ordering.note.clone();
        summary.dead_letter_file = letters;
        summary.dead_letters_discarded =
            summary.dead_letter_file.is_none() && summary.dead_lettered > 0;
        if !self
            .max_dead_letters
            .allows(summary.dead_lettered, summary.ingested)
        {
            summary.too_many_dead_letters = Some(self.max_dead_letters.to_string());
        }
        Ok(summary)
    }
}

/// Refuses a `--metrics-textfile` whose directory does not exist, before
/// anything is read: the run would only fail at its end.
async fn check_textfile_directory(path: &std::path::Path) -> Result<(), PipelineError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => std::path::Path::new("."),
    };
    match tokio::fs::metadata(directory).await {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        _ => Err(PipelineError::setting(
            "metrics_textfile",
            format!(
                "{} is not a directory: create it, or name a file in a directory that exists",
                directory.display()
            ),
        )),
    }
}

/// Writes `text` to `path` for node-exporter's textfile collector: to a
/// file beside it first, then renamed over it, so that the collector never
/// reads half a file.
async fn write_textfile(path: &std::path::Path, text: &str) -> Result<(), PipelineError> {
    let failed = |error| PipelineError::MetricsTextfile {
        path: path.to_owned(),
        error,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    tokio::fs::write(&partial, text).await.map_err(failed)?;
    tokio::fs::rename(&partial, path).await.map_err(failed)
}

/// The profile `settings` choose.
pub(crate) fn profile(settings: &PipelineSettings) -> Result<Profile, PipelineError> {
    Ok(match settings.profile() {
        ProfileKind::Seed => Profile::Seed(
            SeedProfile::new()
                .map_err(|error| PipelineError::setting("profile", error.to_string()))?,
        ),
        ProfileKind::Json => Profile::Json(Box::new(
            JsonProfile::new(settings.json_profile()?)
                .map_err(|error| PipelineError::setting("profile", error.to_string()))?,
        )),
    })
}
