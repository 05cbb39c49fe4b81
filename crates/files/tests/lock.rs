//! A checkpoint is held by one run at a time: a second source on it is
//! refused with a typed error naming it, until the first is done.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use sluice_files::{
    CheckpointError, CheckpointLock, FilesError, FilesSettings, LineSource, SourceError,
    SourceOptions,
};
use sluice_processor::SourceConnector;

use common::{context, deliver, run_built};

#[tokio::test]
async fn a_second_source_on_a_held_checkpoint_is_refused_until_the_first_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("held.jsonl");
    std::fs::write(&input, "{\"n\":1}\n{\"n\":2}\n").unwrap();
    let checkpoint = dir.path().join("held.checkpoint.json");

    let first = LineSource::resume(&input, &checkpoint, SourceOptions::default())
        .await
        .unwrap();
    let error = LineSource::resume(&input, &checkpoint, SourceOptions::default())
        .await
        .unwrap_err();
    let SourceError::Checkpoint(CheckpointError::InUse {
        checkpoint: named,
        pid,
    }) = &error
    else {
        panic!("not an in-use error: {error}");
    };
    assert_eq!(named, &checkpoint);
    assert_eq!(*pid, Some(std::process::id()), "the holder's pid");
    let message = error.to_string();
    assert!(message.contains("held.checkpoint.json"), "{message}");
    assert!(
        message.contains("in use by another sluice run"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    assert!(CheckpointLock::path_of(&checkpoint).exists());

    // Once the first source and everything holding its progress is gone,
    // the checkpoint is free.
    let (lines, _) = deliver(first).await;
    assert_eq!(lines.len(), 2);
    let again = LineSource::resume(&input, &checkpoint, SourceOptions::default())
        .await
        .unwrap();
    drop(again);
}

#[tokio::test]
async fn the_connector_refuses_a_held_checkpoint_with_a_files_error_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.jsonl");
    std::fs::write(&input, "{\"n\":1}\n").unwrap();
    let checkpoint = dir.path().join("orders.checkpoint.json");
    let inputs = [input.display().to_string()];
    let settings = FilesSettings::default();

    let first = settings
        .build(&context(&inputs, Some(&checkpoint)))
        .await
        .unwrap();
    let Err(error) = settings.build(&context(&inputs, Some(&checkpoint))).await else {
        panic!("a second build on the same checkpoint succeeded");
    };
    let files = error.downcast_ref::<FilesError>().expect("a FilesError");
    assert!(files.is_checkpoint_in_use(), "{files}");

    // The first finishes (its final checkpoint saved): the next run works.
    let (records, finished) = run_built(first).await;
    assert_eq!(records.len(), 1);
    assert_eq!(finished.checkpoints[0].lines, 1);
    let next = settings
        .build(&context(&inputs, Some(&checkpoint)))
        .await
        .unwrap();
    let (records, _) = run_built(next).await;
    assert!(records.is_empty(), "resumed at the end");
}
