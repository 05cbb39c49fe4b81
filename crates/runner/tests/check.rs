//! `sluice check`: everything a run would use, checked without reading or
//! sending a record; each problem named on its own line, exit 2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{MockApi, sluice, wait_bounded};

/// `sluice check INPUTS... --profile json --http-url URL EXTRA...` in
/// `dir`; the input is `orders.ndjson` unless `EXTRA` starts with one.
fn check(dir: &Path, url: &str, extra: &[&str]) -> Output {
    let inputs: &[&str] = match extra.first() {
        Some(input) if !input.starts_with("--") => &[],
        _ => &["orders.ndjson"],
    };
    let child = sluice()
        .current_dir(dir)
        .arg("check")
        .args(inputs)
        .args(extra)
        .args(["--profile", "json", "--http-url", url])
        .env_remove("SLUICE_TEST_UNSET_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, Duration::from_secs(60))
}

/// The line of `output` about `what`.
fn line<'a>(output: &'a str, what: &str) -> &'a str {
    output
        .lines()
        .find(|line| line[4..].starts_with(what))
        .unwrap_or_else(|| panic!("no line about {what} in:\n{output}"))
}

#[test]
fn check_passes_a_good_configuration_and_names_each_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("orders.ndjson"), "{\"id\":1}\n").unwrap();
    std::fs::write(dir.join("bad-schema.json"), r#"{"type": 12}"#).unwrap();
    let api = MockApi::start(&[]);

    let good = check(dir, &api.url(), &[]);
    let stdout = String::from_utf8_lossy(&good.stdout).into_owned();
    assert_eq!(good.status.code(), Some(0), "{stdout}");
    assert!(line(&stdout, "API").starts_with("✓"), "{stdout}");
    assert!(line(&stdout, "source").contains("1 file(s) can be read"));
    assert_eq!(api.counts().calls, 0, "check sends no record");

    let closed = format!("http://{}/records", common::closed_address());
    let bad_header = [
        "--http-header",
        "Authorization: Bearer ${SLUICE_TEST_UNSET_TOKEN}",
    ];
    let cases: [(&str, &[&str], &str, &str); 6] = [
        ("API", &[], "API", "cannot reach the API"),
        ("input", &["missing.ndjson"], "source", "missing.ndjson"),
        (
            "schema",
            &["--schema", "bad-schema.json"],
            "profile",
            "schema",
        ),
        ("header", &bad_header, "sink", "SLUICE_TEST_UNSET_TOKEN"),
        (
            "NATS",
            &["nats://127.0.0.1:1", "--nats-stream", "S"],
            "source",
            "127.0.0.1:1",
        ),
        (
            "Redis",
            &[
                "--shared-limit",
                "redis://127.0.0.1:1/check",
                "--rate-limit",
                "10/s",
            ],
            "shared limit",
            "127.0.0.1:1",
        ),
    ];
    for (name, extra, what, says) in cases {
        let url = if name == "API" {
            closed.clone()
        } else {
            api.url()
        };
        let output = check(dir, &url, extra);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert_eq!(output.status.code(), Some(2), "{name}: {stdout}");
        let line = line(&stdout, what);
        assert!(
            line.starts_with("✗") && line.contains(says),
            "{name}: {line}"
        );
    }
    assert_eq!(api.counts().calls, 0);
}
