//! The `--json` reports against their JSON Schemas in `schemas/`: real
//! reports of `sluice run` (a file into `sluice mock-api`, a JetStream
//! stream) and of `sluice simulate` validate, and the same reports with a
//! field added or removed, anywhere the keys are fixed, do not; so a field
//! added to `RunSummary` or `RunReport` without the schema fails here. The
//! schemas themselves: valid 2020-12, every field required and described
//! with its unit. And the human summary of `sluice run` tells the time in
//! the pipeline from the API's answer time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::services::{self, Jet, NATS};
use common::{MockApi, eventually, expected, generate, report, signal, sluice, wait_bounded};
use jsonschema::Validator;
use serde_json::{Value, json};

/// The schema `schemas/NAME`, parsed.
fn schema(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A validator of the schema `schemas/NAME`, itself checked against the
/// 2020-12 meta-schema.
fn validator(name: &str) -> Validator {
    let schema = schema(name);
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{name}"
    );
    if let Err(error) = jsonschema::meta::validate(&schema) {
        panic!(
            "{name} is no valid JSON Schema: {error} at {}",
            error.instance_path()
        );
    }
    jsonschema::validator_for(&schema).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// Why `report` does not validate, one line per error.
fn errors(validator: &Validator, report: &Value) -> Vec<String> {
    validator
        .iter_errors(report)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect()
}

fn assert_valid(validator: &Validator, report: &Value, what: &str) {
    let errors = errors(validator, report);
    assert!(
        errors.is_empty(),
        "{what} does not match its schema:\n{}\nthe report: {report:#}",
        errors.join("\n")
    );
}

fn assert_invalid(validator: &Validator, report: &Value, what: &str) {
    assert!(
        !errors(validator, report).is_empty(),
        "the schema accepts {what}"
    );
}

/// The report with `change` made to the object at `pointer`.
fn changed(
    report: &Value,
    pointer: &str,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Value {
    let mut report = report.clone();
    let object = report
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {pointer:?}"));
    change(object);
    report
}

/// Checks that the schema is not vacuous for `report`: at each object of
/// fixed keys (`fixed`, JSON pointers; "" is the report), a field added is
/// refused, and so is each field removed.
fn assert_every_field_counts(validator: &Validator, report: &Value, fixed: &[&str], what: &str) {
    for &pointer in fixed {
        let added = changed(report, pointer, |object| {
            object.insert("a_field_not_in_the_schema".to_owned(), json!(1));
        });
        assert_invalid(
            validator,
            &added,
            &format!("{what} with a field added at {pointer:?}"),
        );
        let keys: Vec<String> = report
            .pointer(pointer)
            .and_then(Value::as_object)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert!(!keys.is_empty(), "{what}: nothing at {pointer:?}");
        for key in keys {
            let removed = changed(report, pointer, |object| {
                object.remove(&key);
            });
            assert_invalid(
                validator,
                &removed,
                &format!("{what} without {pointer}/{key}"),
            );
        }
    }
}

/// The first key of the map at `pointer` of `report`.
fn first_key(report: &Value, pointer: &str) -> String {
    report
        .pointer(pointer)
        .and_then(Value::as_object)
        .and_then(|map| map.keys().next().cloned())
        .unwrap_or_else(|| panic!("an empty map at {pointer}: {report:#}"))
}

/// Checks the parts of a `sluice run --json` report the schema names
/// besides its fixed keys: a stream's counts, the outcomes, the tuples of
/// the checkpoints and the order are refused when malformed.
fn assert_run_report_is_checked_closely(validator: &Validator, report: &Value, what: &str) {
    let stream = format!("/streams/{}", first_key(report, "/streams"));
    assert_every_field_counts(validator, report, &["", &stream], what);
    let mut bad = report.clone();
    bad["calls_by_outcome"]["teleported"] = json!(1);
    assert_invalid(
        validator,
        &bad,
        &format!("{what} with an unknown call outcome"),
    );
    let mut bad = report.clone();
    bad["dead_letter_reasons"]["bored"] = json!(1);
    assert_invalid(
        validator,
        &bad,
        &format!("{what} with an unknown dead-letter reason"),
    );
    let mut bad = report.clone();
    bad["ordering"] = json!("random");
    assert_invalid(validator, &bad, &format!("{what} with an unknown order"));
    let mut bad = report.clone();
    bad["elapsed_seconds"] = json!("5s");
    assert_invalid(validator, &bad, &format!("{what} with a duration as text"));
    let mut bad = report.clone();
    bad["delivered"] = json!(-1);
    assert_invalid(validator, &bad, &format!("{what} with a negative count"));
    if report["checkpoints"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        let mut bad = report.clone();
        bad["checkpoints"][0].as_array_mut().unwrap().push(json!(0));
        assert_invalid(
            validator,
            &bad,
            &format!("{what} with a checkpoint of four parts"),
        );
        let mut bad = report.clone();
        bad["checkpoints"][0].as_array_mut().unwrap().pop();
        assert_invalid(
            validator,
            &bad,
            &format!("{what} with a checkpoint of two parts"),
        );
    }
}

#[test]
fn the_schemas_require_and_describe_every_field_with_its_unit() {
    for name in ["run-report.schema.json", "simulate-report.schema.json"] {
        let schema = schema(name);
        validator(name);
        let mut problems = Vec::new();
        check_subschema(&schema, &schema, "#", &mut problems);
        assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
    }
}

/// Words that say a number's unit (or that it has none).
const UNITS: [&str; 11] = [
    "(records",
    "(calls",
    "(seconds",
    "(milliseconds",
    "(records per second",
    "(a share, 0 to 1",
    "(bytes",
    "(lines",
    "(attempts",
    "calls per window",
    "no unit",
];

/// Collects into `problems` what `node` (at `at` in `root`) breaks of the
/// rules: an object of fixed keys admits no other (`additionalProperties:
/// false`) and requires every key (serde writes them all, `null` when
/// absent); each of its properties, each value of a map and each part of
/// a tuple has a description, and a number's names its unit.
fn check_subschema(root: &Value, node: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        return;
    };
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        if object.get("additionalProperties") != Some(&json!(false)) {
            problems.push(format!(
                "{at}: fixed keys without additionalProperties: false"
            ));
        }
        let mut required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        required.sort_unstable();
        let mut keys: Vec<&str> = properties.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if required != keys {
            problems.push(format!("{at}: required {required:?}, properties {keys:?}"));
        }
        for (key, property) in properties {
            check_described(root, property, &format!("{at}/properties/{key}"), problems);
        }
    }
    if let Some(values) = object.get("additionalProperties").filter(|v| v.is_object()) {
        check_described(
            root,
            values,
            &format!("{at}/additionalProperties"),
            problems,
        );
    }
    if let Some(parts) = object.get("prefixItems").and_then(Value::as_array) {
        for (i, part) in parts.iter().enumerate() {
            check_described(root, part, &format!("{at}/prefixItems/{i}"), problems);
        }
    }
    for (key, child) in object {
        match child {
            Value::Object(_) => check_subschema(root, child, &format!("{at}/{key}"), problems),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_subschema(root, item, &format!("{at}/{key}/{i}"), problems);
                }
            }
            _ => {}
        }
    }
}

/// Checks that `property` has a description, naming a unit when it is a
/// number (or a map of numbers described elsewhere).
fn check_described(root: &Value, property: &Value, at: &str, problems: &mut Vec<String>) {
    let resolved = match property.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or_else(|| panic!("{at}: $ref {reference} leads nowhere")),
        None => property,
    };
    let description = property
        .get("description")
        .or_else(|| resolved.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if description.trim().is_empty() {
        problems.push(format!("{at}: no description"));
        return;
    }
    let types: Vec<&str> = match resolved.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let numeric = types.iter().any(|t| matches!(*t, "number" | "integer"));
    if numeric && !UNITS.iter().any(|unit| description.contains(unit)) {
        problems.push(format!(
            "{at}: a number whose unit is not said: {description:?}"
        ));
    }
}

#[test]
fn a_run_report_of_files_into_the_mock_api_matches_its_schema() {
    let validator = validator("run-report.schema.json");
    let dir = tempfile::tempdir().unwrap();
    // 15 % of the calls fail (503): calls of several outcomes.
    let api = MockApi::start(&["--rate-limit", "200/s", "--seed", "7"]);
    let input = generate(dir.path(), "schema_records.ndjson", 200, 7);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    // Dead letters for sure, whatever the generator drew.
    file.write_all(b"not json\n{\"source\": \"nowhere\"\nnot json either\n")
        .unwrap();
    drop(file);
    let checkpoint = dir.path().join("schema_records.checkpoint.json");
    let dead = dir.path().join("schema_records.dead-letters");
    let output = wait_bounded(
        sluice()
            .current_dir(dir.path())
            .args(["run", input.to_str().unwrap(), "--http-url", &api.url()])
            .args(["--rate-limit", "200/s", "--max-attempts", "30", "--json"])
            .args(["--checkpoint", checkpoint.to_str().unwrap()])
            .args(["--dead-letters", dead.to_str().unwrap()])
            // More letters than that: the report says so (exit 4).
            .args(["--max-dead-letters", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    assert_eq!(
        output.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&output);

    // The parts the schema describes beyond the plain counts are present.
    assert!(report["dead_lettered"].as_u64().unwrap() >= 3, "{report:#}");
    assert!(report["dead_letter_reasons"]["invalid"].as_u64().unwrap() >= 3);
    assert_eq!(report["dead_letter_file"], json!(dead));
    assert_eq!(report["too_many_dead_letters"], "1");
    let checkpoints = report["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 1, "{report:#}");
    assert_eq!(
        checkpoints[0][0],
        json!(std::fs::canonicalize(&input).unwrap_or(input.clone()))
    );
    assert!(report["calls_by_outcome"]["delivered"].as_u64().unwrap() > 0);
    assert!(!report["streams"].as_object().unwrap().is_empty());
    assert!(report["api_p50_latency_ms"].as_f64().unwrap() > 0.0);
    let by_outcome: u64 = report["calls_by_outcome"]
        .as_object()
        .unwrap()
        .values()
        .map(|calls| calls.as_u64().unwrap())
        .sum();
    assert_eq!(by_outcome, report["calls"].as_u64().unwrap(), "{report:#}");

    assert_valid(&validator, &report, "sluice run --json (files)");
    assert_run_report_is_checked_closely(&validator, &report, "sluice run --json (files)");
}

#[test]
fn simulate_reports_match_their_schema() {
    let validator = validator("simulate-report.schema.json");
    let base = [
        "simulate",
        "--json",
        "--virtual-time",
        "--seed",
        "1",
        "--duration",
        "5s",
    ];
    // The defaults, and an API with no quota: its nulls.
    for extra in [&[][..], &["--api-rate-limit", "none"][..]] {
        let what = format!("sluice simulate --json {}", extra.join(" "));
        let output = wait_bounded(
            sluice()
                .args(base)
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
            Duration::from_secs(120),
        );
        // 0 when every check passed, 1 when one did not: a report either way.
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{what}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report = report(&output);
        assert_valid(&validator, &report, &what);
        let source = format!("/by_source/{}", first_key(&report, "/by_source"));
        assert_every_field_counts(
            &validator,
            &report,
            &[
                "",
                "/api",
                "/accuracy",
                "/accuracy/checks/0",
                "/checks/0",
                &source,
            ],
            &what,
        );
        let mut bad = report.clone();
        bad["by_priority"]["5"] = json!(1);
        assert_invalid(&validator, &bad, &format!("{what} with a priority 5"));
        let mut bad = report.clone();
        bad["error_rate"] = json!(1.5);
        assert_invalid(&validator, &bad, &format!("{what} with a share above 1"));
        if extra.is_empty() {
            assert_eq!(report["api_rate_limit"], 15, "{what}");
            assert!(report["ceiling_utilization"].is_number(), "{what}");
        } else {
            assert!(report["api_rate_limit"].is_null(), "{what}");
            assert!(report["ceiling_utilization"].is_null(), "{what}");
            assert!(report["client_rate_limit"].is_null(), "{what}");
        }
    }
}

#[test]
fn a_run_report_of_a_jetstream_stream_matches_its_schema() {
    if !services::reachable(&[("NATS", NATS)]) {
        return;
    }
    let validator = validator("run-report.schema.json");
    let dir = tempfile::tempdir().unwrap();
    // Names of this test's own; the stream is deleted when `jet` drops.
    let jet = Jet {
        url: format!("nats://{NATS}"),
        stream: services::unique("SLUICE_REPORT_SCHEMA"),
        prefix: services::unique("report_schema"),
        consumer: services::unique("report_schema_group"),
    };
    let file = jet.publish(dir.path(), 120, 2, 21);
    let (valid, invalid) = expected(&file);

    let api = MockApi::start(&["--rate-limit", "200/s", "--seed", "21"]);
    let dead = dir.path().join("jetstream.dead-letters");
    let child = sluice()
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .args(["run", &jet.url, "--nats-stream", &jet.stream])
        .args(["--nats-subject", &format!("{}.>", jet.prefix)])
        .args(["--nats-consumer", &jet.consumer])
        .args(["--http-url", &api.url(), "--rate-limit", "200/s"])
        .args(["--max-attempts", "30", "--max-dead-letters", "100%"])
        .args(["--dead-letters", dead.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A JetStream run does not end by itself: once every record is
    // delivered or dead-lettered, a signal stops it, and it reports.
    eventually(Duration::from_secs(90), "every record resolved", || {
        let letters = std::fs::read_to_string(&dead).map_or(0, |text| text.lines().count());
        api.counts().distinct_records_delivered() >= valid.len() as u64 && letters >= invalid.len()
    });
    signal(&child, "-TERM");
    let output = wait_bounded(child, Duration::from_secs(30));
    assert_eq!(
        output.status.code(),
        Some(3),
        "interrupted: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&output);
    assert_eq!(report["interrupted"], true, "{report:#}");
    assert_eq!(report["delivered"], valid.len() as u64, "{report:#}");
    assert_eq!(
        report["checkpoints"],
        json!([]),
        "no checkpoint of a broker"
    );

    assert_valid(&validator, &report, "sluice run --json (JetStream)");
    assert_run_report_is_checked_closely(&validator, &report, "sluice run --json (JetStream)");
}

#[test]
fn the_human_summary_tells_the_time_in_the_pipeline_from_the_apis_answer_time() {
    let dir = tempfile::tempdir().unwrap();
    // Half the calls fail: calls of two outcomes, for sure.
    let api = MockApi::start(&[
        "--rate-limit",
        "none",
        "--failure-rate",
        "0.5",
        "--seed",
        "3",
    ]);
    let input = generate(dir.path(), "human_summary.ndjson", 40, 3);
    let output = wait_bounded(
        sluice()
            .current_dir(dir.path())
            .args(["run", input.to_str().unwrap(), "--http-url", &api.url()])
            .args(["--rate-limit", "none", "--max-attempts", "30"])
            .args(["--max-dead-letters", "100%", "--dead-letters", "none"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |start: &str| {
        text.lines()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in:\n{text}"))
            .to_owned()
    };
    let queued = line("⏱️  time in pipeline (queue + calls): p50 ");
    assert!(queued.contains("ms, p99 "), "{queued}");
    let answered = line("⏱️  API answer time: p50 ");
    assert!(answered.contains("ms, p99 "), "{answered}");
    let outcomes = line("📞 calls by outcome: ");
    assert!(outcomes.contains("delivered "), "{outcomes}");
    assert!(outcomes.contains("failed "), "{outcomes}");
    assert!(
        !text.contains("intake to delivery"),
        "the old wording:\n{text}"
    );
}
