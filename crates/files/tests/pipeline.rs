//! End to end: a real `StreamProcessor` running the `json` profile over a
//! file, with the NDJSON dead-letter file and the checkpointer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;
use sluice_files::{
    Checkpoint, Checkpointer, LineSource, NdjsonDeadLetters, Position, SourceOptions,
};
use sluice_processor::{Envelope, SendError, Sink, StreamProcessor};
use sluice_profiles::json::{JsonProfile, JsonRecord};

use common::{Collect, config, eventually};

fn profile() -> JsonProfile {
    JsonProfile::new(Default::default()).unwrap()
}

fn dead_letters(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn a_file_is_delivered_its_bad_lines_dead_lettered_and_its_end_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.jsonl");
    let mut text = Vec::new();
    text.extend_from_slice(b"{\"id\":1}\n"); // 1
    text.extend_from_slice(b"not json\n"); // 2
    text.extend_from_slice(b"\n"); // 3: blank
    text.extend_from_slice(b"{\"id\":2}\r\n"); // 4
    text.extend_from_slice(b"[1,2]\n"); // 5: not an object
    text.extend_from_slice(format!("{{\"big\":\"{}\"}}\n", "x".repeat(200)).as_bytes()); // 6
    text.extend_from_slice(b"{\"id\":\"caf\xff\"}\n"); // 7: lossy, still JSON
    text.extend_from_slice(b"{\"id\":3}\n"); // 8
    std::fs::write(&input, &text).unwrap();
    let checkpoint = dir.path().join("orders.checkpoint.json");
    let dead = dir.path().join("orders.dead.ndjson");

    let options = SourceOptions {
        max_line_bytes: 64,
        ..SourceOptions::default()
    };
    let source = LineSource::resume(&input, &checkpoint, options)
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    let checkpointer =
        Checkpointer::start(&checkpoint, progress.clone(), Duration::from_millis(20));
    let outlet = NdjsonDeadLetters::open(&dead).await.unwrap();
    let sink = Collect::<JsonRecord>::default();
    let processor = StreamProcessor::new(profile(), sink.clone(), config())
        .unwrap()
        .with_dead_letters(outlet);
    let report = processor.start([source]).finish().await;
    let saved = checkpointer.finish().await.unwrap();

    assert!(report.is_conserved(), "{}", report.conservation());
    assert_eq!(report.metrics.delivered, 4);
    assert_eq!(report.metrics.dead_lettered, 3);
    assert_eq!(report.metrics.handed_back, 0);
    assert!(report.dead_letters.is_empty(), "all went to the outlet");

    let sent: Vec<_> = sink
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.id.to_string(), e.record.as_str().to_owned()))
        .collect();
    assert_eq!(
        sent,
        [
            ("orders/0#1".to_owned(), "{\"id\":1}".to_owned()),
            ("orders/0#4".to_owned(), "{\"id\":2}".to_owned()),
            (
                "orders/0#7".to_owned(),
                "{\"id\":\"caf\u{fffd}\"}".to_owned()
            ),
            ("orders/0#8".to_owned(), "{\"id\":3}".to_owned()),
        ]
    );

    let letters = dead_letters(&dead);
    let lines: Vec<_> = letters
        .iter()
        .map(|l| l["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [2, 5, 6], "the bad lines, by line number");
    assert!(
        letters
            .iter()
            .all(|l| l["stream"] == "orders" && l["kind"] == "invalid")
    );
    let reasons: Vec<_> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons[0].starts_with("invalid: not JSON"),
        "{}",
        reasons[0]
    );
    assert_eq!(reasons[1], "invalid: not a JSON object: found an array");
    assert_eq!(
        reasons[2],
        "invalid: too long: 211 bytes, over the source's maximum record length"
    );
    assert_eq!(letters[0]["raw"], "not json");
    assert_eq!(letters[2]["raw"].as_str().unwrap().len(), 64);

    let len = text.len() as u64;
    assert_eq!(
        saved,
        Position {
            offset: len,
            lines: 8
        }
    );
    let on_disk = Checkpoint::load(&checkpoint).await.unwrap().unwrap();
    assert_eq!(on_disk.position(), saved);
    assert_eq!(on_disk.path, std::fs::canonicalize(&input).unwrap());
    let resolutions = progress.resolutions();
    assert_eq!(
        (
            resolutions.delivered,
            resolutions.dead_lettered,
            resolutions.skipped
        ),
        (4, 3, 1)
    );
    assert_eq!(resolutions.not_processed, 0);
}

/// Delivers lines before line `stall`; hangs on it and after.
struct StallAt(u64, Collect<JsonRecord>);

#[async_trait]
impl Sink<JsonRecord> for StallAt {
    async fn send(&self, batch: &[Envelope<JsonRecord>]) -> Result<(), SendError> {
        if batch.iter().any(|e| e.id.sequence >= self.0) {
            futures::future::pending::<()>().await;
        }
        self.1.send(batch).await
    }
}

#[tokio::test]
async fn lines_handed_back_at_a_stop_hold_the_checkpoint_and_are_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("stall.jsonl");
    let text: String = (1..=10).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    std::fs::write(&input, &text).unwrap();
    let checkpoint = dir.path().join("stall.checkpoint.json");

    let source = LineSource::resume(&input, &checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    let checkpointer =
        Checkpointer::start(&checkpoint, progress.clone(), Duration::from_millis(20));
    let delivered = Collect::default();
    let processor =
        StreamProcessor::new(profile(), StallAt(5, delivered.clone()), config()).unwrap();
    let handle = processor.start([source]);
    eventually(|| progress.resolutions().delivered == 4).await;
    let report = handle.stop().await;
    let saved = checkpointer.finish().await.unwrap();

    assert!(report.is_conserved(), "{}", report.conservation());
    assert_eq!(report.metrics.delivered, 4);
    assert!(report.metrics.handed_back >= 1);
    assert_eq!(
        saved,
        Position {
            offset: 32,
            lines: 4
        },
        "just before line 5"
    );
    assert_eq!(progress.blocked_at(), Some(saved));

    // The next run starts at line 5.
    let source = LineSource::resume(&input, &checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let numbers: Vec<_> = source.map(|i| i.payload.position.sequence).collect().await;
    assert_eq!(numbers, (5..=10).collect::<Vec<_>>());
}
