//! A file's identity: a fingerprint of its first 64 KiB (or all of it
//! when shorter), stable while it grows and across restarts; and a resume
//! that checks the lines before the checkpoint's offset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use sluice_files::{
    CheckpointError, Checkpointer, FINGERPRINT_BYTES, FileIdentity, LineSource, SourceError,
    SourceOptions,
};

use common::{append, deliver};

/// `lines` lines of `width` bytes each (newline included), all `fill`.
fn block(fill: char, width: usize, lines: usize) -> String {
    let line: String = std::iter::repeat_n(fill, width - 1).collect();
    (0..lines).map(|_| format!("{line}\n")).collect()
}

async fn identity(path: &Path) -> FileIdentity {
    let source = LineSource::open(path, SourceOptions::default())
        .await
        .unwrap();
    source.progress().unwrap().identity()
}

/// Reads `input` to its end from `checkpoint`, saving it.
async fn run(input: &Path, checkpoint: &Path) -> usize {
    let source = LineSource::resume(input, checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    let checkpointer = Checkpointer::start(checkpoint, progress, Duration::from_secs(60));
    let (lines, _) = deliver(source).await;
    checkpointer.finish().await.unwrap();
    lines.len()
}

#[tokio::test]
async fn files_sharing_their_first_8_kib_have_different_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let header = block('h', 64, 128); // 8 KiB
    let one = dir.path().join("one.log");
    let two = dir.path().join("two.log");
    std::fs::write(&one, format!("{header}{}", block('a', 16, 10))).unwrap();
    std::fs::write(&two, format!("{header}{}", block('b', 16, 10))).unwrap();
    let (first, second) = (identity(&one).await, identity(&two).await);
    assert_ne!(first.fingerprint, second.fingerprint);
    assert_eq!(
        first.fingerprint_bytes,
        8192 + 160,
        "the whole file, shorter than 64 KiB"
    );
    assert_eq!(first.path, std::fs::canonicalize(&one).unwrap());
}

#[tokio::test]
async fn the_identity_is_stable_while_the_file_grows_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("grows.log");
    let checkpoint = dir.path().join("grows.checkpoint.json");
    std::fs::write(&input, block('a', 32, 10)).unwrap();
    let first = identity(&input).await;
    assert_eq!(run(&input, &checkpoint).await, 10);
    append(&input, &block('b', 1024, 100)); // past 64 KiB
    let source = LineSource::resume(&input, &checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    assert_eq!(progress.identity(), first, "as first seen, after a restart");
    let records: Vec<_> = source.collect().await;
    assert_eq!(records.len(), 100);
    let sequence = records[0].payload.position.sequence;
    assert_eq!(progress.identity_of(sequence), Some(first.clone()));
    // A new reader of the grown file sees its first 64 KiB.
    let grown = identity(&input).await;
    assert_eq!(grown.fingerprint_bytes, FINGERPRINT_BYTES as u64);
    assert_ne!(grown.fingerprint, first.fingerprint);
}

#[tokio::test]
async fn a_file_with_other_lines_before_the_offset_is_a_replaced_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rewritten.log");
    let checkpoint = dir.path().join("rewritten.checkpoint.json");
    // The same first 64 KiB, then 2-byte lines: rewritten with as many
    // bytes but half the lines (4-byte ones), the fingerprint matches.
    let head = block('h', 64, FINGERPRINT_BYTES / 64);
    std::fs::write(&input, format!("{head}{}", block('x', 2, 100))).unwrap();
    let lines = run(&input, &checkpoint).await;
    assert_eq!(lines, FINGERPRINT_BYTES / 64 + 100);
    std::fs::write(&input, format!("{head}{}", block('y', 4, 50))).unwrap();
    let error = LineSource::resume(&input, &checkpoint, SourceOptions::default())
        .await
        .unwrap_err();
    let SourceError::Checkpoint(CheckpointError::LineCount {
        lines: counted,
        found,
        ..
    }) = &error
    else {
        panic!("not a line count error: {error}");
    };
    assert_eq!((*counted, *found), (lines as u64, lines as u64 - 50));
    let message = error.to_string();
    assert!(message.contains("rewritten.checkpoint.json"), "{message}");
    assert!(message.contains("remove the checkpoint"), "{message}");
}

/// The keys of every line of `path`, read from its start.
async fn keys(path: &Path) -> Vec<String> {
    let source = LineSource::open(path, SourceOptions::default())
        .await
        .unwrap();
    let (lines, _) = deliver(source).await;
    lines
        .iter()
        .map(|line| line.key.expect("a file's line has a key").to_string())
        .collect()
}

#[tokio::test]
async fn a_line_s_key_names_its_file_s_identity_and_its_number() {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["a", "b"] {
        std::fs::create_dir(dir.path().join(folder)).unwrap();
        std::fs::write(dir.path().join(folder).join("orders.ndjson"), "1\n2\n3\n").unwrap();
    }
    let a = dir.path().join("a/orders.ndjson");
    let first = keys(&a).await;
    assert_eq!(first.len(), 3);
    assert_eq!(
        first.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    // Read again: the same keys.
    assert_eq!(keys(&a).await, first);
    // The same name and content in another folder: other keys.
    let other = keys(&dir.path().join("b/orders.ndjson")).await;
    assert!(other.iter().all(|key| !first.contains(key)));
    // The same file rewritten with other content: new keys.
    std::fs::write(&a, "4\n5\n6\n").unwrap();
    let rewritten = keys(&a).await;
    assert!(rewritten.iter().all(|key| !first.contains(key)));
}
