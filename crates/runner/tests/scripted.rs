//! `sluice run` against a scripted API on 127.0.0.1: how it answers 429
//! with `Retry-After`, 400 and 503.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{dead_letters, report, sluice, wait_bounded};

/// Each call's record number and when it arrived.
type Calls = Arc<Mutex<Vec<(u64, Instant)>>>;

/// Record 2: 429 with `Retry-After: 2` the first time. Record 4: 400
/// always. Record 6: 503 twice. Every other answer: 200.
async fn scripted(State(calls): State<Calls>, body: String) -> Response {
    let record: serde_json::Value = serde_json::from_str(&body).unwrap();
    let n = record["n"].as_u64().unwrap();
    let seen = {
        let mut calls = calls.lock().unwrap();
        calls.push((n, Instant::now()));
        calls.iter().filter(|(m, _)| *m == n).count()
    };
    match (n, seen) {
        (2, 1) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "2")],
            "slow down",
        )
            .into_response(),
        (4, _) => (StatusCode::BAD_REQUEST, "field n: 4 is not allowed").into_response(),
        (6, 1..=2) => (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response(),
        _ => StatusCode::OK.into_response(),
    }
}

#[test]
fn a_429_pauses_for_its_retry_after_a_400_dead_letters_its_record_only_and_a_503_is_retried() {
    let calls: Calls = Arc::default();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/records", post(scripted))
        .with_state(Arc::clone(&calls));
    runtime.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("numbers.ndjson");
    let lines: String = (1..=8).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    std::fs::write(&input, lines).unwrap();
    let dead = dir.path().join("dead.ndjson");
    let run = sluice()
        .args([
            "run",
            "--profile",
            "json",
            "--input",
            input.to_str().unwrap(),
        ])
        .args([
            "--http-url",
            &format!("http://{addr}/records"),
            "--rate-limit",
            "none",
        ])
        .args(["--dead-letters", dead.to_str().unwrap(), "--json"])
        // One letter of eight, on purpose.
        .args(["--max-dead-letters", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_bounded(run, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&output);
    assert_eq!(
        (
            report["delivered"].as_u64(),
            report["dead_lettered"].as_u64()
        ),
        (Some(7), Some(1))
    );

    let calls = calls.lock().unwrap().clone();
    let mut by_record: BTreeMap<u64, Vec<Instant>> = BTreeMap::new();
    for (n, at) in &calls {
        by_record.entry(*n).or_default().push(*at);
    }
    // The 429: the retry waited the 2 s asked for (a lower bound the
    // client cannot beat), and not much longer.
    let [refused, retried] = by_record[&2][..] else {
        panic!("record 2 was sent {} times", by_record[&2].len())
    };
    let pause = retried - refused;
    assert!(pause >= Duration::from_secs(2), "{pause:?}");
    assert!(pause < Duration::from_secs(10), "{pause:?}");
    // In order: record 3 waited behind record 2.
    assert!(by_record[&3][0] > retried);
    // The 400: one attempt, that record only, dead-lettered with the reason.
    assert_eq!(by_record[&4].len(), 1);
    let letters = dead_letters(&dead);
    assert_eq!(letters.len(), 1);
    let (stream, partition, sequence, reason) = &letters[0];
    assert_eq!((stream.as_str(), *partition, *sequence), ("numbers", 0, 4));
    assert!(
        reason.contains("400") && reason.contains("not allowed"),
        "{reason}"
    );
    // The 503: retried until it went through.
    assert_eq!(by_record[&6].len(), 3);
    for n in [1, 3, 5, 7, 8] {
        assert_eq!(by_record[&n].len(), 1, "record {n}");
    }
}
