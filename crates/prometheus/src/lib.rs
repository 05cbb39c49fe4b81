//! sluice's Prometheus exporter: a [`StreamProcessor`]'s metrics, encoded
//! by `prometheus-client` from a [`MetricsSnapshot`] taken at each scrape,
//! and served at `GET /metrics` ([`serve`]; `sluice run --metrics-addr`
//! uses it). Any program that embeds the processor can serve the same
//! metrics:
//!
//! ```no_run
//! # async fn example(reader: sluice_processor::MetricsReader) -> std::io::Result<()> {
//! // reader: `ProcessorHandle::metrics_reader()` of a running processor
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9898").await?;
//! sluice_prometheus::serve(listener, move || reader.metrics(), std::future::pending()).await
//! # }
//! ```
//!
//! [`StreamProcessor`]: sluice_processor::StreamProcessor
//!
//! Nothing is recorded here: a custom [`Collector`] reads a fresh snapshot
//! when it is scraped and encodes every value as a constant metric, so the
//! exporter shows exactly what the processor counted, and scrapes cost the
//! pipeline nothing between them.
//!
//! | metric | type | labels | from the snapshot |
//! | --- | --- | --- | --- |
//! | `sluice_records_ingested_total` | counter | `stream` | `by_stream[..].ingested` |
//! | `sluice_records_delivered_total` | counter | `stream` | `by_stream[..].delivered` |
//! | `sluice_records_dead_lettered_total` | counter | `stream` | `by_stream[..].dead_lettered` |
//! | `sluice_records_handed_back_total` | counter | `stream` | `by_stream[..].handed_back` |
//! | `sluice_records_failed_attempts_total` | counter | `stream` | `by_stream[..].failed_attempts` |
//! | `sluice_dead_letters_total` | counter | `reason` | `dead_lettered_by_reason` (every kind, 0 when absent) |
//! | `sluice_calls_total` | counter | | `attempts` |
//! | `sluice_calls_failed_total` | counter | | `failed_calls` |
//! | `sluice_calls_timed_out_total` | counter | | `timed_out_calls` |
//! | `sluice_calls_rate_limited_total` | counter | | `rate_limit_hits` |
//! | `sluice_calls_in_flight` | gauge | | `in_flight` |
//! | `sluice_queue_depth` | gauge | | `queued` |
//! | `sluice_backlog_records` | gauge | | `backlog` |
//! | `sluice_client_rate_limit` | gauge | | `client_rate_limit`, only when there is one |
//! | `sluice_delivery_latency_seconds` | histogram | | `latency_histogram`, ms made seconds |
//!
//! [`encode`] writes the OpenMetrics text format. [`serve`] answers with
//! it when the scraper's `Accept` header asks for it (Prometheus does), and
//! with the Prometheus text format 0.0.4 otherwise (`curl`, older agents).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{self, DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use sluice_processor::{DeadLetterKind, LatencyHistogram, MetricsSnapshot, StreamStats};

/// How long [`serve`] waits, once `shutdown` has completed, for the
/// connections still open to finish their request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The content type of the OpenMetrics text format as `prometheus-client`
/// writes it.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A per-stream record counter.
struct StreamCounter {
    /// The family's name; the encoder adds `_total`.
    name: &'static str,
    help: &'static str,
    /// The count it reads.
    count: fn(&StreamStats) -> u64,
}

/// The per-stream record counters.
const STREAM_COUNTERS: [StreamCounter; 5] = [
    StreamCounter {
        name: "sluice_records_ingested",
        help: "Records taken from the sources and named by the transform.",
        count: |stats| stats.ingested,
    },
    StreamCounter {
        name: "sluice_records_delivered",
        help: "Records the downstream API accepted.",
        count: |stats| stats.delivered,
    },
    StreamCounter {
        name: "sluice_records_dead_lettered",
        help: "Records the dead-letter outlet kept.",
        count: |stats| stats.dead_lettered,
    },
    StreamCounter {
        name: "sluice_records_handed_back",
        help: "Records handed back unprocessed (at stop or after a fault).",
        count: |stats| stats.handed_back,
    },
    StreamCounter {
        name: "sluice_records_failed_attempts",
        help: "Failed attempts to deliver a record (each retry counts; refusals excluded).",
        count: |stats| stats.failed_attempts,
    },
];

/// Encodes one snapshot in the Prometheus exposition format, as the
/// OpenMetrics text `prometheus-client` writes (ending in `# EOF`).
///
/// The metrics are those of the [module's table](self); every value is the
/// snapshot's.
pub fn encode(snapshot: &MetricsSnapshot) -> String {
    let registry = registry(Taken(snapshot.clone()));
    // Writing to a `String` cannot fail, and the collector fails only when
    // its writer does.
    Format::OpenMetrics
        .render(&registry)
        .unwrap_or_else(|_| unreachable!("encoding metrics into a String failed"))
}

/// Serves `GET /metrics` at `listener`, reading `snapshot()` at each scrape,
/// until `shutdown` completes; any other path answers 404.
///
/// The body is OpenMetrics text when the request's `Accept` header names
/// `application/openmetrics-text`, the Prometheus text format 0.0.4
/// (`text/plain`) otherwise. Once `shutdown` completes, no connection is
/// accepted; requests under way get up to a second to finish, after which
/// this returns whatever the connections still open are doing.
///
/// # Errors
/// An error of the listener that ends serving.
pub async fn serve(
    listener: tokio::net::TcpListener,
    snapshot: impl Fn() -> MetricsSnapshot + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(registry(Scrape(snapshot))));
    let (stopped, stopping) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopped.send(());
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .into_future();
    // Graceful shutdown waits for every open connection, and one that
    // never completes its request would hold it forever: bound the wait.
    let grace_spent = async move {
        match stopping.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            // The signal was dropped unsent: the server ended on its own.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        served = server => served,
        () = grace_spent => Ok(()),
    }
}

/// Answers one scrape in the format the scraper asked for.
async fn scrape(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let format = Format::accepted(&headers);
    match format.render(&registry) {
        Ok(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                ),
                (header::VARY, HeaderValue::from_static("accept")),
            ],
            body,
        )
            .into_response(),
        Err(fmt::Error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded\n",
        )
            .into_response(),
    }
}

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
    /// Prometheus text 0.0.4.
    PrometheusText,
}

impl Format {
    /// OpenMetrics when `Accept` names it (with a non-zero weight), as
    /// Prometheus's scrapes do; the older text format otherwise.
    fn accepted(headers: &HeaderMap) -> Format {
        let asks_for_openmetrics = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media_type = parts.next().unwrap_or_default();
                let refused = parts.any(|parameter| {
                    parameter
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media_type.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            });
        if asks_for_openmetrics {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::PrometheusText => encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    fn render(self, registry: &Registry) -> Result<String, fmt::Error> {
        let mut text = String::new();
        match self {
            Format::OpenMetrics => encoding::text::encode(&mut text, registry)?,
            Format::PrometheusText => encoding::prometheus_text::encode(&mut text, registry)?,
        }
        Ok(text)
    }
}

/// A registry holding only `collector`.
fn registry(collector: impl Collector) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    registry
}

/// Collects a snapshot already taken.
#[derive(Debug)]
struct Taken(MetricsSnapshot);

impl Collector for Taken {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        encode_snapshot(&self.0, encoder)
    }
}

/// Collects a snapshot taken at each scrape.
struct Scrape<F>(F);

impl<F> fmt::Debug for Scrape<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

impl<F> Collector for Scrape<F>
where
    F: Fn() -> MetricsSnapshot + Send + Sync + 'static,
{
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        encode_snapshot(&(self.0)(), encoder)
    }
}

/// Encodes every metric of the module's table from `snapshot`.
fn encode_snapshot(
    snapshot: &MetricsSnapshot,
    mut encoder: DescriptorEncoder<'_>,
) -> Result<(), fmt::Error> {
    for StreamCounter { name, help, count } in STREAM_COUNTERS {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (stream, stats) in &snapshot.by_stream {
            let labels = [("stream", stream.as_str())];
            ConstCounter::new(count(stats)).encode(metric.encode_family(&labels)?)?;
        }
    }

    let mut metric = encoder.encode_descriptor(
        "sluice_dead_letters",
        "Records dead-lettered, by kind of reason.",
        None,
        MetricType::Counter,
    )?;
    for kind in DeadLetterKind::ALL {
        let count = snapshot
            .dead_lettered_by_reason
            .get(&kind)
            .copied()
            .unwrap_or(0);
        let labels = [("reason", kind.as_str())];
        ConstCounter::new(count).encode(metric.encode_family(&labels)?)?;
    }

    let counters = [
        (
            "sluice_calls",
            "Calls to the downstream API, refused ones included.",
            snapshot.attempts,
        ),
        (
            "sluice_calls_failed",
            "Calls that failed, in whole or in part (timed-out ones included).",
            snapshot.failed_calls,
        ),
        (
            "sluice_calls_timed_out",
            "Calls cancelled at the call timeout.",
            snapshot.timed_out_calls,
        ),
        (
            "sluice_calls_rate_limited",
            "Calls the downstream API refused as rate limited.",
            snapshot.rate_limit_hits,
        ),
    ];
    for (name, help, value) in counters {
        let counter = ConstCounter::new(value);
        counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
    }

    let gauges = [
        (
            "sluice_calls_in_flight",
            "Calls to the downstream API in flight now.",
            snapshot.in_flight,
        ),
        (
            "sluice_queue_depth",
            "Records waiting in the queue, not yet taken by a worker.",
            snapshot.queued,
        ),
        (
            "sluice_backlog_records",
            "Records inside the pipeline: ingested, not yet delivered, dead-lettered or handed back.",
            snapshot.backlog,
        ),
    ];
    for (name, help, value) in gauges {
        let gauge = ConstGauge::new(value);
        gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
    }
    if let Some(limit) = snapshot.client_rate_limit {
        let gauge = ConstGauge::new(limit);
        gauge.encode(encoder.encode_descriptor(
            "sluice_client_rate_limit",
            "The client-side rate limiter's current limit (calls or records per window).",
            None,
            gauge.metric_type(),
        )?)?;
    }

    let latency = &snapshot.latency_histogram;
    encoder
        .encode_descriptor(
            "sluice_delivery_latency",
            "Latency from intake to delivery.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            latency.sum_ms / 1_000.0,
            latency.count,
            &bucket_increments(latency),
            None,
        )
}

/// The snapshot's cumulative buckets as `prometheus-client` takes them:
/// (upper bound in seconds, deliveries in this bucket alone), which it adds
/// up again, closed by `+Inf` so that its cumulative count is the total.
fn bucket_increments(latency: &LatencyHistogram) -> Vec<(f64, u64)> {
    let mut below = 0;
    let mut buckets = Vec::with_capacity(latency.buckets.len() + 1);
    for &(le_ms, cumulative) in latency.buckets.iter().filter(|(le, _)| le.is_finite()) {
        buckets.push((le_ms / 1_000.0, cumulative.saturating_sub(below)));
        below = below.max(cumulative);
    }
    buckets.push((f64::INFINITY, latency.count.saturating_sub(below)));
    buckets
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    use sluice_processor::{LATENCY_BUCKETS_MS, StreamName};

    use super::*;

    /// One sample line: `name{labels} value`.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// A strict reading of the text formats: comments are `# HELP`,
    /// `# TYPE`, `# UNIT` or a final `# EOF`; every other line is
    /// `name{labels} value` with a float value (no timestamp, no exemplar)
    /// whose name belongs to the family last declared by `# TYPE`.
    fn parse(text: &str) -> Result<Vec<Sample>, String> {
        let mut samples = Vec::new();
        let mut family: Option<String> = None;
        let mut lines = text.lines().peekable();
        if !text.ends_with('\n') {
            return Err("the text does not end with a newline".into());
        }
        while let Some(line) = lines.next() {
            let bad = |why: &str| format!("{why}: {line:?}");
            if let Some(comment) = line.strip_prefix('#') {
                if comment == " EOF" {
                    if lines.peek().is_some() {
                        return Err(bad("# EOF before the end"));
                    }
                    continue;
                }
                let (keyword, rest) = comment
                    .strip_prefix(' ')
                    .and_then(|c| c.split_once(' '))
                    .ok_or_else(|| bad("malformed comment"))?;
                let name = rest.split(' ').next().unwrap_or_default();
                if !is_metric_name(name) {
                    return Err(bad("bad metric name"));
                }
                match keyword {
                    "HELP" | "UNIT" => {}
                    "TYPE" => {
                        let kind = rest.strip_prefix(name).unwrap_or_default();
                        if ![" counter", " gauge", " histogram"].contains(&kind) {
                            return Err(bad("unknown type"));
                        }
                        family = Some(name.to_owned());
                    }
                    _ => return Err(bad("unknown comment")),
                }
                continue;
            }
            let sample = parse_sample(line).map_err(|why| bad(&why))?;
            let declared = family
                .as_deref()
                .ok_or_else(|| bad("sample before # TYPE"))?;
            let suffix = sample.name.strip_prefix(declared);
            if !matches!(suffix, Some("" | "_total" | "_bucket" | "_sum" | "_count")) {
                return Err(bad("sample outside its family"));
            }
            samples.push(sample);
        }
        Ok(samples)
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let (name, mut rest) = line.split_at(name_end);
        if !is_metric_name(name) {
            return Err("bad metric name".into());
        }
        let mut labels = Vec::new();
        if let Some(inside) = rest.strip_prefix('{') {
            rest = inside;
            while !rest.starts_with('}') {
                let (key, after_key) = rest.split_once("=\"").ok_or("label without =\"")?;
                if !is_label_name(key) || labels.iter().any(|(k, _)| k == key) {
                    return Err(format!("bad or repeated label name {key:?}"));
                }
                let mut value = String::new();
                let mut chars = after_key.char_indices();
                let end = loop {
                    match chars.next().ok_or("unterminated label value")? {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => return Err(format!("bad escape \\{other}")),
                        },
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key.to_owned(), value));
                rest = &after_key[end + 1..];
                if let Some(next) = rest.strip_prefix(',') {
                    rest = next;
                } else if !rest.starts_with('}') {
                    return Err("label not followed by , or }".into());
                }
            }
            rest = &rest[1..];
        }
        let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
        if value.contains(' ') {
            return Err("more than a value after the labels".into());
        }
        let value = value
            .parse::<f64>()
            .map_err(|_| format!("{value:?} is not a float"))?;
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    fn is_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(name: &str) -> bool {
        is_metric_name(name) && !name.contains(':')
    }

    /// The value of the one sample named `name` with exactly `labels`.
    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name}{labels:?} in {samples:?}");
        found[0].value
    }

    /// Latencies of 1, 3, 3, 40, 900 and 120 000 ms, as the processor's
    /// histogram reports them (cumulative, at `LATENCY_BUCKETS_MS`).
    fn latency() -> LatencyHistogram {
        let observed = [1.0, 3.0, 3.0, 40.0, 900.0, 120_000.0];
        LatencyHistogram {
            count: observed.len() as u64,
            sum_ms: observed.iter().sum(),
            buckets: LATENCY_BUCKETS_MS
                .iter()
                .map(|&le| (le, observed.iter().filter(|&&ms| ms <= le).count() as u64))
                .collect(),
        }
    }

    fn snapshot() -> MetricsSnapshot {
        let orders = StreamName::new("orders-eu").unwrap();
        let odd = StreamName::new("we\"ird\\name").unwrap();
        let mut by_stream = BTreeMap::new();
        by_stream.insert(
            orders,
            StreamStats {
                ingested: 120,
                delivered: 100,
                dead_lettered: 7,
                handed_back: 3,
                failed_attempts: 11,
            },
        );
        by_stream.insert(
            odd,
            StreamStats {
                ingested: 5,
                delivered: 5,
                ..StreamStats::default()
            },
        );
        MetricsSnapshot {
            ingested: 125,
            delivered: 105,
            dead_lettered: 7,
            handed_back: 3,
            attempts: 230,
            failed_calls: 19,
            timed_out_calls: 4,
            rate_limit_hits: 6,
            in_flight: 2,
            queued: 9,
            backlog: 10,
            client_rate_limit: Some(50),
            by_stream,
            dead_lettered_by_reason: BTreeMap::from([
                (DeadLetterKind::Rejected, 5),
                (DeadLetterKind::TimedOut, 2),
            ]),
            latency_histogram: latency(),
            ..MetricsSnapshot::default()
        }
    }

    fn assert_lines(text: &str, expected: &[&str]) {
        let lines: Vec<&str> = text.lines().collect();
        for line in expected {
            assert!(lines.contains(line), "no line {line:?} in\n{text}");
        }
    }

    #[test]
    fn encodes_every_metric_from_the_snapshot() {
        let text = encode(&snapshot());
        assert_lines(
            &text,
            &[
                "# TYPE sluice_records_ingested counter",
                r#"sluice_records_ingested_total{stream="orders-eu"} 120"#,
                r#"sluice_records_ingested_total{stream="we\"ird\\name"} 5"#,
                r#"sluice_records_delivered_total{stream="orders-eu"} 100"#,
                r#"sluice_records_delivered_total{stream="we\"ird\\name"} 5"#,
                r#"sluice_records_dead_lettered_total{stream="orders-eu"} 7"#,
                r#"sluice_records_handed_back_total{stream="orders-eu"} 3"#,
                r#"sluice_records_failed_attempts_total{stream="orders-eu"} 11"#,
                r#"sluice_records_failed_attempts_total{stream="we\"ird\\name"} 0"#,
                "# TYPE sluice_dead_letters counter",
                r#"sluice_dead_letters_total{reason="rejected"} 5"#,
                r#"sluice_dead_letters_total{reason="timed_out"} 2"#,
                r#"sluice_dead_letters_total{reason="invalid"} 0"#,
                r#"sluice_dead_letters_total{reason="transform_panicked"} 0"#,
                r#"sluice_dead_letters_total{reason="retries_exhausted"} 0"#,
                "sluice_calls_total 230",
                "sluice_calls_failed_total 19",
                "sluice_calls_timed_out_total 4",
                "sluice_calls_rate_limited_total 6",
                "# TYPE sluice_calls_in_flight gauge",
                "sluice_calls_in_flight 2",
                "sluice_queue_depth 9",
                "sluice_backlog_records 10",
                "# TYPE sluice_client_rate_limit gauge",
                "sluice_client_rate_limit 50",
                "# TYPE sluice_delivery_latency_seconds histogram",
                "# UNIT sluice_delivery_latency_seconds seconds",
                r#"sluice_delivery_latency_seconds_bucket{le="0.001"} 1"#,
                r#"sluice_delivery_latency_seconds_bucket{le="0.002"} 1"#,
                r#"sluice_delivery_latency_seconds_bucket{le="0.005"} 3"#,
                r#"sluice_delivery_latency_seconds_bucket{le="0.025"} 3"#,
                r#"sluice_delivery_latency_seconds_bucket{le="0.05"} 4"#,
                r#"sluice_delivery_latency_seconds_bucket{le="0.5"} 4"#,
                r#"sluice_delivery_latency_seconds_bucket{le="1.0"} 5"#,
                r#"sluice_delivery_latency_seconds_bucket{le="60.0"} 5"#,
                r#"sluice_delivery_latency_seconds_bucket{le="+Inf"} 6"#,
                "sluice_delivery_latency_seconds_count 6",
                "sluice_delivery_latency_seconds_sum 120.947",
            ],
        );
        assert!(text.ends_with("\n# EOF\n"), "{text}");
    }

    #[test]
    fn the_output_parses_and_says_what_the_snapshot_says() {
        let snapshot = snapshot();
        let samples = parse(&encode(&snapshot)).unwrap();
        for (stream, stats) in &snapshot.by_stream {
            let labels = [("stream", stream.as_str())];
            for counter in STREAM_COUNTERS {
                let name = format!("{}_total", counter.name);
                let expected = (counter.count)(stats) as f64;
                assert_eq!(value(&samples, &name, &labels), expected);
            }
        }
        // Cumulative, in seconds, at the snapshot's bounds, closed by +Inf.
        let buckets: Vec<(&str, f64)> = samples
            .iter()
            .filter(|s| s.name == "sluice_delivery_latency_seconds_bucket")
            .map(|s| (s.labels[0].1.as_str(), s.value))
            .collect();
        assert_eq!(buckets.len(), LATENCY_BUCKETS_MS.len() + 1);
        for ((le, count), (le_ms, cumulative)) in
            buckets.iter().zip(&snapshot.latency_histogram.buckets)
        {
            assert_eq!(le.parse::<f64>().unwrap(), le_ms / 1_000.0);
            assert_eq!(*count, *cumulative as f64);
        }
        assert_eq!(buckets.last(), Some(&("+Inf", 6.0)));
        let count = value(&samples, "sluice_delivery_latency_seconds_count", &[]);
        assert_eq!(count, 6.0);
    }

    #[test]
    fn an_empty_snapshot_has_no_limit_and_no_streams_but_every_family() {
        let text = encode(&MetricsSnapshot::default());
        let samples = parse(&text).unwrap();
        assert!(!text.contains("sluice_client_rate_limit"), "{text}");
        assert!(!samples.iter().any(|s| s.name.starts_with("sluice_records")));
        assert_lines(
            &text,
            &[
                "# TYPE sluice_records_ingested counter",
                "sluice_calls_total 0",
                "sluice_queue_depth 0",
                r#"sluice_delivery_latency_seconds_bucket{le="+Inf"} 0"#,
                "sluice_delivery_latency_seconds_count 0",
                "sluice_delivery_latency_seconds_sum 0.0",
            ],
        );
    }

    #[test]
    fn the_parser_rejects_malformed_lines() {
        let declared = "# TYPE x counter\n";
        for bad in [
            "x_total 1 2\n",
            "x_total one\n",
            "x_total{a=\"b\" 1\n",
            "x_total{a=b} 1\n",
            "x_total{a=\"b\",a=\"c\"} 1\n",
            "x_total{a=\"b\\q\"} 1\n",
            "x_total{a=\"b\"}1\n",
            "y_total 1\n",
            "x_total 1",
            "# EOF\nx_total 1\n",
            "# NOTE x\n",
        ] {
            assert!(parse(&format!("{declared}{bad}")).is_err(), "{bad:?}");
        }
        assert!(parse("x 1\n").is_err(), "a sample before its # TYPE");
        assert_eq!(
            parse(&format!("{declared}x_total{{a=\"q\\\"\",b=\"\"}} 1.5e3\n")).unwrap(),
            [Sample {
                name: "x_total".into(),
                labels: vec![("a".into(), "q\"".into()), ("b".into(), String::new())],
                value: 1500.0,
            }]
        );
    }

    #[test]
    fn accept_chooses_the_format() {
        let with = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
            Format::accepted(&headers)
        };
        assert_eq!(Format::accepted(&HeaderMap::new()), Format::PrometheusText);
        assert_eq!(with("*/*"), Format::PrometheusText);
        assert_eq!(with("text/plain;version=0.0.4"), Format::PrometheusText);
        assert_eq!(
            with("application/openmetrics-text;q=0, text/plain"),
            Format::PrometheusText
        );
        // What Prometheus sends.
        assert_eq!(
            with(
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                 application/openmetrics-text;version=0.0.1;q=0.4,\
                 text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
    }

    #[tokio::test]
    async fn serves_fresh_metrics_at_metrics_only_and_stops_on_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // Each scrape takes a new snapshot: one more record each time.
        let scrapes = Arc::new(AtomicU64::new(0));
        let taken = Arc::clone(&scrapes);
        let take = move || {
            let mut snapshot = snapshot();
            let orders = StreamName::new("orders-eu").unwrap();
            snapshot.by_stream.get_mut(&orders).unwrap().ingested =
                taken.fetch_add(1, Ordering::Relaxed) + 1;
            snapshot
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, take, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();

        let plain = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(plain.status(), reqwest::StatusCode::OK);
        assert_eq!(
            plain.headers()[reqwest::header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = plain.text().await.unwrap();
        let samples = parse(&text).unwrap();
        let orders = [("stream", "orders-eu")];
        assert_eq!(
            value(&samples, "sluice_records_ingested_total", &orders),
            1.0
        );
        assert_eq!(value(&samples, "sluice_calls_failed_total", &[]), 19.0);
        assert_eq!(
            value(
                &samples,
                "sluice_delivery_latency_seconds_bucket",
                &[("le", "+Inf")]
            ),
            6.0
        );
        assert!(!text.contains("# EOF"), "{text}");

        let open = client
            .get(format!("{base}/metrics"))
            .header(
                reqwest::header::ACCEPT,
                "application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(open.status(), reqwest::StatusCode::OK);
        assert_eq!(
            open.headers()[reqwest::header::CONTENT_TYPE],
            OPENMETRICS_CONTENT_TYPE
        );
        let text = open.text().await.unwrap();
        let samples = parse(&text).unwrap();
        assert_eq!(
            value(&samples, "sluice_records_ingested_total", &orders),
            2.0,
            "a fresh snapshot at each scrape"
        );
        assert!(text.ends_with("\n# EOF\n"), "{text}");

        for path in ["/", "/metric", "/metrics/extra", "/health"] {
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(scrapes.load(Ordering::Relaxed), 2, "only /metrics scrapes");

        stop.send(()).unwrap();
        let served = tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns once shutdown completes")
            .unwrap();
        assert!(served.is_ok(), "{served:?}");
        assert!(
            client.get(format!("{base}/metrics")).send().await.is_err(),
            "nothing listens after shutdown"
        );
    }
}
