//! sluice's observability server: a [`StreamProcessor`]'s metrics in the
//! Prometheus exposition formats (encoded by `prometheus-client` from a
//! [`MetricsSnapshot`] taken at each scrape), its status as JSON, a live
//! page, and a health check. `sluice run --metrics-addr` serves them; any
//! program that embeds the processor can too:
//!
//! ```no_run
//! # async fn example(reader: sluice_processor::MetricsReader) -> std::io::Result<()> {
//! use sluice_prometheus::{Exporter, Options};
//!
//! // reader: `ProcessorHandle::metrics_reader()` of a running processor
//! let exporter = Exporter::new(move || reader.metrics(), Options::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9898").await?;
//! exporter.serve(listener, std::future::pending()).await
//! # }
//! ```
//!
//! [`StreamProcessor`]: sluice_processor::StreamProcessor
//!
//! | path | answers |
//! | --- | --- |
//! | `GET /metrics` | the families below: OpenMetrics text when the scraper's `Accept` asks for it (Prometheus does), the Prometheus text format 0.0.4 otherwise |
//! | `GET /status.json` | [`Status`]: counts, rate against the quota, calls by outcome, latencies, progress, five minutes of history |
//! | `GET /` | a live page drawn from `/status.json`, refreshed every second (one self-contained HTML file, no external resource) |
//! | `GET /health` | 200 while the run runs, 503 once it is stopping |
//!
//! Nothing is recorded here: a custom collector reads a fresh snapshot
//! when it is scraped and encodes every value as a constant metric, so the
//! exporter shows exactly what the processor counted, and scrapes cost the
//! pipeline nothing between them. Stream labels are bounded: the
//! [`Options::max_streams`] streams with the most records keep their name,
//! the rest are added up under `stream="other"` (inputs likewise).
//!
//! | metric | type | labels | from the snapshot |
//! | --- | --- | --- | --- |
//! | `sluice_records_ingested_total` | counter | `stream` | `by_stream[..].ingested` |
//! | `sluice_records_delivered_total` | counter | `stream` | `by_stream[..].delivered` |
//! | `sluice_records_handed_back_total` | counter | `stream` | `by_stream[..].handed_back` |
//! | `sluice_records_failed_attempts_total` | counter | `stream` | `by_stream[..].failed_attempts` |
//! | `sluice_dead_letters_total` | counter | `reason`, `stream` | `dead_letters` |
//! | `sluice_http_requests_total` | counter | `outcome`, `status` | `calls`: the outcomes partition the calls that ended |
//! | `sluice_http_request_duration_seconds` | histogram | | `call_latency_histogram` |
//! | `sluice_delivery_latency_seconds` | histogram | | `latency_histogram` (intake to delivery) |
//! | `sluice_http_requests_in_flight` | gauge | | `in_flight` |
//! | `sluice_queue_depth` | gauge | | `queued` |
//! | `sluice_queue_capacity` | gauge | | `queue_capacity` |
//! | `sluice_records_in_pipeline` | gauge | | `backlog` |
//! | `sluice_api_failing` | gauge | | `api_failing` (0 or 1) |
//! | `sluice_api_outages_total` | counter | | `api_outages` |
//! | `sluice_rate_limit` | gauge | `unit` (`calls`, `records`) | `client_rate_limit`, when there is a limit |
//! | `sluice_rate_limit_window_seconds` | gauge | | `limit_window`, when there is a limit |
//! | `sluice_input_bytes_read_total` | counter | `input` | `inputs[..].bytes_read` |
//! | `sluice_input_size_bytes` | gauge | `input` | `inputs[..].size_bytes`, when known |
//! | `sluice_checkpoint_offset_bytes` | gauge | `input` | `inputs[..].checkpoint_offset` |
//! | `sluice_checkpoint_last_write_timestamp_seconds` | gauge | `input` | `inputs[..].checkpoint_written_unix_seconds` |
//! | `sluice_input_pending_records` | gauge | `input` | `inputs[..].pending` (JetStream) |
//! | `sluice_build_info` | gauge | `version` | 1 |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_start_time_seconds`, `process_open_fds`, `process_max_fds` | | | `/proc/self` (Linux) |

mod families;
mod process;
mod server;
mod status;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{self, DescriptorEncoder};
use prometheus_client::registry::Registry;
use sluice_processor::MetricsSnapshot;

pub use families::OTHER;
pub use status::{
    Calls, HISTORY_SAMPLES, History, Percentiles, Progress, Queue, Rate, Records, Sample, State,
    Status,
};

use crate::process::ProcessStats;

/// The streams (and inputs) a scrape names by default; the rest are
/// `other`.
pub const DEFAULT_MAX_STREAMS: usize = 20;

/// How the exporter labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The streams (and inputs) named in labels, those with the most
    /// records (bytes) first; the rest are added up as [`OTHER`]. At
    /// least 1 is sensible; 0 names none.
    pub max_streams: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}

/// Encodes one snapshot as OpenMetrics text (ending in `# EOF`), with the
/// process's metrics of now.
pub fn encode(snapshot: &MetricsSnapshot, options: &Options) -> String {
    render(&Taken(snapshot.clone(), *options), Format::OpenMetrics)
}

/// What a server answers from: a snapshot taken on demand, the history of
/// the status, and whether the run is stopping. Cheap to clone (shared).
#[derive(Clone)]
pub struct Exporter(Arc<Inner>);

struct Inner {
    snapshot: Box<dyn Fn() -> MetricsSnapshot + Send + Sync>,
    options: Options,
    history: History,
    stopping: AtomicBool,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("options", &self.0.options)
            .field("stopping", &self.is_stopping())
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// An exporter that reads `snapshot()` at each request.
    pub fn new(
        snapshot: impl Fn() -> MetricsSnapshot + Send + Sync + 'static,
        options: Options,
    ) -> Exporter {
        Exporter(Arc::new(Inner {
            snapshot: Box::new(snapshot),
            options,
            history: History::default(),
            stopping: AtomicBool::new(false),
        }))
    }

    /// Marks the run as stopping: `/health` answers 503 and the status
    /// says `stopping` from now on.
    pub fn mark_stopping(&self) {
        self.0.stopping.store(true, Ordering::Relaxed);
    }

    /// Whether [`mark_stopping`](Self::mark_stopping) was called.
    pub fn is_stopping(&self) -> bool {
        self.0.stopping.load(Ordering::Relaxed)
    }

    /// Adds a sample of a fresh snapshot to the status's history. The
    /// server does so once a second while it serves.
    pub fn sample(&self) {
        self.0.history.record(&(self.0.snapshot)());
    }

    /// The status now.
    pub fn status(&self) -> Status {
        Status::of(&(self.0.snapshot)(), &self.0.history, self.is_stopping())
    }

    /// The metrics now, in the Prometheus text format 0.0.4: what
    /// node-exporter's textfile collector reads.
    pub fn prometheus_text(&self) -> String {
        render(&Scrape(self.clone()), Format::PrometheusText)
    }
}

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// Prometheus text 0.0.4.
    PrometheusText,
}

/// Encodes what `collector` collects in `format`.
fn render(collector: &(impl Collector + Clone), format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector.clone()));
    // Writing to a `String` cannot fail, and the collectors fail only when
    // their writer does.
    format
        .render(&registry)
        .unwrap_or_else(|_| unreachable!("encoding metrics into a String failed"))
}

impl Format {
    fn render(self, registry: &Registry) -> Result<String, fmt::Error> {
        let mut text = String::new();
        match self {
            Format::OpenMetrics => encoding::text::encode(&mut text, registry)?,
            Format::PrometheusText => encoding::prometheus_text::encode(&mut text, registry)?,
        }
        Ok(text)
    }
}

/// Collects a snapshot already taken.
#[derive(Debug, Clone)]
struct Taken(MetricsSnapshot, Options);

impl Collector for Taken {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        families::encode(&self.0, &ProcessStats::now(), &self.1, encoder)
    }
}

/// Collects a snapshot taken at each scrape.
#[derive(Debug, Clone)]
struct Scrape(Exporter);

impl Collector for Scrape {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let inner = &(self.0).0;
        families::encode(
            &(inner.snapshot)(),
            &ProcessStats::now(),
            &inner.options,
            encoder,
        )
    }
}
