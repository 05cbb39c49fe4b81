//! The NDJSON dead-letter file: each letter is in the file, whole, once
//! `dead_letter` returns `Ok`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_files::NdjsonDeadLetters;
use sluice_processor::{DeadLetter, DeadLetterReason, DeadLetterSink, RecordId, StreamName};

fn letter(
    sequence: u64,
    record: Option<Value>,
    raw: Option<&str>,
    reason: DeadLetterReason,
) -> DeadLetter<Value> {
    DeadLetter {
        id: RecordId {
            stream: StreamName::new("letters").unwrap(),
            partition: 2,
            sequence,
        },
        record,
        raw: raw.map(str::to_owned),
        reason,
    }
}

fn read(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn each_letter_is_in_the_file_when_ok_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    let outlet = NdjsonDeadLetters::open(&path).await.unwrap();
    assert_eq!(outlet.path(), path);

    let first = letter(
        7,
        None,
        Some("{oops"),
        DeadLetterReason::Invalid("not JSON".into()),
    );
    outlet.dead_letter(&first).await.unwrap();
    assert_eq!(
        read(&path),
        [json!({
            "stream": "letters", "partition": 2, "sequence": 7,
            "reason": "invalid: not JSON", "kind": "invalid", "raw": "{oops",
        })]
    );

    let second = letter(
        9,
        Some(json!({"amount": 3})),
        None,
        DeadLetterReason::RetriesExhausted {
            attempts: 5,
            last_error: "503".into(),
        },
    );
    outlet.dead_letter(&second).await.unwrap();
    let letters = read(&path);
    assert_eq!(letters.len(), 2);
    assert_eq!(
        letters[1],
        json!({
            "stream": "letters", "partition": 2, "sequence": 9,
            "reason": "gave up after 5 attempts; last error: 503",
            "kind": "retries_exhausted", "record": {"amount": 3},
        })
    );
}

#[tokio::test]
async fn a_reopened_file_is_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    for sequence in 1..=2 {
        let outlet = NdjsonDeadLetters::open(&path)
            .await
            .unwrap()
            .with_sync(false);
        let letter = letter(
            sequence,
            None,
            None,
            DeadLetterReason::Rejected("no".into()),
        );
        outlet.dead_letter(&letter).await.unwrap();
    }
    let sequences: Vec<_> = read(&path).iter().map(|l| l["sequence"].clone()).collect();
    assert_eq!(sequences, [json!(1), json!(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_letters_are_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.ndjson");
    let outlet = Arc::new(NdjsonDeadLetters::open(&path).await.unwrap());
    let raw = "x".repeat(10_000);
    let tasks: Vec<_> = (0..64)
        .map(|sequence| {
            let outlet = Arc::clone(&outlet);
            let raw = raw.clone();
            tokio::spawn(async move {
                let reason = DeadLetterReason::TimedOut {
                    limit: Duration::from_secs(1),
                    last_error: "slow".into(),
                };
                outlet
                    .dead_letter(&letter(sequence, None, Some(&raw), reason))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut sequences: Vec<u64> = read(&path)
        .iter()
        .map(|l| {
            assert_eq!(l["raw"].as_str().unwrap().len(), 10_000);
            assert_eq!(l["kind"], "timed_out");
            l["sequence"].as_u64().unwrap()
        })
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (0..64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("dead.ndjson");
    let error = NdjsonDeadLetters::open(&path).await.unwrap_err();
    assert_eq!(error.path, path);
    assert!(error.to_string().contains("missing-dir"), "{error}");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_letter_that_cannot_be_written_is_refused() {
    // Every write to /dev/full fails with "no space left on device".
    let outlet = NdjsonDeadLetters::open("/dev/full").await.unwrap();
    let letter = letter(1, None, Some("x"), DeadLetterReason::Invalid("bad".into()));
    let error = outlet.dead_letter(&letter).await.unwrap_err();
    assert!(error.contains("/dev/full"), "{error}");
    assert!(error.contains("letters/2#1"), "{error}");
    // And again: the outlet is still usable after a failure.
    assert!(outlet.dead_letter(&letter).await.is_err());
}
