//! `sluice run --metrics-addr` and `--metrics-textfile` as an operator
//! uses them: scraped during a real run against `sluice mock-api`, checked
//! by Prometheus's own `promtool`, and the final snapshot equal to the
//! report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::services::{free_port, installed};
use common::{MockApi, eventually, generate, report, sluice, wait_bounded};

/// `promtool check metrics` of `text`: its complaints (empty when none).
fn promtool_complaints(text: &str) -> String {
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = wait_bounded(check, Duration::from_secs(30));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && said.trim().is_empty() {
        String::new()
    } else {
        format!("exit {:?}: {said}", output.status.code())
    }
}

/// Every sample of the Prometheus text `text`, as (name, labels, value).
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            (
                name.to_owned(),
                labels.trim_end_matches('}').to_owned(),
                value,
            )
        })
        .collect()
}

/// The sum of the samples named `name`.
fn total(samples: &[(String, String, f64)], name: &str) -> f64 {
    samples
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn a_scrape_passes_promtool_and_the_textfile_ends_equal_to_the_report() {
    if !installed("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Some failures, so that calls end several ways.
    let api = MockApi::start(&["--rate-limit", "60/s", "--failure-rate", "0.1"]);
    let records = 300;
    let input = generate(dir.path(), "orders.ndjson", records, 21);
    let size = std::fs::metadata(&input).unwrap().len();
    let textfile = dir.path().join("sluice.prom");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let run = sluice()
        .current_dir(dir.path())
        .args(["run", input.to_str().unwrap(), "--http-url", &api.url()])
        .args(["--rate-limit", "50/s", "--max-attempts", "30", "--json"])
        .args(["--metrics-addr", &metrics_addr])
        .args(["--metrics-textfile", textfile.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // A scrape while records are on their way.
    let mut during = String::new();
    eventually(Duration::from_secs(60), "a scrape mid-run", || {
        if std::net::TcpStream::connect(&metrics_addr).is_err() {
            return false;
        }
        during = common::get(&metrics_addr, "/metrics");
        let now = samples(&during);
        let delivered = total(&now, "sluice_records_delivered_total");
        delivered > 0.0 && delivered < 200.0
    });
    assert_eq!(promtool_complaints(&during), "", "{during}");
    assert_eq!(common::get(&metrics_addr, "/health"), "ok\n");
    let now = samples(&during);
    assert_eq!(total(&now, "sluice_queue_capacity"), 1000.0, "{during}");
    assert_eq!(total(&now, "sluice_input_size_bytes"), size as f64);
    let read = total(&now, "sluice_input_bytes_read_total");
    assert!(read > 0.0 && read <= size as f64, "{read} of {size}");
    assert!(
        during.contains("sluice_rate_limit{unit=\"calls\"} 50"),
        "{during}"
    );
    assert!(
        during.contains("sluice_rate_limit_window_seconds 1"),
        "{during}"
    );

    let output = wait_bounded(run, Duration::from_secs(90));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&output);
    let text = std::fs::read_to_string(&textfile).expect("the textfile is written at the end");
    assert_eq!(promtool_complaints(&text), "", "{text}");
    let last = samples(&text);
    // The calls family partitions the report's calls; by outcome too.
    assert_eq!(
        total(&last, "sluice_http_requests_total"),
        report["calls"].as_f64().unwrap()
    );
    let mut by_outcome: BTreeMap<String, f64> = BTreeMap::new();
    for (_, labels, value) in last
        .iter()
        .filter(|(n, ..)| n == "sluice_http_requests_total")
    {
        let outcome = labels
            .split(',')
            .find_map(|label| label.strip_prefix("outcome=\""))
            .unwrap()
            .trim_end_matches('"');
        *by_outcome.entry(outcome.to_owned()).or_default() += value;
    }
    let reported: BTreeMap<String, f64> = report["calls_by_outcome"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(outcome, calls)| (outcome.clone(), calls.as_f64().unwrap()))
        .collect();
    assert_eq!(by_outcome, reported);
    assert!(
        by_outcome["delivered"] > 0.0 && by_outcome.len() >= 2,
        "{by_outcome:?}"
    );
    assert!(
        text.contains("status=\"200\""),
        "the HTTP status is a label: {text}"
    );
    for (metric, key) in [
        ("sluice_records_ingested_total", "ingested"),
        ("sluice_records_delivered_total", "delivered"),
        ("sluice_dead_letters_total", "dead_lettered"),
    ] {
        assert_eq!(
            total(&last, metric),
            report[key].as_f64().unwrap(),
            "{metric}"
        );
    }
    assert_eq!(total(&last, "sluice_input_bytes_read_total"), size as f64);
    assert_eq!(
        total(&last, "sluice_http_request_duration_seconds_count"),
        report["calls"].as_f64().unwrap(),
        "every call answered or timed out"
    );
    assert!(total(&last, "process_resident_memory_bytes") > 0.0);
    assert!(!dir.path().join("sluice.prom.partial").exists());
}

#[test]
fn a_textfile_in_a_missing_directory_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let api = MockApi::start(&["--rate-limit", "none", "--failure-rate", "0"]);
    let input = generate(dir.path(), "orders.ndjson", 10, 3);
    let missing = dir.path().join("no-such-dir").join("sluice.prom");
    let output = sluice()
        .args(["run", input.to_str().unwrap(), "--http-url", &api.url()])
        .args(["--metrics-textfile", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no-such-dir") && stderr.contains("not a directory"),
        "{stderr}"
    );
    assert_eq!(api.counts().calls, 0, "nothing sent");
}
