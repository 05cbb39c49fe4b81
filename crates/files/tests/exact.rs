//! Exact checkpoints: the lines resolved past the watermark are saved with
//! it and not read again; the checkpoint is written at the first
//! resolution at once, then at most once per interval.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use sluice_files::{
    Checkpoint, Checkpointer, LineSource, NdjsonDeadLetters, Position, Progress, SourceOptions,
};
use sluice_processor::{
    Acknowledge, DeliveryOrder, Envelope, ProcessorConfig, Resolution, SendError, Sink,
    StreamProcessor,
};
use sluice_profiles::json::{JsonProfile, JsonRecord};

use common::{Collect, config, eventually};

/// Delivers every record but that of line `held`, on which it hangs
/// until the stop.
#[derive(Clone, Default)]
struct HoldLine {
    held: u64,
    delivered: Collect<JsonRecord>,
}

#[async_trait]
impl Sink<JsonRecord> for HoldLine {
    async fn send(&self, batch: &[Envelope<JsonRecord>]) -> Result<(), SendError> {
        if batch.iter().any(|e| e.id.sequence == self.held) {
            futures::future::pending::<()>().await;
        }
        self.delivered.send(batch).await
    }
}

/// One run over `input` from `checkpoint`, with the dead letters appended
/// to `dead`, delivering through `sink` until `until` lines are resolved,
/// then stopped. Returns the lines delivered (sorted) and the checkpoint
/// saved.
async fn run(
    input: &Path,
    checkpoint: &Path,
    dead: &Path,
    sink: HoldLine,
    until: u64,
) -> (Vec<u64>, Checkpoint) {
    let source = LineSource::resume(input, checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    let checkpointer = Checkpointer::start(checkpoint, progress.clone(), Duration::from_millis(20));
    let outlet = NdjsonDeadLetters::open(dead).await.unwrap();
    // One record per worker, in no order: a held line holds no other.
    let unordered = ProcessorConfig {
        ordering: DeliveryOrder::None,
        take_size: 1,
        ..config()
    };
    let profile = JsonProfile::new(Default::default()).unwrap();
    let handle = StreamProcessor::new(profile, sink.clone(), unordered)
        .unwrap()
        .with_dead_letters(outlet)
        .start([source]);
    eventually(|| {
        let done = progress.resolutions();
        done.delivered + done.dead_lettered == until
    })
    .await;
    let report = handle.stop().await;
    assert!(report.is_conserved(), "{}", report.conservation());
    checkpointer.finish().await.unwrap();
    let mut delivered: Vec<_> = sink
        .delivered
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.id.sequence)
        .collect();
    delivered.sort_unstable();
    let saved = Checkpoint::load(checkpoint).await.unwrap().unwrap();
    (delivered, saved)
}

#[tokio::test]
async fn a_clean_stop_and_resume_resends_nothing_delivered_or_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.jsonl");
    let text: String = (1..=10)
        .map(|n| match n {
            4 | 8 => "not json\n".to_owned(),
            _ => format!("{{\"n\":{n}}}\n"),
        })
        .collect();
    std::fs::write(&input, &text).unwrap();
    let checkpoint = dir.path().join("orders.checkpoint.json");
    let dead = dir.path().join("orders.dead.ndjson");

    // Line 2 hangs: everything after it is resolved past the watermark.
    let holding = HoldLine {
        held: 2,
        ..HoldLine::default()
    };
    let (first, saved) = run(&input, &checkpoint, &dead, holding, 9).await;
    assert_eq!(first, [1, 3, 5, 6, 7, 9, 10]);
    assert_eq!(
        saved.position(),
        Position {
            offset: 8,
            lines: 1
        },
        "before line 2"
    );
    let resolved: Vec<[u64; 4]> = saved.resolved.iter().map(|&s| s.into()).collect();
    let len = text.len() as u64;
    assert_eq!(resolved, [[16, 2, len, 10]], "lines 3 to 10, in one span");
    let letters = std::fs::read_to_string(&dead).unwrap();
    assert_eq!(letters.lines().count(), 2);

    // Resumed: line 2 alone; its dead letters not written again.
    let (second, saved) = run(&input, &checkpoint, &dead, HoldLine::default(), 1).await;
    assert_eq!(second, [2]);
    assert_eq!(
        saved.position(),
        Position {
            offset: len,
            lines: 10
        }
    );
    assert!(saved.resolved.is_empty(), "passed by the watermark");
    assert_eq!(std::fs::read_to_string(&dead).unwrap(), letters);
}

fn checkpointed(dir: &Path) -> (PathBuf, Progress) {
    let input = dir.join("input.jsonl");
    std::fs::write(&input, "").unwrap();
    (
        dir.join("input.checkpoint.json"),
        Progress::new(&input, Position::default()),
    )
}

#[tokio::test(start_paused = true)]
async fn the_first_resolution_is_written_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (checkpoint, progress) = checkpointed(dir.path());
    let interval = Duration::from_millis(200);
    let checkpointer = Checkpointer::start(&checkpoint, progress.clone(), interval);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!checkpoint.exists(), "nothing resolved, nothing written");
    let started = tokio::time::Instant::now();
    let first = progress.track(0, 8, 1);
    let second = progress.track(8, 16, 2);
    Box::new(second).acknowledge(Resolution::Delivered);
    while checkpointer.writes() == 0 {
        assert!(started.elapsed() < interval / 2, "not written at once");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let saved = Checkpoint::load(&checkpoint).await.unwrap().unwrap();
    assert_eq!(saved.position(), Position::default(), "line 1 in flight");
    let resolved: Vec<[u64; 4]> = saved.resolved.iter().map(|&s| s.into()).collect();
    assert_eq!(resolved, [[8, 1, 16, 2]]);
    Box::new(first).acknowledge(Resolution::Delivered);
    let last = checkpointer.finish().await.unwrap();
    assert_eq!(
        last,
        Position {
            offset: 16,
            lines: 2
        }
    );
}

#[tokio::test(start_paused = true)]
async fn resolutions_within_an_interval_are_coalesced_into_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let (checkpoint, progress) = checkpointed(dir.path());
    let checkpointer =
        Checkpointer::start(&checkpoint, progress.clone(), Duration::from_millis(200));
    // 100 lines resolved over 500 ms.
    for line in 1..=100u64 {
        let ticket = progress.track((line - 1) * 10, line * 10, line);
        Box::new(ticket).acknowledge(Resolution::Delivered);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let writes = checkpointer.writes();
    assert!(
        (2..=4).contains(&writes),
        "{writes} writes for 100 resolutions"
    );
    let last = checkpointer.finish().await.unwrap();
    assert_eq!(
        last,
        Position {
            offset: 1000,
            lines: 100
        }
    );
    assert_eq!(
        Checkpoint::load(&checkpoint)
            .await
            .unwrap()
            .unwrap()
            .position(),
        last
    );
}

#[tokio::test]
async fn a_version_1_checkpoint_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("old.jsonl");
    std::fs::write(&input, "{\"n\":1}\n{\"n\":2}\n").unwrap();
    let canonical = std::fs::canonicalize(&input).unwrap();
    let checkpoint = dir.path().join("old.checkpoint.json");
    let v1 = serde_json::json!({
        "version": 1,
        "path": canonical,
        "offset": 8,
        "lines": 1,
        "fingerprint": blake3::hash(b"{\"n\":1}\n").to_hex().to_string(),
        "fingerprint_bytes": 8,
    });
    std::fs::write(&checkpoint, v1.to_string()).unwrap();
    let source = LineSource::resume(&input, &checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let numbers: Vec<_> = source.map(|i| i.payload.position.sequence).collect().await;
    assert_eq!(numbers, [2]);
}
