//! Following a file: it grows, its last line waits for its newline, it is
//! rotated (renamed away, created anew) or truncated; each file's progress
//! is checkpointed on its own, and a restart resumes each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use sluice_files::{
    Checkpoint, CheckpointError, FilesError, FilesSettings, LineSource, Position, Progress,
    SourceEnd, SourceError, SourceOptions,
};
use sluice_processor::{
    BuiltSource, DeliveryOrder, Envelope, Finished, ProcessorConfig, RawRecord, SendError, Sink,
    SourceConnector, StreamProcessor,
};

use common::{Collect, append, config, context, eventually, keep};

fn following() -> SourceOptions {
    SourceOptions {
        follow: true,
        ..SourceOptions::default()
    }
}

fn lines(first: u64, last: u64) -> String {
    (first..=last).map(|n| format!("{{\"n\":{n}}}\n")).collect()
}

/// A followed file `app.log` holding `text` in a new directory, its
/// source, and the source's progress.
async fn followed(text: &str) -> (tempfile::TempDir, PathBuf, LineSource, Progress) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    std::fs::write(&path, text).unwrap();
    let source = LineSource::open(&path, following()).await.unwrap();
    let progress = source.progress().cloned().unwrap();
    (dir, path, source, progress)
}

/// The next record of `source` within a second of tokio's time, if any.
async fn next_within_a_second(source: &mut LineSource) -> Option<RawRecord> {
    tokio::time::timeout(Duration::from_secs(1), source.next())
        .await
        .ok()
        .flatten()
        .map(|incoming| incoming.payload)
}

async fn next_text(source: &mut LineSource) -> String {
    next_within_a_second(source)
        .await
        .expect("a line within a second")
        .text
}

#[tokio::test(start_paused = true)]
async fn a_followed_file_is_read_as_it_grows_a_last_line_once_its_newline_is_written() {
    let (_dir, path, mut source, progress) = followed("1\n2\n").await;
    assert_eq!(next_text(&mut source).await, "1");
    assert_eq!(next_text(&mut source).await, "2");
    assert!(next_within_a_second(&mut source).await.is_none(), "waits");
    append(&path, "3\n4");
    assert_eq!(next_text(&mut source).await, "3");
    assert!(
        next_within_a_second(&mut source).await.is_none(),
        "no line before its newline"
    );
    assert_eq!(
        progress.read(),
        Position {
            offset: 6,
            lines: 3
        }
    );
    append(&path, "0\n\n5\n");
    let line = next_within_a_second(&mut source).await.unwrap();
    assert_eq!((line.text.as_str(), line.position.sequence), ("40", 4));
    assert_eq!(next_text(&mut source).await, "5");
    assert_eq!(progress.end(), None, "never ends by itself");
    assert_eq!(progress.resolutions().skipped, 1);
}

#[tokio::test(start_paused = true)]
async fn a_followed_file_with_nothing_new_is_looked_at_every_poll_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.log");
    std::fs::write(&path, "").unwrap();
    let options = SourceOptions {
        poll_interval: Duration::from_secs(10),
        ..following()
    };
    let mut source = LineSource::open(&path, options).await.unwrap();
    let started = tokio::time::Instant::now();
    let pull = tokio::spawn(async move { source.next().await.map(|i| i.payload.text) });
    tokio::time::sleep(Duration::from_secs(15)).await;
    append(&path, "late\n");
    assert_eq!(pull.await.unwrap().as_deref(), Some("late"));
    // Seen at the look 20 s in, not before (the one at 10 s found nothing).
    assert_eq!(started.elapsed(), Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_rotated_file_is_read_to_its_end_then_the_new_one_from_its_start() {
    let (dir, path, mut source, progress) = followed("a1\na2\n").await;
    assert_eq!(next_text(&mut source).await, "a1");
    assert_eq!(next_text(&mut source).await, "a2");

    // Renamed away; its writer still appends to it, the last line without
    // its newline; a new file at the path.
    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    append(&rotated, "a3\na4");
    assert_eq!(next_text(&mut source).await, "a3");
    std::fs::write(&path, "b1\n").unwrap();
    let mut rest = Vec::new();
    for _ in 0..2 {
        let record = next_within_a_second(&mut source).await.unwrap();
        rest.push((record.text, record.position.sequence));
    }
    assert_eq!(
        rest,
        [("a4".to_owned(), 4), ("b1".to_owned(), 5)],
        "the old file's last line, then the new file, numbered on"
    );
    assert_eq!(
        progress.read(),
        Position {
            offset: 3,
            lines: 1
        }
    );
    append(&path, "b2\n");
    let record = next_within_a_second(&mut source).await.unwrap();
    assert_eq!((record.text.as_str(), record.position.sequence), ("b2", 6));
    let canonical = std::fs::canonicalize(&path).unwrap();
    assert_eq!(record.origin.as_str(), canonical.to_str().unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_rotated_file_is_drained_until_quiet_after_the_new_one_appears() {
    let (dir, path, mut source, _) = followed("a1\n").await;
    assert_eq!(next_text(&mut source).await, "a1");
    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    std::fs::write(&path, "b1\n").unwrap();
    // The writer has not reopened the path yet: it appends to the old
    // file after the new one appeared.
    let late = tokio::spawn({
        let rotated = rotated.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            append(&rotated, "a2\n");
        }
    });
    assert_eq!(next_text(&mut source).await, "a2", "not lost");
    late.await.unwrap();
    let record = next_within_a_second(&mut source).await.unwrap();
    assert_eq!((record.text.as_str(), record.position.sequence), ("b1", 3));
}

#[tokio::test(start_paused = true)]
async fn a_path_renamed_away_and_not_yet_created_is_waited_for() {
    let (dir, path, mut source, _) = followed("a1\n").await;
    assert_eq!(next_text(&mut source).await, "a1");
    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    assert!(next_within_a_second(&mut source).await.is_none());
    append(&rotated, "a2\n");
    assert_eq!(
        next_text(&mut source).await,
        "a2",
        "the old file still grows"
    );
    std::fs::write(&path, "b1\n").unwrap();
    assert_eq!(next_text(&mut source).await, "b1");
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_without_identity_resumes_a_followed_file_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let checkpoint = dir.path().join("app.checkpoint.json");
    std::fs::write(&path, "1\n2\n").unwrap();
    // As an earlier version wrote it: no identity.
    let canonical = std::fs::canonicalize(&path).unwrap();
    let old = serde_json::json!({
        "version": 1, "path": canonical, "offset": 2, "lines": 1,
        "fingerprint": blake3::hash(b"1\n").to_hex().to_string(), "fingerprint_bytes": 2,
    });
    std::fs::write(&checkpoint, old.to_string()).unwrap();
    let mut source = LineSource::resume(&path, &checkpoint, following())
        .await
        .unwrap();
    let progress = source.progress().cloned().unwrap();
    assert_eq!(next_text(&mut source).await, "2");
    assert!(
        next_within_a_second(&mut source).await.is_none(),
        "the file at the path is the one read: not read again"
    );
    let recorded = progress.checkpoint();
    let metadata = std::fs::metadata(&path).unwrap();
    assert_eq!(recorded.file_id, sluice_files::FileId::of(&metadata));
    assert!(recorded.file_id.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_compressed_file_rotated_in_ends_the_stream_saying_why() {
    let (dir, path, mut source, progress) = followed("a1\n").await;
    assert_eq!(next_text(&mut source).await, "a1");
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    // gzip's magic bytes, whatever follows.
    std::fs::write(&path, [0x1f, 0x8b, 8, 0]).unwrap();
    assert!(next_within_a_second(&mut source).await.is_none());
    let Some(SourceEnd::Failed(why)) = progress.end() else {
        panic!("not failed: {:?}", progress.end());
    };
    assert!(why.contains("compressed"), "{why}");
}

#[cfg(unix)]
#[tokio::test(start_paused = true)]
async fn a_path_that_cannot_be_opened_any_more_ends_the_stream_saying_why() {
    let (dir, path, mut source, progress) = followed("a1\n").await;
    assert_eq!(next_text(&mut source).await, "a1");
    // A link to itself: opening it fails (too many levels of links).
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    std::os::unix::fs::symlink(&path, &path).unwrap();
    assert!(next_within_a_second(&mut source).await.is_none());
    let Some(SourceEnd::Failed(why)) = progress.end() else {
        panic!("not failed: {:?}", progress.end());
    };
    assert!(why.contains("app.log"), "{why}");
}

#[tokio::test(start_paused = true)]
async fn a_truncated_file_is_read_again_from_its_start() {
    let (_dir, path, mut source, progress) = followed("x1\nx2\n").await;
    assert_eq!(next_text(&mut source).await, "x1");
    assert_eq!(next_text(&mut source).await, "x2");
    std::fs::write(&path, "y\n").unwrap();
    let record = next_within_a_second(&mut source).await.unwrap();
    assert_eq!((record.text.as_str(), record.position.sequence), ("y", 3));
    assert_eq!(
        progress.read(),
        Position {
            offset: 2,
            lines: 1
        }
    );
    // The lines read before the truncation were handed back (their acks
    // dropped here), but cannot be read again: the checkpoint records the
    // file as read anew only.
    let checkpoint = progress.checkpoint();
    assert!(checkpoint.rotated.is_empty());
    assert_eq!((checkpoint.offset, checkpoint.sequence_base), (0, 2));
    assert_eq!(progress.resolutions().not_processed, 3);
}

#[tokio::test(start_paused = true)]
async fn stdin_cannot_be_followed() {
    let error = LineSource::stdin(following()).unwrap_err();
    assert!(matches!(error, SourceError::CannotFollow { .. }), "{error}");
    assert!(error.to_string().contains("stdin"), "{error}");
    let settings = FilesSettings {
        follow: true,
        ..FilesSettings::default()
    };
    let error = settings.build(&context(&["-"], None)).await.unwrap_err();
    assert!(matches!(
        error.downcast_ref::<FilesError>(),
        Some(FilesError::Source(SourceError::CannotFollow { .. }))
    ));
}

/// A followed file's run of the `files` connector, with checkpoints.
struct Run {
    delivered: Collect<RawRecord>,
    handle: sluice_processor::ProcessorHandle<RawRecord, Collect<RawRecord>, KeepFn>,
    finish: Box<dyn sluice_processor::Finish>,
}

type KeepFn =
    fn(
        RawRecord,
        &mut sluice_processor::Context,
    )
        -> Result<sluice_processor::Transformed<RawRecord>, sluice_processor::Rejected<RawRecord>>;

async fn start(path: &Path, checkpoint: &Path) -> Run {
    let settings = FilesSettings {
        follow: true,
        ..FilesSettings::default()
    };
    let BuiltSource { streams, finish } = settings
        .build(&context(&[path.to_str().unwrap()], Some(checkpoint)))
        .await
        .unwrap();
    let delivered = Collect::default();
    let transform: KeepFn = keep;
    let handle = StreamProcessor::new(transform, delivered.clone(), config())
        .unwrap()
        .start(streams);
    Run {
        delivered,
        handle,
        finish,
    }
}

impl Run {
    async fn until(&self, count: usize) {
        eventually(|| self.delivered.records().len() >= count).await;
    }

    async fn stop(self) -> (Vec<RawRecord>, Finished) {
        let report = self.handle.stop().await;
        assert!(report.is_conserved(), "{}", report.conservation());
        assert_eq!(report.metrics.handed_back, 0);
        let finished = self.finish.finish().await.unwrap();
        (self.delivered.records(), finished)
    }
}

#[tokio::test(start_paused = true)]
async fn a_followed_file_appended_and_rotated_while_read_then_stopped_and_resumed_delivers_every_line_once()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let checkpoint = dir.path().join("app.checkpoint.json");
    std::fs::write(&path, lines(1, 3)).unwrap();

    let run = start(&path, &checkpoint).await;
    run.until(3).await;
    append(&path, &lines(4, 5));
    append(&path, "{\"n\":6}"); // its newline comes after the rotation
    run.until(5).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        run.delivered.records().len(),
        5,
        "line 6 waits for its newline"
    );
    let first_rotated = dir.path().join("app.log.1");
    std::fs::rename(&path, &first_rotated).unwrap();
    append(&first_rotated, &format!("\n{}", lines(7, 7)));
    std::fs::write(&path, lines(8, 9)).unwrap();
    run.until(9).await;
    append(&path, &lines(10, 10));
    run.until(10).await;
    let (first_run, finished) = run.stop().await;
    assert_eq!(finished.checkpoints.len(), 1);
    assert_eq!(
        (
            finished.checkpoints[0].offset,
            finished.checkpoints[0].lines
        ),
        (lines(8, 10).len() as u64, 3),
        "the file now at the path"
    );
    let saved = Checkpoint::load(&checkpoint).await.unwrap().unwrap();
    assert!(saved.rotated.is_empty(), "the rotated file is done");
    assert_eq!(saved.sequence_base, 7);

    // While stopped: the file gets a line, is rotated, a new one created.
    append(&path, &lines(11, 11));
    std::fs::rename(&path, dir.path().join("app.log.2")).unwrap();
    std::fs::write(&path, lines(12, 12)).unwrap();

    let run = start(&path, &checkpoint).await;
    run.until(2).await;
    append(&path, &lines(13, 13));
    run.until(3).await;
    let (second_run, _) = run.stop().await;

    let all: Vec<_> = first_run.iter().chain(&second_run).collect();
    let texts: Vec<_> = all.iter().map(|r| r.text.clone()).collect();
    let expected: Vec<_> = lines(1, 13).lines().map(str::to_owned).collect();
    assert_eq!(texts, expected, "every line once, in order");
    let sequences: Vec<_> = all.iter().map(|r| r.position.sequence).collect();
    assert_eq!(
        sequences,
        (1..=13).collect::<Vec<_>>(),
        "identities never reused"
    );

    // Nothing new: a third run delivers nothing.
    let run = start(&path, &checkpoint).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (third_run, _) = run.stop().await;
    assert!(third_run.is_empty());
}

/// Delivers every record but one (by text), which it holds until the
/// stop.
#[derive(Clone, Default)]
struct HoldOne {
    held: String,
    delivered: Collect<RawRecord>,
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Sink<RawRecord> for HoldOne {
    async fn send(&self, batch: &[Envelope<RawRecord>]) -> Result<(), SendError> {
        let texts = batch.iter().map(|e| e.record.text.clone());
        self.seen.lock().unwrap().extend(texts);
        if batch.iter().any(|e| e.record.text == self.held) {
            futures::future::pending::<()>().await;
        }
        self.delivered.send(batch).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_rotated_file_with_lines_not_done_keeps_its_own_checkpoint_and_is_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let checkpoint = dir.path().join("app.checkpoint.json");
    std::fs::write(&path, "a1\na2\na3\n").unwrap();
    let settings = FilesSettings {
        follow: true,
        ..FilesSettings::default()
    };
    let inputs = [path.to_str().unwrap()];
    let BuiltSource { streams, finish } = settings
        .build(&context(&inputs, Some(&checkpoint)))
        .await
        .unwrap();
    let sink = HoldOne {
        held: "a2".to_owned(),
        ..HoldOne::default()
    };
    // One record per worker, in no order: the held one holds no other.
    let unordered = ProcessorConfig {
        ordering: DeliveryOrder::None,
        take_size: 1,
        ..config()
    };
    let handle = StreamProcessor::new(keep, sink.clone(), unordered)
        .unwrap()
        .start(streams);
    eventually(|| sink.delivered.records().len() == 2).await;
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&path, "b1\n").unwrap();
    eventually(|| sink.delivered.records().len() == 3).await;
    let report = handle.stop().await;
    assert_eq!(report.metrics.handed_back, 1, "a2");
    finish.finish().await.unwrap();

    let saved = Checkpoint::load(&checkpoint).await.unwrap().unwrap();
    assert_eq!((saved.offset, saved.lines, saved.sequence_base), (3, 1, 3));
    assert_eq!(saved.rotated.len(), 1, "the old file, on its own");
    let old = &saved.rotated[0];
    assert_eq!((old.offset, old.lines, old.sequence_base), (3, 1, 0));
    assert_ne!(old.file_id, saved.file_id);
    assert!(old.file_id.is_some());
    let resolved: Vec<[u64; 4]> = old.resolved.iter().map(|&span| span.into()).collect();
    assert_eq!(resolved, [[6, 2, 9, 3]], "a3, delivered past the watermark");

    // Resumed: the old file's line 2 only (a3 was delivered), the new one
    // past b1.
    let source = LineSource::resume(&path, &checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let again: Vec<_> = source
        .map(|i| (i.payload.text, i.payload.position.sequence))
        .collect()
        .await;
    assert_eq!(again, [("a2".to_owned(), 2)]);
}

#[tokio::test(start_paused = true)]
async fn a_rotated_files_checkpoint_is_not_applied_to_the_new_file_at_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let checkpoint = dir.path().join("app.checkpoint.json");
    std::fs::write(&path, "head\nold\n").unwrap();
    let run = start(&path, &checkpoint).await;
    run.until(2).await;
    run.stop().await;
    // A new file whose start is the old one's: the fingerprint alone would
    // take it for the old file grown.
    std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    std::fs::write(&path, "head\nold\nnew\n").unwrap();
    let source = LineSource::resume(&path, &checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let texts: Vec<_> = source.map(|i| i.payload.text).collect().await;
    assert_eq!(texts, ["head", "old", "new"], "the new file from its start");
}

#[tokio::test(start_paused = true)]
async fn a_checkpointed_file_gone_from_its_directory_is_an_error_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let checkpoint = dir.path().join("app.checkpoint.json");
    std::fs::write(&path, "1\n").unwrap();
    let run = start(&path, &checkpoint).await;
    run.until(1).await;
    run.stop().await;
    // Replaced: a new file renamed over it (another inode, the old one
    // deleted).
    let new = dir.path().join("new.log");
    std::fs::write(&new, "2\n").unwrap();
    std::fs::rename(&new, &path).unwrap();
    let error = LineSource::resume(&path, &checkpoint, SourceOptions::default())
        .await
        .unwrap_err();
    let SourceError::Checkpoint(CheckpointError::Gone { file_id, .. }) = &error else {
        panic!("not a gone error: {error}");
    };
    assert!(file_id.is_some());
    let message = error.to_string();
    assert!(message.contains("app.checkpoint.json"), "{message}");
    assert!(message.contains("remove the checkpoint"), "{message}");
}
