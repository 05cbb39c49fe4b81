//! The exporter's tests, with a strict reader of the text formats.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use sluice_processor::{
    CallCount, CallOutcome, DeadLetterCount, DeadLetterKind, InputSnapshot, LATENCY_BUCKETS_MS,
    LatencyHistogram, LimitUnit, LimitWindow, MetricsSnapshot, StreamName, StreamStats,
};

use crate::server::OPENMETRICS_CONTENT_TYPE;
use crate::{Exporter, Format, OTHER, Options, encode};

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
/// histograms report them (cumulative, at `LATENCY_BUCKETS_MS`).
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

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

fn snapshot() -> MetricsSnapshot {
    let mut by_stream = BTreeMap::new();
    by_stream.insert(
        stream("orders-eu"),
        StreamStats {
            ingested: 120,
            delivered: 100,
            dead_lettered: 7,
            handed_back: 3,
            failed_attempts: 11,
        },
    );
    by_stream.insert(
        stream("we\"ird\\name"),
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
        attempts: 232,
        failed_calls: 19,
        timed_out_calls: 4,
        rate_limit_hits: 6,
        in_flight: 2,
        queued: 9,
        backlog: 10,
        queue_capacity: 1000,
        client_rate_limit: Some(50),
        limit_window: Some(LimitWindow {
            unit: LimitUnit::Calls,
            window: Duration::from_millis(1500),
        }),
        by_stream,
        dead_lettered_by_reason: BTreeMap::from([
            (DeadLetterKind::Rejected, 5),
            (DeadLetterKind::TimedOut, 2),
        ]),
        dead_letters: vec![
            DeadLetterCount {
                stream: stream("orders-eu"),
                reason: DeadLetterKind::Rejected,
                records: 5,
            },
            DeadLetterCount {
                stream: stream("orders-eu"),
                reason: DeadLetterKind::TimedOut,
                records: 2,
            },
        ],
        calls: vec![
            CallCount {
                outcome: CallOutcome::Delivered,
                status: Some(200),
                calls: 201,
            },
            CallCount {
                outcome: CallOutcome::RateLimited,
                status: Some(429),
                calls: 6,
            },
            CallCount {
                outcome: CallOutcome::Failed,
                status: Some(503),
                calls: 19,
            },
            CallCount {
                outcome: CallOutcome::TimedOut,
                status: None,
                calls: 4,
            },
        ],
        latency_histogram: latency(),
        call_latency_histogram: latency(),
        inputs: vec![InputSnapshot {
            name: "/data/orders.ndjson".into(),
            bytes_read: 4096,
            size_bytes: Some(8192),
            checkpoint_offset: Some(2048),
            checkpoint_written_unix_seconds: Some(1_700_000_000.5),
            pending: None,
        }],
        api_outages: 1,
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
    let text = encode(&snapshot(), &Options::default());
    assert_lines(
        &text,
        &[
            "# TYPE sluice_records_ingested counter",
            r#"sluice_records_ingested_total{stream="orders-eu"} 120"#,
            r#"sluice_records_ingested_total{stream="we\"ird\\name"} 5"#,
            r#"sluice_records_delivered_total{stream="orders-eu"} 100"#,
            r#"sluice_records_delivered_total{stream="we\"ird\\name"} 5"#,
            r#"sluice_records_handed_back_total{stream="orders-eu"} 3"#,
            r#"sluice_records_failed_attempts_total{stream="orders-eu"} 11"#,
            r#"sluice_records_failed_attempts_total{stream="we\"ird\\name"} 0"#,
            "# TYPE sluice_dead_letters counter",
            r#"sluice_dead_letters_total{reason="rejected",stream="orders-eu"} 5"#,
            r#"sluice_dead_letters_total{reason="timed_out",stream="orders-eu"} 2"#,
            "# TYPE sluice_http_requests counter",
            r#"sluice_http_requests_total{outcome="delivered",status="200"} 201"#,
            r#"sluice_http_requests_total{outcome="rate_limited",status="429"} 6"#,
            r#"sluice_http_requests_total{outcome="failed",status="503"} 19"#,
            r#"sluice_http_requests_total{outcome="timed_out",status="none"} 4"#,
            "# TYPE sluice_http_requests_in_flight gauge",
            "sluice_http_requests_in_flight 2",
            "sluice_queue_depth 9",
            "sluice_queue_capacity 1000",
            "sluice_records_in_pipeline 10",
            "sluice_api_failing 0",
            "sluice_api_outages_total 1",
            "# TYPE sluice_rate_limit gauge",
            r#"sluice_rate_limit{unit="calls"} 50"#,
            "# UNIT sluice_rate_limit_window_seconds seconds",
            "sluice_rate_limit_window_seconds 1.5",
            r#"sluice_input_bytes_read_total{input="/data/orders.ndjson"} 4096"#,
            r#"sluice_input_size_bytes{input="/data/orders.ndjson"} 8192.0"#,
            r#"sluice_checkpoint_offset_bytes{input="/data/orders.ndjson"} 2048.0"#,
            r#"sluice_checkpoint_last_write_timestamp_seconds{input="/data/orders.ndjson"} 1700000000.5"#,
            concat!(
                r#"sluice_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
            "# TYPE sluice_http_request_duration_seconds histogram",
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
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_cpu_seconds counter",
        ],
    );
    assert!(
        !text.contains("sluice_input_pending_records{"),
        "no broker: {text}"
    );
    assert!(text.ends_with("\n# EOF\n"), "{text}");
}

#[test]
fn the_output_parses_and_says_what_the_snapshot_says() {
    let snapshot = snapshot();
    let samples = parse(&encode(&snapshot, &Options::default())).unwrap();
    for (stream, stats) in &snapshot.by_stream {
        let labels = [("stream", stream.as_str())];
        assert_eq!(
            value(&samples, "sluice_records_delivered_total", &labels),
            stats.delivered as f64
        );
        assert_eq!(
            value(&samples, "sluice_records_ingested_total", &labels),
            stats.ingested as f64
        );
    }
    // The outcomes partition the calls that ended.
    let calls: f64 = samples
        .iter()
        .filter(|s| s.name == "sluice_http_requests_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(calls, (snapshot.attempts - snapshot.in_flight) as f64);
    // Cumulative, in seconds, at the snapshot's bounds, closed by +Inf.
    for family in [
        "sluice_delivery_latency_seconds",
        "sluice_http_request_duration_seconds",
    ] {
        let buckets: Vec<(&str, f64)> = samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
            .map(|s| (s.labels[0].1.as_str(), s.value))
            .collect();
        assert_eq!(buckets.len(), LATENCY_BUCKETS_MS.len() + 1, "{family}");
        for ((le, count), (le_ms, cumulative)) in
            buckets.iter().zip(&snapshot.latency_histogram.buckets)
        {
            assert_eq!(le.parse::<f64>().unwrap(), le_ms / 1_000.0);
            assert_eq!(*count, *cumulative as f64);
        }
        assert_eq!(buckets.last(), Some(&("+Inf", 6.0)));
        assert_eq!(value(&samples, &format!("{family}_count"), &[]), 6.0);
    }
}

#[test]
fn streams_beyond_the_bound_are_added_up_as_other() {
    let mut snapshot = snapshot();
    for (i, ingested) in [(1, 50), (2, 40), (3, 1)] {
        snapshot.by_stream.insert(
            stream(&format!("tenant-{i}")),
            StreamStats {
                ingested,
                delivered: ingested,
                ..StreamStats::default()
            },
        );
    }
    snapshot.dead_letters.push(DeadLetterCount {
        stream: stream("tenant-3"),
        reason: DeadLetterKind::Rejected,
        records: 1,
    });
    let options = Options { max_streams: 2 };
    let samples = parse(&encode(&snapshot, &options)).unwrap();
    let delivered: Vec<(&str, f64)> = samples
        .iter()
        .filter(|s| s.name == "sluice_records_delivered_total")
        .map(|s| (s.labels[0].1.as_str(), s.value))
        .collect();
    // orders-eu (120) and tenant-1 (50) by volume; tenant-2, tenant-3 and
    // the weird one (5) are other. In the order of the label values.
    assert_eq!(
        delivered,
        [
            ("orders-eu", 100.0),
            (OTHER, 40.0 + 1.0 + 5.0),
            ("tenant-1", 50.0)
        ]
    );
    let rejected = [("reason", "rejected"), ("stream", OTHER)];
    assert_eq!(value(&samples, "sluice_dead_letters_total", &rejected), 1.0);
    let none = parse(&encode(&snapshot, &Options { max_streams: 0 })).unwrap();
    let streams: Vec<&str> = none
        .iter()
        .filter(|s| s.name == "sluice_records_ingested_total")
        .map(|s| s.labels[0].1.as_str())
        .collect();
    assert_eq!(streams, [OTHER]);
}

#[test]
fn an_empty_snapshot_has_no_limit_and_no_streams_but_every_family() {
    let text = encode(&MetricsSnapshot::default(), &Options::default());
    let samples = parse(&text).unwrap();
    assert!(!text.contains("sluice_rate_limit"), "{text}");
    assert!(
        !samples.iter().any(
            |s| s.name.starts_with("sluice_records_") && s.name != "sluice_records_in_pipeline"
        )
    );
    assert_lines(
        &text,
        &[
            "# TYPE sluice_records_ingested counter",
            "# TYPE sluice_http_requests counter",
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

#[test]
fn the_status_says_what_the_snapshot_says_with_the_rate_of_its_history() {
    let exporter_snapshot = Arc::new(std::sync::Mutex::new(snapshot()));
    let read = Arc::clone(&exporter_snapshot);
    let exporter = Exporter::new(move || read.lock().unwrap().clone(), Options::default());
    exporter_snapshot.lock().unwrap().elapsed = Duration::from_secs(10);
    exporter_snapshot.lock().unwrap().delivered = 100;
    exporter.sample();
    {
        let mut now = exporter_snapshot.lock().unwrap();
        now.elapsed = Duration::from_secs(15);
        now.delivered = 105;
    }
    let status = exporter.status();
    assert_eq!(status.history.len(), 1);
    assert_eq!(status.rate.delivered_per_second, 1.0, "5 records in 5 s");
    assert_eq!(status.rate.quota_per_second, Some(50.0 / 1.5));
    assert_eq!(status.rate.unit, Some(LimitUnit::Calls));
    assert_eq!(status.calls.by_outcome["delivered"], 201);
    assert_eq!(status.calls.by_outcome["cancelled"], 0);
    assert_eq!(status.calls.by_outcome.len(), CallOutcome::ALL.len());
    assert_eq!(status.dead_letters["rejected"], 5);
    assert_eq!(status.dead_letters["invalid"], 0);
    assert_eq!(status.queue.capacity, 1000);
    assert_eq!(status.progress.share_read, Some(0.5));
    assert_eq!(status.records.in_pipeline, 10);
    assert_eq!(status.state, crate::State::Running);
    exporter.mark_stopping();
    assert_eq!(exporter.status().state, crate::State::Stopping);
    let json = serde_json::to_value(exporter.status()).unwrap();
    assert_eq!(json["rate"]["unit"], "calls");
    assert_eq!(json["calls"]["by_outcome"]["timed_out"], 4);
}

#[test]
fn the_history_keeps_its_last_samples() {
    let history = crate::History::default();
    let mut snapshot = MetricsSnapshot::default();
    for second in 0..crate::HISTORY_SAMPLES as u64 + 10 {
        snapshot.elapsed = Duration::from_secs(second);
        snapshot.delivered = second;
        history.record(&snapshot);
    }
    let status = crate::Status::of(&snapshot, &history, false);
    assert_eq!(status.history.len(), crate::HISTORY_SAMPLES);
    assert_eq!(status.history[0].delivered, 10);
    assert_eq!(status.rate.delivered_per_second, 1.0);
}

#[tokio::test]
async fn serves_fresh_metrics_status_health_and_the_page_and_stops_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    // Each snapshot is new: one more record each time.
    let taken = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&taken);
    let exporter = Exporter::new(
        move || {
            let mut snapshot = snapshot();
            snapshot
                .by_stream
                .get_mut(&stream("orders-eu"))
                .unwrap()
                .ingested = counter.fetch_add(1, Ordering::Relaxed) + 1;
            snapshot
        },
        Options::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(exporter.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ingested = |samples: &[Sample]| {
        value(
            samples,
            "sluice_records_ingested_total",
            &[("stream", "orders-eu")],
        )
    };

    let plain = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(plain.status(), reqwest::StatusCode::OK);
    assert_eq!(
        plain.headers()[reqwest::header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = plain.text().await.unwrap();
    let first = ingested(&parse(&text).unwrap());
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
    assert_eq!(
        open.headers()[reqwest::header::CONTENT_TYPE],
        OPENMETRICS_CONTENT_TYPE
    );
    let text = open.text().await.unwrap();
    assert!(
        ingested(&parse(&text).unwrap()) > first,
        "a fresh snapshot at each scrape"
    );
    assert!(text.ends_with("\n# EOF\n"), "{text}");

    let status = client
        .get(format!("{base}/status.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), reqwest::StatusCode::OK);
    let status: serde_json::Value = status.json().await.unwrap();
    assert_eq!(status["records"]["delivered"], 105);
    assert_eq!(status["state"], "running");

    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert!(
        page.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("status.json"));

    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    exporter.mark_stopping();
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);

    for path in ["/metric", "/metrics/extra", "/status"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::NOT_FOUND, "{path}");
    }

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

#[test]
fn the_textfile_format_is_prometheus_text() {
    let exporter = Exporter::new(snapshot, Options::default());
    let text = exporter.prometheus_text();
    assert!(!text.contains("# EOF"), "{text}");
    let samples = parse(&text).unwrap();
    assert_eq!(
        value(
            &samples,
            "sluice_http_requests_total",
            &[("outcome", "delivered"), ("status", "200")]
        ),
        201.0
    );
}

#[test]
fn inputs_beyond_the_bound_add_up_as_other_and_brokers_say_what_is_pending() {
    let input = |name: &str, read: u64, size: Option<u64>, pending: Option<u64>| InputSnapshot {
        name: name.into(),
        bytes_read: read,
        size_bytes: size,
        checkpoint_offset: Some(read),
        checkpoint_written_unix_seconds: None,
        pending,
    };
    let snapshot = MetricsSnapshot {
        inputs: vec![
            input("big", 900, Some(1_000), None),
            input("mid", 500, Some(600), None),
            input("small", 10, Some(20), None),
            input("stream-a", 5, None, Some(7)),
            input("stream-b", 1, None, Some(3)),
        ],
        ..MetricsSnapshot::default()
    };
    let samples = parse(&encode(&snapshot, &Options { max_streams: 2 })).unwrap();
    let by_input = |name: &str| -> Vec<(String, f64)> {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.labels[0].1.clone(), s.value))
            .collect()
    };
    let pairs = |list: &[(&str, f64)]| -> Vec<(String, f64)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect()
    };
    assert_eq!(
        by_input("sluice_input_bytes_read_total"),
        pairs(&[("big", 900.0), ("mid", 500.0), (OTHER, 16.0)])
    );
    assert_eq!(
        by_input("sluice_input_size_bytes"),
        pairs(&[("big", 1_000.0), ("mid", 600.0), (OTHER, 20.0)])
    );
    assert_eq!(
        by_input("sluice_checkpoint_offset_bytes"),
        pairs(&[("big", 900.0), ("mid", 500.0)]),
        "no checkpoint for other"
    );
    assert_eq!(
        by_input("sluice_input_pending_records"),
        pairs(&[(OTHER, 10.0)])
    );
    let named = parse(&encode(&snapshot, &Options::default())).unwrap();
    let pending: Vec<(String, f64)> = named
        .iter()
        .filter(|s| s.name == "sluice_input_pending_records")
        .map(|s| (s.labels[0].1.clone(), s.value))
        .collect();
    assert_eq!(pending, pairs(&[("stream-a", 7.0), ("stream-b", 3.0)]));
    assert!(
        !named
            .iter()
            .any(|s| s.name == "sluice_input_size_bytes" && s.labels[0].1 == OTHER)
    );
}

#[test]
fn the_history_counts_calls_that_delivered_nothing_as_failed() {
    let mut snapshot = snapshot();
    snapshot.calls.push(CallCount {
        outcome: CallOutcome::Partial,
        status: Some(207),
        calls: 3,
    });
    let history = crate::History::default();
    history.record(&snapshot);
    let status = crate::Status::of(&snapshot, &history, false);
    let sample = status.history[0];
    assert_eq!(sample.calls, 201 + 6 + 19 + 4 + 3);
    assert_eq!(sample.calls_failed, 6 + 19 + 4, "partial calls delivered");
}

#[test]
fn no_time_and_no_window_give_no_rate_and_no_quota() {
    let mut snapshot = snapshot();
    snapshot.elapsed = Duration::ZERO;
    snapshot.limit_window = Some(LimitWindow {
        unit: LimitUnit::Records,
        window: Duration::ZERO,
    });
    let status = crate::Status::of(&snapshot, &crate::History::default(), false);
    assert_eq!(status.rate.delivered_per_second, 0.0);
    assert_eq!(status.rate.calls_per_second, 0.0);
    assert_eq!(status.rate.quota_per_second, None);
    assert_eq!(status.rate.limit, Some(50));
}

#[test]
fn an_exporter_shows_its_options_and_state() {
    let exporter = Exporter::new(MetricsSnapshot::default, Options { max_streams: 3 });
    let debug = format!("{exporter:?}");
    assert!(
        debug.contains("max_streams: 3") && debug.contains("stopping: false"),
        "{debug}"
    );
}
