//! gzip and zstd files: told by name or by their first bytes, read
//! decompressed, checkpointed in decompressed offsets, resumed by
//! decompressing to the offset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_compression::tokio::write::{GzipEncoder, ZstdEncoder};
use futures::StreamExt;
use sluice_files::{
    Checkpoint, CheckpointError, Checkpointer, FINGERPRINT_BYTES, LineSource, Position,
    SourceError, SourceOptions,
};
use sluice_processor::RawRecord;
use tokio::io::AsyncWriteExt;

use common::deliver;

async fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzipEncoder::new(Vec::new());
    encoder.write_all(text.as_bytes()).await.unwrap();
    encoder.shutdown().await.unwrap();
    encoder.into_inner()
}

async fn zstd(text: &str) -> Vec<u8> {
    let mut encoder = ZstdEncoder::new(Vec::new());
    encoder.write_all(text.as_bytes()).await.unwrap();
    encoder.shutdown().await.unwrap();
    encoder.into_inner()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn numbered(first: u64, last: u64) -> String {
    (first..=last).map(|n| format!("{{\"n\":{n}}}\n")).collect()
}

async fn texts(source: LineSource) -> Vec<String> {
    source.map(|incoming| incoming.payload.text).collect().await
}

fn small() -> SourceOptions {
    SourceOptions {
        buffer_bytes: 7,
        ..SourceOptions::default()
    }
}

/// Resumes `input` from `checkpoint`, delivers `take` lines (all when
/// `None`) and saves the checkpoint.
async fn run(input: &Path, checkpoint: &Path, take: Option<usize>) -> (Vec<RawRecord>, Position) {
    let source = LineSource::resume(input, checkpoint, small())
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    let checkpointer = Checkpointer::start(checkpoint, progress, Duration::from_secs(60));
    let (lines, _) = match take {
        Some(n) => deliver(source.take(n)).await,
        None => deliver(source).await,
    };
    (lines, checkpointer.finish().await.unwrap())
}

#[tokio::test]
async fn a_gzip_file_is_read_decompressed_under_its_stem() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"a\":1}\n\n{\"a\":2}\r\nlast";
    let path = write(dir.path(), "orders.ndjson.gz", &gzip(text).await);
    let source = LineSource::open(&path, small()).await.unwrap();
    let progress = source.progress().cloned().unwrap();
    let records: Vec<_> = source.map(|incoming| incoming.payload).collect().await;
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.position.sequence, r.text.as_str()))
        .collect();
    assert_eq!(seen, [(1, "{\"a\":1}"), (3, "{\"a\":2}"), (4, "last")]);
    assert!(
        records
            .iter()
            .all(|r| r.position.stream.as_str() == "orders")
    );
    let canonical = std::fs::canonicalize(&path).unwrap();
    assert_eq!(records[0].origin.as_str(), canonical.to_str().unwrap());
    assert_eq!(
        progress.read(),
        Position {
            offset: text.len() as u64 - 4,
            lines: 3
        },
        "offsets count decompressed bytes; not past a last line without newline"
    );
}

#[tokio::test]
async fn a_zstd_file_is_told_by_its_first_bytes_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let named = write(dir.path(), "events.zst", &zstd("x\ny\n").await);
    assert_eq!(
        texts(LineSource::open(&named, small()).await.unwrap()).await,
        ["x", "y"]
    );
    let unnamed = write(dir.path(), "events.log", &zstd("z\n").await);
    assert_eq!(
        texts(LineSource::open(&unnamed, small()).await.unwrap()).await,
        ["z"]
    );
    let gzip_unnamed = write(dir.path(), "more.ndjson", &gzip("g\n").await);
    let source = LineSource::open(&gzip_unnamed, small()).await.unwrap();
    let records: Vec<_> = source.map(|incoming| incoming.payload).collect().await;
    assert_eq!(records[0].text, "g");
    assert_eq!(records[0].position.stream.as_str(), "more");
}

#[tokio::test]
async fn concatenated_gzip_members_are_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gzip("1\n2\n").await;
    bytes.extend(gzip("3\n").await);
    let path = write(dir.path(), "joined.gz", &bytes);
    let source = LineSource::open(&path, small()).await.unwrap();
    assert_eq!(texts(source).await, ["1", "2", "3"]);
    let mut bytes = zstd("a\n").await;
    bytes.extend(zstd("b\n").await);
    let path = write(dir.path(), "joined.zst", &bytes);
    let source = LineSource::open(&path, small()).await.unwrap();
    assert_eq!(texts(source).await, ["a", "b"]);
}

#[tokio::test]
async fn a_file_named_compressed_that_is_not_is_an_error_and_an_empty_one_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "plain.ndjson.gz", b"{}\n");
    let error = LineSource::open(&path, small()).await.unwrap_err();
    assert!(
        matches!(error, SourceError::NotCompressed { format: "gzip", .. }),
        "{error}"
    );
    assert!(error.to_string().contains("plain.ndjson.gz"), "{error}");
    let path = write(dir.path(), "plain.zst", b"{}\n");
    let error = LineSource::open(&path, small()).await.unwrap_err();
    assert!(
        matches!(error, SourceError::NotCompressed { format: "zstd", .. }),
        "{error}"
    );
    let empty = write(dir.path(), "empty.gz", b"");
    assert!(
        texts(LineSource::open(&empty, small()).await.unwrap())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn corrupt_compressed_data_ends_the_stream_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = gzip(&numbered(1, 200)).await;
    let len = bytes.len();
    bytes[len / 2] ^= 0xff;
    bytes.truncate(len - 4);
    let path = write(dir.path(), "corrupt.gz", &bytes);
    let source = LineSource::open(&path, small()).await.unwrap();
    let progress = source.progress().cloned().unwrap();
    let lines = texts(source).await;
    assert!(lines.len() < 200);
    assert!(
        matches!(progress.end(), Some(sluice_files::SourceEnd::Failed(_))),
        "{:?}",
        progress.end()
    );
}

#[tokio::test]
async fn a_compressed_file_resumes_at_its_decompressed_offset() {
    let dir = tempfile::tempdir().unwrap();
    // Over the fingerprint's 64 KiB before the checkpoint, and a small
    // buffer: skipping crosses many reads.
    let text = numbered(1, 12000);
    let input = write(dir.path(), "big.ndjson.gz", &gzip(&text).await);
    let checkpoint = dir.path().join("big.checkpoint.json");
    let (first, saved) = run(&input, &checkpoint, Some(8000)).await;
    assert_eq!(first.len(), 8000);
    let offset = numbered(1, 8000).len() as u64;
    assert_eq!(
        saved,
        Position {
            offset,
            lines: 8000
        }
    );
    let recorded = Checkpoint::load(&checkpoint).await.unwrap().unwrap();
    assert_eq!(recorded.fingerprint_bytes, FINGERPRINT_BYTES as u64);
    assert_eq!(
        recorded.fingerprint,
        blake3::hash(&text.as_bytes()[..FINGERPRINT_BYTES])
            .to_hex()
            .to_string(),
        "the fingerprint is of decompressed bytes"
    );

    let (rest, saved) = run(&input, &checkpoint, None).await;
    let numbers: Vec<_> = rest.iter().map(|r| r.position.sequence).collect();
    assert_eq!(numbers, (8001..=12000).collect::<Vec<_>>());
    assert_eq!(rest[0].text, "{\"n\":8001}");
    assert_eq!(saved.offset, text.len() as u64);

    // Shorter than the offset, past the fingerprint: found while skipping.
    let kept = std::fs::read(&input).unwrap();
    std::fs::write(&input, gzip(&numbered(1, 7000)).await).unwrap();
    let error = LineSource::resume(&input, &checkpoint, small())
        .await
        .unwrap_err();
    match error {
        SourceError::Checkpoint(CheckpointError::Shorter { len, .. }) => {
            assert_eq!(len, numbered(1, 7000).len() as u64);
        }
        other => panic!("not a length error: {other}"),
    }
    std::fs::write(&input, kept).unwrap();

    // A member appended (as `cat more.gz >> big.ndjson.gz` does) is read on.
    let mut more = std::fs::read(&input).unwrap();
    more.extend(gzip(&numbered(12001, 12002)).await);
    std::fs::write(&input, more).unwrap();
    let (added, _) = run(&input, &checkpoint, None).await;
    let numbers: Vec<_> = added.iter().map(|r| r.position.sequence).collect();
    assert_eq!(numbers, [12001, 12002]);
}

#[tokio::test]
async fn a_compressed_file_not_as_checkpointed_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("c.ndjson.gz");
    let checkpoint = dir.path().join("c.checkpoint.json");
    std::fs::write(&input, gzip(&numbered(1, 10)).await).unwrap();
    let (_, saved) = run(&input, &checkpoint, Some(6)).await;

    // Shorter once decompressed: no longer the file first seen, which the
    // fingerprint covers whole (shorter than 64 KiB).
    std::fs::write(&input, gzip(&numbered(1, 3)).await).unwrap();
    let error = LineSource::resume(&input, &checkpoint, small())
        .await
        .unwrap_err();
    match error {
        SourceError::Checkpoint(CheckpointError::Fingerprint { bytes, .. }) => {
            assert_eq!(bytes, numbered(1, 10).len() as u64);
            assert!(saved.offset > numbered(1, 3).len() as u64);
        }
        other => panic!("not a fingerprint error: {other}"),
    }
    // Its start changed.
    let changed = numbered(1, 10).replacen("\"n\":2", "\"m\":2", 1);
    std::fs::write(&input, gzip(&changed).await).unwrap();
    let error = LineSource::resume(&input, &checkpoint, small())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SourceError::Checkpoint(CheckpointError::Fingerprint { .. })
        ),
        "{error}"
    );
    // As it was: read on from the offset.
    std::fs::write(&input, gzip(&numbered(1, 10)).await).unwrap();
    let (rest, _) = run(&input, &checkpoint, None).await;
    assert_eq!(rest.len(), 4);
}

#[tokio::test]
async fn a_compressed_last_line_without_terminator_is_read_again_whole_once_completed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("c.ndjson.gz");
    let checkpoint = dir.path().join("c.checkpoint.json");
    std::fs::write(&input, gzip("{\"n\":1}\n{\"n\":2}").await).unwrap();
    let (lines, saved) = run(&input, &checkpoint, None).await;
    assert_eq!(
        (lines.len(), saved.offset),
        (2, 8),
        "not past line 2's start"
    );
    // Unchanged: nothing again.
    let (lines, _) = run(&input, &checkpoint, None).await;
    assert!(lines.is_empty());
    // Completed (the file written anew, compressed): line 2, whole, once.
    std::fs::write(&input, gzip("{\"n\":1}\n{\"n\":2}3}\n").await).unwrap();
    let (lines, saved) = run(&input, &checkpoint, None).await;
    let seen: Vec<_> = lines
        .iter()
        .map(|l| (l.position.sequence, l.text.as_str()))
        .collect();
    assert_eq!(seen, [(2, "{\"n\":2}3}")]);
    assert_eq!(saved.offset, 18);
}

#[tokio::test]
async fn a_compressed_file_checkpointed_at_its_start_resumes_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "z.ndjson.gz", &gzip(&numbered(1, 2)).await);
    let checkpoint = dir.path().join("z.checkpoint.json");
    let canonical = std::fs::canonicalize(&input).unwrap();
    sluice_files::Progress::new(canonical, Position::default())
        .checkpoint()
        .save(&checkpoint)
        .unwrap();
    let (lines, _) = run(&input, &checkpoint, None).await;
    assert_eq!(lines.len(), 2);
}

#[tokio::test]
async fn a_compressed_file_cannot_be_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "c.gz", &gzip("x\n").await);
    let options = SourceOptions {
        follow: true,
        ..SourceOptions::default()
    };
    let error = LineSource::open(&path, options).await.unwrap_err();
    assert!(matches!(error, SourceError::CannotFollow { .. }), "{error}");
    assert!(error.to_string().contains("compressed"), "{error}");
    assert!(error.to_string().contains("c.gz"), "{error}");
}
