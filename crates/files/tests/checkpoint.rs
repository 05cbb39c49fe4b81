//! Checkpoints: saved atomically and reloaded, saved periodically, and
//! resumed from: exactly the lines after the watermark, or a typed error
//! when the file is not the one checkpointed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sluice_files::{
    Checkpoint, CheckpointError, Checkpointer, FINGERPRINT_BYTES, LineSource, Position, Progress,
    SourceError, SourceOptions,
};
use sluice_processor::{Acknowledge, RawRecord, Resolution};

use common::{append, deliver, eventually};

struct Files {
    dir: tempfile::TempDir,
    input: PathBuf,
    checkpoint: PathBuf,
}

fn files(text: &str) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, text).unwrap();
    let checkpoint = dir.path().join("input.checkpoint.json");
    Files {
        dir,
        input,
        checkpoint,
    }
}

/// Resumes `files`' input, delivers its first `take` lines (all when
/// `None`), and saves the checkpoint. Returns the lines delivered and the
/// position saved.
async fn run(files: &Files, take: Option<usize>) -> (Vec<RawRecord>, Position) {
    let source = LineSource::resume(&files.input, &files.checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    let checkpointer = Checkpointer::start(&files.checkpoint, progress, Duration::from_secs(60));
    let (lines, _) = match take {
        Some(n) => deliver(source.take(n)).await,
        None => deliver(source).await,
    };
    let saved = checkpointer.finish().await.unwrap();
    (lines, saved)
}

fn numbered(first: u64, last: u64) -> String {
    (first..=last).map(|n| format!("{{\"n\":{n}}}\n")).collect()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

#[tokio::test]
async fn a_checkpoint_is_saved_atomically_and_reloaded() {
    let f = files("");
    assert_eq!(Checkpoint::load(&f.checkpoint).await.unwrap(), None);
    let progress = Progress::new(&f.input, Position::default());
    let ticket = progress.track(0, 8, 1);
    Box::new(ticket).acknowledge(Resolution::Delivered);
    let first = progress.checkpoint();
    first.save(&f.checkpoint).unwrap();
    assert_eq!(
        Checkpoint::load(&f.checkpoint).await.unwrap(),
        Some(first.clone())
    );

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&f.checkpoint).unwrap()).unwrap();
    assert_eq!(json["version"], 2);
    assert_eq!(json["offset"], 8);
    assert_eq!(json["lines"], 1);
    assert_eq!(json["path"], f.input.to_str().unwrap());
    assert!(json["fingerprint"].is_string());
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "fingerprint",
            "fingerprint_bytes",
            "lines",
            "offset",
            "path",
            "version"
        ],
        "no identity, base, rotated files or resolved lines when there are none"
    );

    let second = Checkpoint {
        offset: 20,
        lines: 2,
        ..first
    };
    second.save(&f.checkpoint).unwrap();
    assert_eq!(Checkpoint::load(&f.checkpoint).await.unwrap(), Some(second));
    assert!(leftovers(f.dir.path()).is_empty(), "no temporary file left");
}

#[tokio::test]
async fn a_failed_save_leaves_the_old_checkpoint_and_no_temporary_file() {
    let f = files("");
    let checkpoint = Progress::new(&f.input, Position::default()).checkpoint();
    // A directory in the checkpoint's place: the rename fails.
    std::fs::create_dir(&f.checkpoint).unwrap();
    let error = checkpoint.save(&f.checkpoint).unwrap_err();
    assert!(matches!(error, CheckpointError::Write { .. }), "{error}");
    assert!(error.to_string().contains("input.checkpoint.json"));
    assert!(leftovers(f.dir.path()).is_empty());
}

#[tokio::test]
async fn a_corrupt_checkpoint_is_an_error_naming_it() {
    let f = files("{}\n");
    std::fs::write(&f.checkpoint, "{\"offset\": 3").unwrap();
    let error = LineSource::resume(&f.input, &f.checkpoint, SourceOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SourceError::Checkpoint(CheckpointError::Parse { .. })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("input.checkpoint.json"));
}

#[tokio::test]
async fn the_checkpointer_saves_periodically_when_the_watermark_moves() {
    let f = files("");
    let progress = Progress::new(&f.input, Position::default());
    let checkpointer =
        Checkpointer::start(&f.checkpoint, progress.clone(), Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!f.checkpoint.exists(), "nothing moved, nothing saved");
    let ticket = progress.track(0, 8, 1);
    Box::new(ticket).acknowledge(Resolution::Delivered);
    eventually(|| checkpointer.saved().offset == 8).await;
    let saved = std::fs::read(&f.checkpoint).unwrap();
    let saved: Checkpoint = serde_json::from_slice(&saved).unwrap();
    assert_eq!(
        saved.position(),
        Position {
            offset: 8,
            lines: 1
        }
    );
    assert_eq!(checkpointer.last_error(), None);
    let ticket = progress.track(8, 20, 2);
    Box::new(ticket).acknowledge(Resolution::Delivered);
    assert_eq!(checkpointer.flush().await.unwrap().offset, 20);
    assert_eq!(checkpointer.finish().await.unwrap().offset, 20);
}

#[tokio::test]
async fn resuming_yields_exactly_the_lines_after_the_watermark() {
    let f = files(&format!("{}\n\r\n{}", numbered(1, 3), numbered(6, 9)));
    let (first, saved) = run(&f, Some(3)).await;
    assert_eq!(first.len(), 3);
    assert_eq!(
        saved,
        Position {
            offset: 24,
            lines: 3
        }
    );

    let (rest, saved) = run(&f, None).await;
    let numbers: Vec<_> = rest.iter().map(|l| l.position.sequence).collect();
    assert_eq!(numbers, [6, 7, 8, 9], "blank lines 4 and 5 counted");
    assert_eq!(rest[0].text, "{\"n\":6}");
    let len = std::fs::metadata(&f.input).unwrap().len();
    assert_eq!(
        saved,
        Position {
            offset: len,
            lines: 9
        }
    );

    // Nothing left: a third run yields nothing and keeps the checkpoint.
    let (none, again) = run(&f, None).await;
    assert!(none.is_empty());
    assert_eq!(again, saved);
}

#[tokio::test]
async fn a_checkpoint_at_the_start_resumes_from_the_start() {
    let f = files(&numbered(1, 2));
    let canonical = std::fs::canonicalize(&f.input).unwrap();
    Progress::new(canonical, Position::default())
        .checkpoint()
        .save(&f.checkpoint)
        .unwrap();
    let (lines, saved) = run(&f, None).await;
    let numbers: Vec<_> = lines.iter().map(|l| l.position.sequence).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(saved.offset, 16);
}

#[tokio::test]
async fn without_a_checkpoint_reading_starts_at_the_beginning() {
    let f = files(&numbered(1, 2));
    let (lines, saved) = run(&f, None).await;
    assert_eq!(lines[0].position.sequence, 1);
    assert_eq!(lines[0].text, "{\"n\":1}");
    assert_eq!(saved.offset, 16);
}

#[tokio::test]
async fn a_file_that_grew_resumes_where_it_stopped_across_the_fingerprint_bound() {
    // Short lines first: the fingerprint covers fewer than 4 KiB, then all.
    let f = files(&numbered(1, 5));
    let (lines, _) = run(&f, None).await;
    assert_eq!(lines.len(), 5);
    for round in 0..3u64 {
        let first = 6 + round * 400;
        append(&f.input, &numbered(first, first + 399));
        let (lines, saved) = run(&f, None).await;
        let numbers: Vec<_> = lines.iter().map(|l| l.position.sequence).collect();
        assert_eq!(numbers, (first..first + 400).collect::<Vec<_>>());
        assert_eq!(lines[0].text, format!("{{\"n\":{first}}}"));
        let checkpoint = Checkpoint::load(&f.checkpoint).await.unwrap().unwrap();
        assert_eq!(checkpoint.position(), saved);
        assert_eq!(
            checkpoint.fingerprint_bytes,
            numbered(1, 5).len() as u64,
            "the file as first seen, whole: fixed while it grows"
        );
        assert!(FINGERPRINT_BYTES as u64 > checkpoint.fingerprint_bytes);
    }
}

#[tokio::test]
async fn a_changed_start_is_a_fingerprint_error() {
    let f = files(&numbered(1, 10));
    run(&f, Some(4)).await;
    // Same length, one byte different, before the checkpoint's offset.
    let text = std::fs::read_to_string(&f.input)
        .unwrap()
        .replacen("\"n\":2", "\"m\":2", 1);
    std::fs::write(&f.input, text).unwrap();
    let error = LineSource::resume(&f.input, &f.checkpoint, SourceOptions::default())
        .await
        .unwrap_err();
    let SourceError::Checkpoint(CheckpointError::Fingerprint {
        checkpoint, file, ..
    }) = &error
    else {
        panic!("not a fingerprint error: {error}");
    };
    assert_eq!(checkpoint, &f.checkpoint);
    assert_eq!(file, &std::fs::canonicalize(&f.input).unwrap());
    assert!(
        error.to_string().contains("input.checkpoint.json"),
        "{error}"
    );
    assert!(error.to_string().contains("input.jsonl"), "{error}");
}

#[tokio::test]
async fn a_file_shorter_than_the_offset_is_an_error() {
    // First seen with 3 lines (the fingerprint covers them), then grown.
    let f = files(&numbered(1, 3));
    run(&f, None).await;
    append(&f.input, &numbered(4, 10));
    let (_, saved) = run(&f, Some(3)).await;
    std::fs::write(&f.input, numbered(1, 3)).unwrap();
    let error = LineSource::resume(&f.input, &f.checkpoint, SourceOptions::default())
        .await
        .unwrap_err();
    match error {
        SourceError::Checkpoint(CheckpointError::Shorter { offset, len, .. }) => {
            assert_eq!(offset, saved.offset);
            assert_eq!(len, 24);
        }
        other => panic!("not a length error: {other}"),
    }
}

#[tokio::test]
async fn a_checkpoint_of_another_file_is_an_error() {
    let f = files(&numbered(1, 3));
    run(&f, None).await;
    let other = f.dir.path().join("other.jsonl");
    std::fs::copy(&f.input, &other).unwrap();
    let error = LineSource::resume(&other, &f.checkpoint, SourceOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SourceError::Checkpoint(CheckpointError::OtherFile { .. })
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_last_line_without_terminator_is_delivered_once_and_once_more_whole_when_completed() {
    let f = files("{\"n\":1}\n{\"n\":2");
    let (lines, saved) = run(&f, None).await;
    let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        ["{\"n\":1}", "{\"n\":2"],
        "the last line, as it stands"
    );
    assert_eq!(saved.offset, 8, "the checkpoint stays at its start");
    let resolved: Vec<[u64; 4]> = Checkpoint::load(&f.checkpoint)
        .await
        .unwrap()
        .unwrap()
        .resolved
        .iter()
        .map(|&span| span.into())
        .collect();
    assert_eq!(resolved, [[8, 1, 14, 2]], "delivered as it stood");
    // Unchanged, it resumes to nothing.
    let (lines, _) = run(&f, None).await;
    assert!(lines.is_empty());
    // The writer completes it: delivered whole, once, under its number.
    append(&f.input, "3}\n");
    let (lines, saved) = run(&f, None).await;
    let seen: Vec<_> = lines
        .iter()
        .map(|l| (l.position.sequence, l.text.as_str()))
        .collect();
    assert_eq!(seen, [(2, "{\"n\":23}")]);
    assert_eq!(
        saved,
        Position {
            offset: 17,
            lines: 2
        }
    );
    let (lines, _) = run(&f, None).await;
    assert!(lines.is_empty());
}
