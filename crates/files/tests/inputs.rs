//! The inputs a user names: globs, directories (recursive or not), files
//! named twice, and globs or directories that match nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use futures::StreamExt;
use sluice_files::{FilesError, FilesSettings, InputError};
use sluice_processor::{ConnectorError, SourceConnector};

use common::context;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A tree of files, each holding one line: its own name.
fn tree(dir: &Path, names: &[&str]) {
    for name in names {
        write(&dir.join(name), &format!("{name}\n"));
    }
}

fn named(dir: &Path, input: &str) -> String {
    dir.join(input).to_str().unwrap().to_owned()
}

/// The texts of every stream's records, stream by stream, in order.
async fn read(settings: &FilesSettings, inputs: &[String]) -> Vec<Vec<String>> {
    let source = settings.build(&context(inputs, None)).await.unwrap();
    let mut texts = Vec::new();
    for stream in source.streams {
        let records: Vec<_> = stream.map(|i| i.payload.text).collect().await;
        texts.push(records);
    }
    texts
}

async fn refused(settings: &FilesSettings, inputs: &[String]) -> ConnectorError {
    settings.build(&context(inputs, None)).await.unwrap_err()
}

fn input_error(error: &ConnectorError) -> &InputError {
    match error.downcast_ref::<FilesError>() {
        Some(FilesError::Input(error)) => error,
        _ => panic!("not an input error: {error}"),
    }
}

#[tokio::test]
async fn a_glob_reads_the_files_it_matches_sorted_by_path() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &["b.ndjson", "a.ndjson", "c.txt", "sub/d.ndjson"],
    );
    let glob = named(dir.path(), "*.ndjson");
    let texts = read(&FilesSettings::default(), &[glob]).await;
    assert_eq!(texts, [["a.ndjson"], ["b.ndjson"]]);

    let deep = named(dir.path(), "**/*.ndjson");
    let texts = read(&FilesSettings::default(), &[deep]).await;
    assert_eq!(texts, [["a.ndjson"], ["b.ndjson"], ["sub/d.ndjson"]]);
}

#[tokio::test]
async fn a_directory_reads_its_regular_files_and_its_subdirectories_only_when_recursive() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[
            "z.log",
            "m.ndjson",
            ".hidden",
            "sub/x.ndjson",
            "sub/deeper/y.ndjson",
            ".git/k",
        ],
    );
    let input = named(dir.path(), "");
    let flat = read(&FilesSettings::default(), std::slice::from_ref(&input)).await;
    assert_eq!(flat, [["m.ndjson"], ["z.log"]], "hidden files left out");

    let settings = FilesSettings {
        recursive: true,
        ..FilesSettings::default()
    };
    let deep = read(&settings, &[input]).await;
    assert_eq!(
        deep,
        [
            ["m.ndjson"],
            ["sub/deeper/y.ndjson"],
            ["sub/x.ndjson"],
            ["z.log"]
        ]
    );
}

/// The two spellings a refusal names.
fn named_twice(error: &ConnectorError) -> (String, String) {
    match input_error(error) {
        InputError::NamedTwice { first, second, .. } => (first.clone(), second.clone()),
        other => panic!("not a file named twice: {other}"),
    }
}

#[tokio::test]
async fn a_file_named_twice_is_refused_naming_both_spellings() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["a.ndjson", "b.ndjson"]);
    let settings = FilesSettings::default();
    // By name and by a glob, by two spellings, by name and by its
    // directory.
    for (first, second, again) in [
        ("a.ndjson", "*.ndjson", "a.ndjson"),
        ("a.ndjson", "./a.ndjson", "./a.ndjson"),
        ("b.ndjson", "", "b.ndjson"),
    ] {
        let inputs = [named(dir.path(), first), named(dir.path(), second)];
        let error = refused(&settings, &inputs).await;
        let (one, two) = named_twice(&error);
        assert_eq!(one, named(dir.path(), first));
        assert_eq!(two, named(dir.path(), again), "{error}");
        let message = error.to_string();
        assert!(
            message.contains(&one) && message.contains(&two),
            "{message}"
        );
    }
    // Each once: read.
    let inputs = [named(dir.path(), "a.ndjson"), named(dir.path(), "b.ndjson")];
    assert_eq!(read(&settings, &inputs).await, [["a.ndjson"], ["b.ndjson"]]);
}

#[cfg(unix)]
#[tokio::test]
async fn a_hard_link_to_a_file_named_is_the_same_file_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["orders.ndjson"]);
    std::fs::hard_link(
        dir.path().join("orders.ndjson"),
        dir.path().join("linked.ndjson"),
    )
    .unwrap();
    let inputs = [
        named(dir.path(), "orders.ndjson"),
        named(dir.path(), "linked.ndjson"),
    ];
    let error = refused(&FilesSettings::default(), &inputs).await;
    let (one, two) = named_twice(&error);
    assert_eq!((one, two), (inputs[0].clone(), inputs[1].clone()));
    assert!(error.to_string().contains("hard link"), "{error}");
}

#[tokio::test]
async fn a_glob_or_directory_that_matches_nothing_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["a.ndjson", "sub/b.ndjson"]);
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let settings = FilesSettings::default();

    let glob = named(dir.path(), "*.csv");
    let error = refused(&settings, std::slice::from_ref(&glob)).await;
    assert!(
        matches!(input_error(&error), InputError::NothingMatched { input, .. } if *input == glob)
    );
    assert!(error.to_string().contains("*.csv"), "{error}");
    assert!(error.to_string().contains("quoted"), "{error}");

    let empty = named(dir.path(), "empty");
    let error = refused(&settings, &[named(dir.path(), "a.ndjson"), empty]).await;
    assert!(matches!(
        input_error(&error),
        InputError::NothingMatched { .. }
    ));
    assert!(error.to_string().contains("empty"), "{error}");

    // Only subdirectories: a hint to recurse.
    let sub_only = dir.path().join("nested");
    tree(&sub_only, &["inner/c.ndjson"]);
    let error = refused(&settings, &[sub_only.to_str().unwrap().to_owned()]).await;
    assert!(error.to_string().contains("--recursive"), "{error}");
    let recursive = FilesSettings {
        recursive: true,
        ..FilesSettings::default()
    };
    let texts = read(&recursive, &[sub_only.to_str().unwrap().to_owned()]).await;
    assert_eq!(texts, [["inner/c.ndjson"]]);

    let error = refused(&recursive, &[named(dir.path(), "empty")]).await;
    assert!(
        error.to_string().contains("subdirectories hold no"),
        "{error}"
    );
}

#[tokio::test]
async fn a_malformed_glob_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let glob = named(dir.path(), "[a.ndjson");
    let error = refused(&FilesSettings::default(), &[glob]).await;
    assert!(matches!(input_error(&error), InputError::Pattern { .. }));
    assert!(error.to_string().contains("[a.ndjson"), "{error}");
}

#[tokio::test]
async fn a_path_that_exists_is_read_even_if_it_looks_like_a_glob() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["odd[1].ndjson", "odd1.ndjson"]);
    let texts = read(
        &FilesSettings::default(),
        &[named(dir.path(), "odd[1].ndjson")],
    )
    .await;
    assert_eq!(texts, [["odd[1].ndjson"]]);

    // One file: its checkpoint is the file named.
    let checkpoint = dir.path().join("odd.checkpoint.json");
    let inputs = [named(dir.path(), "odd[1].ndjson")];
    let source = FilesSettings::default()
        .build(&context(&inputs, Some(&checkpoint)))
        .await
        .unwrap();
    common::run_built(source).await;
    assert!(checkpoint.is_file());
}

#[tokio::test]
async fn a_glob_or_a_directory_is_checkpointed_in_a_directory_even_for_one_file() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &["data/only.ndjson"]);
    let checkpoints = dir.path().join("checkpoints");
    for input in ["data/*.ndjson", "data"] {
        let inputs = [named(dir.path(), input)];
        let source = FilesSettings::default()
            .build(&context(&inputs, Some(&checkpoints)))
            .await
            .unwrap();
        let (_, finished) = common::run_built(source).await;
        assert_eq!(finished.checkpoints.len(), 1);
        assert!(checkpoints.is_dir(), "{input}");
        let names: Vec<_> = std::fs::read_dir(&checkpoints)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| !name.ends_with(".lock"))
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with("only-"), "{names:?}");
    }
}
