//! The `files` connector: settings from flags and config files, inputs
//! opened with their checkpoints (a file for one, a directory for
//! several), the checkpoints saved at the finish, and refusals that name
//! what to do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use sluice_files::{Checkpoint, FilesError, FilesSettings};
use sluice_processor::SettingError;
use sluice_processor::{ConnectorError, RawRecord, SourceConnector};

use common::{Collect, config, context, keep, run_built};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn files_error(error: &ConnectorError) -> &FilesError {
    error.downcast_ref::<FilesError>().expect("a FilesError")
}

fn texts(records: &[RawRecord]) -> Vec<&str> {
    records.iter().map(|record| record.text.as_str()).collect()
}

#[test]
fn the_connector_is_files_and_reads_paths() {
    assert_eq!(<FilesSettings as SourceConnector>::NAME, "files");
    assert!(<FilesSettings as SourceConnector>::SCHEMES.is_empty());
}

#[tokio::test]
async fn one_input_is_checkpointed_in_the_file_named_and_resumed_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "orders.ndjson", "a\nb\n");
    let checkpoint = dir.path().join("orders.checkpoint.json");
    let inputs = [input.to_str().unwrap()];
    let settings = FilesSettings::default();

    let source = settings
        .build(&context(&inputs, Some(&checkpoint)))
        .await
        .unwrap();
    let (records, finished) = run_built(source).await;
    assert_eq!(texts(&records), ["a", "b"]);
    let canonical = std::fs::canonicalize(&input).unwrap();
    assert_eq!(finished.checkpoints.len(), 1);
    assert_eq!(finished.checkpoints[0].input, canonical);
    assert_eq!(
        (
            finished.checkpoints[0].offset,
            finished.checkpoints[0].lines
        ),
        (4, 2)
    );
    let saved = Checkpoint::load(&checkpoint).await.unwrap().unwrap();
    assert_eq!((saved.offset, saved.lines), (4, 2));

    common::append(&input, "c\n");
    let source = settings
        .build(&context(&inputs, Some(&checkpoint)))
        .await
        .unwrap();
    let (records, finished) = run_built(source).await;
    assert_eq!(texts(&records), ["c"], "only what was added");
    assert_eq!(records[0].position.sequence, 3);
    assert_eq!(finished.checkpoints[0].offset, 6);
}

#[tokio::test]
async fn several_inputs_are_checkpointed_in_a_directory_one_file_each() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), "first.ndjson", "1\n2\n");
    let second = write(dir.path(), "second.ndjson", "3\n");
    let checkpoints = dir.path().join("checkpoints");
    let inputs = [first.to_str().unwrap(), second.to_str().unwrap()];

    let source = FilesSettings::default()
        .build(&context(&inputs, Some(&checkpoints)))
        .await
        .unwrap();
    assert_eq!(source.streams.len(), 2);
    let (records, finished) = run_built(source).await;
    assert_eq!(texts(&records), ["1", "2", "3"]);
    assert_eq!(records[2].position.stream.as_str(), "second");
    assert_eq!(finished.checkpoints.len(), 2);

    let mut names: Vec<_> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    // Each checkpoint has its lock file beside it.
    let locks: Vec<_> = names.iter().filter(|n| n.ends_with(".lock")).collect();
    assert_eq!(locks.len(), 2, "{names:?}");
    names.retain(|name| !name.ends_with(".lock"));
    let canonical = std::fs::canonicalize(&first).unwrap();
    let hash = blake3::hash(canonical.to_str().unwrap().as_bytes()).to_hex();
    assert_eq!(names[0], format!("first-{}.checkpoint.json", &hash[..16]));
    assert!(names[1].starts_with("second-"), "{names:?}");
    assert!(names.iter().all(|name| name.ends_with(".checkpoint.json")));
    let saved = Checkpoint::load(checkpoints.join(&names[0]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((saved.path, saved.offset), (canonical, 4));

    // Resumed: nothing left.
    let source = FilesSettings::default()
        .build(&context(&inputs, Some(&checkpoints)))
        .await
        .unwrap();
    let (records, _) = run_built(source).await;
    assert!(records.is_empty());
}

#[tokio::test]
async fn without_checkpoints_nothing_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "plain.ndjson", "x\n");
    let source = FilesSettings::default()
        .build(&context(&[input.to_str().unwrap()], None))
        .await
        .unwrap();
    let (records, finished) = run_built(source).await;
    assert_eq!(texts(&records), ["x"]);
    assert!(finished.checkpoints.is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn the_settings_name_the_stream_and_bound_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "orders.ndjson", "short\nmuch too long\n");
    let settings = FilesSettings {
        stream: Some("named".to_owned()),
        max_line_bytes: Some(5),
        ..FilesSettings::default()
    };
    let source = settings
        .build(&context(&[input.to_str().unwrap()], None))
        .await
        .unwrap();
    let (records, _) = run_built(source).await;
    assert!(
        records
            .iter()
            .all(|r| r.position.stream.as_str() == "named")
    );
    assert_eq!(texts(&records), ["short", "much "]);
    assert_eq!(records[1].cut, Some(14));
}

#[tokio::test]
async fn stdin_is_read_once_and_without_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "file.ndjson", "x\n");
    let settings = FilesSettings::default();

    let error = settings
        .build(&context(&["-", "-"], None))
        .await
        .unwrap_err();
    assert!(matches!(files_error(&error), FilesError::StdinTwice));
    assert!(error.to_string().contains("only once"), "{error}");

    let checkpoint = dir.path().join("c.json");
    let inputs = [input.to_str().unwrap(), "-"];
    let error = settings
        .build(&context(&inputs, Some(&checkpoint)))
        .await
        .unwrap_err();
    assert!(matches!(files_error(&error), FilesError::StdinCheckpoint));
    assert!(error.to_string().contains("no checkpoint"), "{error}");

    let error = settings
        .build(&context::<&str>(&[], None))
        .await
        .unwrap_err();
    assert!(matches!(files_error(&error), FilesError::NoInput));

    let source = settings.build(&context(&["-"], None)).await.unwrap();
    assert_eq!(source.streams.len(), 1);
}

#[tokio::test]
async fn a_missing_input_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.ndjson");
    let error = FilesSettings::default()
        .build(&context(&[absent.to_str().unwrap()], None))
        .await
        .unwrap_err();
    assert!(matches!(files_error(&error), FilesError::Source(_)));
    assert!(error.to_string().contains("absent.ndjson"), "{error}");
}

#[tokio::test]
async fn a_checkpoint_that_cannot_be_written_fails_the_finish_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "orders.ndjson", "a\n");
    let checkpoint = dir.path().join("orders.checkpoint.json");
    let source = FilesSettings::default()
        .build(&context(&[input.to_str().unwrap()], Some(&checkpoint)))
        .await
        .unwrap();
    // A directory in the checkpoint's place: the save's rename fails.
    std::fs::create_dir(&checkpoint).unwrap();
    let processor =
        sluice_processor::StreamProcessor::new(keep, Collect::default(), config()).unwrap();
    processor.start(source.streams).finish().await;
    let error = source.finish.finish().await.unwrap_err();
    assert!(matches!(files_error(&error), FilesError::NotSaved(errors) if errors.len() == 1));
    assert!(
        error.to_string().contains("orders.checkpoint.json"),
        "{error}"
    );
}

#[tokio::test]
async fn a_checkpoint_directory_that_cannot_be_made_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), "a.ndjson", "1\n");
    let second = write(dir.path(), "b.ndjson", "2\n");
    let blocked = write(dir.path(), "not-a-directory", "");
    let inputs = [first.to_str().unwrap(), second.to_str().unwrap()];
    let error = FilesSettings::default()
        .build(&context(&inputs, Some(&blocked)))
        .await
        .unwrap_err();
    assert!(matches!(
        files_error(&error),
        FilesError::CheckpointDirectory { .. }
    ));
    assert!(error.to_string().contains("not-a-directory"), "{error}");
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    files: FilesSettings,
}

#[test]
fn flags_parse_to_settings_that_serialize_to_the_flags_given() {
    let cli = Cli::try_parse_from(["sluice", "--max-line-bytes", "64"]).unwrap();
    assert_eq!(cli.files.max_line_bytes, Some(64));
    assert_eq!(
        serde_json::to_value(&cli.files).unwrap(),
        serde_json::json!({ "max_line_bytes": 64 })
    );
    let cli = Cli::try_parse_from(["sluice", "--recursive", "--stream", "s"]).unwrap();
    assert_eq!(
        serde_json::to_value(&cli.files).unwrap(),
        serde_json::json!({ "recursive": true, "stream": "s" })
    );
    let none = Cli::try_parse_from(["sluice"]).unwrap();
    assert_eq!(none.files, FilesSettings::default());
    assert_eq!(serde_json::to_string(&none.files).unwrap(), "{}");

    let error = Cli::try_parse_from(["sluice", "--max-line-bytes", "0"])
        .err()
        .unwrap();
    assert!(error.to_string().contains("--max-line-bytes"), "{error}");
    let too_big = (sluice_files::MAX_LINE_BYTES_LIMIT + 1).to_string();
    assert!(Cli::try_parse_from(["sluice", "--max-line-bytes", &too_big]).is_err());
}

#[test]
fn the_config_file_takes_the_same_keys_and_refuses_others() {
    let settings: FilesSettings =
        toml::from_str("stream = \"orders\"\nmax_line_bytes = 1024\nrecursive = true").unwrap();
    assert_eq!(settings.stream.as_deref(), Some("orders"));
    assert!(settings.recursive);
    let options = settings.check().unwrap();
    assert_eq!(options.max_line_bytes, 1024);
    assert_eq!(options.stream.unwrap().as_str(), "orders");

    let error = toml::from_str::<FilesSettings>("max_lines = 3").unwrap_err();
    assert!(error.to_string().contains("max_lines"), "{error}");
}

#[test]
fn defaults_are_the_documented_ones() {
    let options = FilesSettings::default().check().unwrap();
    assert_eq!(options.max_line_bytes, sluice_files::DEFAULT_MAX_LINE_BYTES);
    assert_eq!(options.stream, None);
    let largest = FilesSettings {
        max_line_bytes: Some(sluice_files::MAX_LINE_BYTES_LIMIT),
        ..FilesSettings::default()
    };
    assert_eq!(
        largest.check().unwrap().max_line_bytes as u64,
        sluice_files::MAX_LINE_BYTES_LIMIT
    );
}

#[test]
fn values_out_of_bounds_are_errors_naming_the_key_and_the_flag() {
    let zero = FilesSettings {
        max_line_bytes: Some(0),
        ..FilesSettings::default()
    };
    let error = zero.check().unwrap_err();
    assert_eq!(
        error,
        SettingError::new(
            "files.max_line_bytes",
            "--max-line-bytes",
            format!("must be 1 to {}, got 0", sluice_files::MAX_LINE_BYTES_LIMIT),
        )
    );
    assert!(
        error
            .to_string()
            .starts_with("files.max_line_bytes (--max-line-bytes): must be 1 to"),
        "{error}"
    );
    let over = FilesSettings {
        max_line_bytes: Some(sluice_files::MAX_LINE_BYTES_LIMIT + 1),
        ..FilesSettings::default()
    };
    assert!(over.check().is_err());

    let bad_stream = FilesSettings {
        stream: Some(String::new()),
        ..FilesSettings::default()
    };
    let error = bad_stream.check().unwrap_err();
    assert_eq!((error.key, error.flag), ("files.stream", "--stream"));
    assert!(
        error.to_string().starts_with("files.stream (--stream): "),
        "{error}"
    );
}

#[tokio::test]
async fn each_input_tells_how_far_it_is_read_and_where_its_checkpoint_stands() {
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), "plain.ndjson", "a\nb\n\n");
    let squeezed = dir.path().join("squeezed.ndjson.gz");
    let mut gz = async_compression::tokio::write::GzipEncoder::new(Vec::new());
    tokio::io::AsyncWriteExt::write_all(&mut gz, b"c\nd\n")
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut gz).await.unwrap();
    std::fs::write(&squeezed, gz.into_inner()).unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let inputs = [plain.to_str().unwrap(), squeezed.to_str().unwrap()];
    let context = context(&inputs, Some(&checkpoints));
    let progress = context.progress.clone();
    let source = FilesSettings::default().build(&context).await.unwrap();
    let (records, _) = run_built(source).await;
    assert_eq!(records.len(), 4);
    let inputs = progress.snapshot();
    let named = |path: &Path| {
        let canonical = std::fs::canonicalize(path).unwrap();
        inputs
            .iter()
            .find(|input| Path::new(&input.name) == canonical)
            .unwrap_or_else(|| panic!("{canonical:?} in {inputs:?}"))
            .clone()
    };
    let plain = named(&plain);
    // Read to its end, blank line included; checkpointed there.
    assert_eq!((plain.bytes_read, plain.size_bytes), (5, Some(5)));
    assert_eq!(plain.share_read(), Some(1.0));
    assert_eq!(plain.checkpoint_offset, Some(5));
    assert!(plain.checkpoint_written_unix_seconds.is_some());
    // A compressed file's offsets count decompressed bytes: no size.
    let squeezed = named(&squeezed);
    assert_eq!((squeezed.bytes_read, squeezed.size_bytes), (4, None));
    assert_eq!(squeezed.checkpoint_offset, Some(4));
}
