//! Records that name no partition (`--profile json` on a file without
//! `--partition-field`) are each input's one partition: by default they
//! are not ordered, so the calls asked for are used, and the run says so;
//! asked to order them, it keeps one call in flight and says what that
//! costs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use common::{report, sluice, wait_bounded};

/// Calls in flight now, and the most at once.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

/// Accepts every call after 50 ms, counting the calls in flight.
async fn slow(State(calls): State<Arc<InFlight>>) {
    let now = calls.now.fetch_add(1, SeqCst) + 1;
    calls.most.fetch_max(now, SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    calls.now.fetch_sub(1, SeqCst);
}

/// Runs 40 records `{"n":N}` through `sluice run --concurrency 8` (and
/// `extra`) against an API of its own; returns the most calls in flight at
/// once, the report and what the run said on stderr.
fn run(extra: &[&str]) -> (usize, serde_json::Value, String) {
    let tmp = tempfile::tempdir().unwrap();
    let lines: String = (1..=40).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    std::fs::write(tmp.path().join("numbers.ndjson"), lines).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/records", listener.local_addr().unwrap());
    let calls = Arc::new(InFlight::default());
    let app = Router::new()
        .route("/records", post(slow))
        .with_state(Arc::clone(&calls));
    runtime.spawn(async move { axum::serve(listener, app).await });
    let child = sluice()
        .current_dir(tmp.path())
        .args(["run", "numbers.ndjson", "--profile", "json"])
        .args(["--http-url", &url, "--rate-limit", "none"])
        .args(["--concurrency", "8", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_bounded(child, Duration::from_secs(60));
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "{said}");
    let report = report(&output);
    assert_eq!(report["delivered"], 40, "{report}");
    runtime.shutdown_background();
    (calls.most.load(SeqCst), report, said)
}

#[test]
fn records_without_a_partition_use_the_calls_asked_for_and_the_run_says_so() {
    let (most, report, said) = run(&[]);
    assert!(most > 1, "calls went one at a time");
    assert!(most <= 8, "{most} calls at once, beyond --concurrency");
    assert_eq!(report["ordering"], "none");
    assert!(said.contains("name no partition"), "{said}");
    assert_eq!(
        report["ordering_note"].as_str(),
        said.lines()
            .next()
            .and_then(|line| line.strip_prefix("sluice: "))
    );
}

#[test]
fn ordering_them_by_partition_keeps_one_call_in_flight_and_says_what_it_costs() {
    let (most, report, said) = run(&["--ordering", "partition"]);
    assert_eq!(most, 1);
    assert_eq!(report["ordering"], "partition");
    assert!(said.contains("one at a time"), "{said}");
    assert!(
        report["ordering_note"]
            .as_str()
            .unwrap()
            .contains("one at a time")
    );
}

#[test]
fn records_that_name_their_partition_are_ordered_without_a_word() {
    let (_, report, said) = run(&["--partition-field", "n"]);
    assert_eq!(report["ordering"], "partition");
    assert!(report["ordering_note"].is_null());
    assert!(!said.contains("partition"), "{said}");
}
