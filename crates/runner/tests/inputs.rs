//! The inputs people have, through the binary: globs, directories, gzip
//! and zstd files, and a followed file that grows and is rotated; each
//! file checkpointed on its own, and a restart resuming each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use common::{MockApi, eventually, report, signal, sluice, wait_bounded};

/// `count` JSON lines naming themselves `stream`/`first..`.
fn lines(stream: &str, first: u64, count: u64) -> String {
    (first..first + count)
        .map(|n| format!("{{\"stream\":\"{stream}\",\"sequence\":{n}}}\n"))
        .collect()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn gzip(path: &Path, text: &str) {
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), Default::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap();
}

fn zstd(path: &Path, text: &str) {
    std::fs::write(path, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
}

/// How many times the API accepted each (stream, sequence).
fn accepted(api: &MockApi) -> BTreeMap<(String, u64), u64> {
    let mut counts = BTreeMap::new();
    for (stream, partitions) in &api.ledger().streams {
        for deliveries in partitions.values() {
            for sequence in &deliveries.delivered {
                *counts.entry((stream.clone(), *sequence)).or_default() += 1;
            }
        }
    }
    counts
}

/// Every (stream, sequence) of `streams` (name, last sequence), once.
fn each_once(streams: &[(&str, u64)]) -> BTreeMap<(String, u64), u64> {
    streams
        .iter()
        .flat_map(|(stream, last)| (1..=*last).map(move |n| ((stream.to_string(), n), 1)))
        .collect()
}

/// A fast, unreliable API: no quota, 10 % failures.
fn api() -> MockApi {
    MockApi::start(&[
        "--rate-limit",
        "none",
        "--failure-rate",
        "0.1",
        "--latency",
        "0ms..2ms",
    ])
}

/// `sluice run INPUTS... --profile json --checkpoint STATE` into `api`.
fn run(dir: &Path, api: &MockApi, inputs: &[&str], extra: &[&str]) -> Child {
    sluice()
        .current_dir(dir)
        .arg("run")
        .args(inputs)
        .args([
            "--profile",
            "json",
            "--checkpoint",
            "state",
            "--http-url",
            &api.url(),
        ])
        .args(["--rate-limit", "none", "--max-attempts", "50", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: Child) -> Output {
    let output = wait_bounded(child, Duration::from_secs(60));
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn globs_directories_and_compressed_files_are_delivered_once_and_resumed_each() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("data/a.ndjson"), &lines("a", 1, 10));
    write(&dir.join("data/b.ndjson"), &lines("b", 1, 10));
    write(&dir.join("data/skipped.txt"), "not matched by the glob\n");
    write(&dir.join("logs/c.ndjson"), &lines("c", 1, 10));
    write(&dir.join("logs/deeper/d.ndjson"), &lines("d", 1, 10));
    gzip(&dir.join("e.ndjson.gz"), &lines("e", 1, 10));
    zstd(&dir.join("f.ndjson.zst"), &lines("f", 1, 10));
    let inputs = ["data/*.ndjson", "logs", "e.ndjson.gz", "f.ndjson.zst"];
    let api = api();

    let first = report(&finished(run(dir, &api, &inputs, &["--recursive"])));
    assert_eq!(first["delivered"], 60, "{first}");
    assert_eq!(
        accepted(&api),
        each_once(&[
            ("a", 10),
            ("b", 10),
            ("c", 10),
            ("d", 10),
            ("e", 10),
            ("f", 10)
        ])
    );
    assert_eq!(first["checkpoints"].as_array().unwrap().len(), 6, "{first}");
    assert_eq!(checkpoints(dir).len(), 6, "one checkpoint per file");

    // More lines in two of the files: a restart sends only those.
    append(&dir.join("data/a.ndjson"), &lines("a", 11, 5));
    append(&dir.join("logs/deeper/d.ndjson"), &lines("d", 11, 5));
    let second = report(&finished(run(dir, &api, &inputs, &["--recursive"])));
    assert_eq!(second["delivered"], 10, "{second}");
    assert_eq!(
        accepted(&api),
        each_once(&[
            ("a", 15),
            ("b", 10),
            ("c", 10),
            ("d", 15),
            ("e", 10),
            ("f", 10)
        ])
    );
}

#[test]
fn a_glob_or_directory_that_matches_nothing_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let api = api();
    for input in ["*.ndjson", "empty"] {
        let output = wait_bounded(
            run(tmp.path(), &api, &[input], &[]),
            Duration::from_secs(30),
        );
        assert_eq!(output.status.code(), Some(2), "{input}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(input), "{input}: {stderr}");
    }
    assert_eq!(api.counts().calls, 0);
}

#[test]
fn a_followed_file_that_grows_and_is_rotated_is_delivered_once_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = dir.join("app.ndjson");
    write(&log, &lines("app", 1, 10));
    let api = api();
    let delivered = |api: &MockApi| api.counts().records_delivered;

    let child = run(dir, &api, &["app.ndjson"], &["--follow"]);
    eventually(Duration::from_secs(30), "the first lines", || {
        delivered(&api) == 10
    });
    append(&log, &lines("app", 11, 10));
    eventually(Duration::from_secs(30), "the appended lines", || {
        delivered(&api) == 20
    });
    // Rotation as logrotate does it: renamed away, written to a little
    // more by a writer still holding it, then a new file at the path.
    std::fs::rename(&log, dir.join("app.ndjson.1")).unwrap();
    append(&dir.join("app.ndjson.1"), &lines("app", 21, 5));
    write(&log, &lines("app", 26, 10));
    eventually(Duration::from_secs(30), "the rotated lines", || {
        delivered(&api) == 35
    });
    signal(&child, "-TERM");
    let output = wait_bounded(child, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(3), "a signal stopped it");
    assert_eq!(report(&output)["handed_back"], 0);

    // A restart resumes the new file where it stopped.
    append(&log, &lines("app", 36, 5));
    let child = run(dir, &api, &["app.ndjson"], &["--follow"]);
    eventually(
        Duration::from_secs(30),
        "the lines after the restart",
        || delivered(&api) == 40,
    );
    signal(&child, "-TERM");
    let output = wait_bounded(child, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(accepted(&api), each_once(&[("app", 40)]));
}

#[test]
fn two_files_of_one_name_in_two_folders_give_every_record_its_own_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The same name and the same content: only the folders differ.
    write(&dir.join("a/orders.ndjson"), &lines("orders", 1, 10));
    write(&dir.join("b/orders.ndjson"), &lines("orders", 1, 10));
    let api = api();
    for batch in ["1", "4"] {
        let state = dir.join("state");
        let _ = std::fs::remove_dir_all(&state);
        let before = api.ledger().record_keys;
        finished(run(
            dir,
            &api,
            &["a/orders.ndjson", "b/orders.ndjson"],
            &["--batch-max", batch],
        ));
        let after = api.ledger().record_keys;
        let new: BTreeMap<&String, u64> = after
            .iter()
            .map(|(key, count)| (key, count - before.get(key).copied().unwrap_or(0)))
            .filter(|(_, count)| *count > 0)
            .collect();
        // 20 records, 20 keys, each delivered once: none dropped as a
        // replay of the other file's.
        assert_eq!(new.len(), 20, "--batch-max {batch}: {new:?}");
        assert!(new.values().all(|&count| count == 1), "{new:?}");
        if batch == "4" {
            // Each record keeps its key whatever batch carries it.
            assert!(before.keys().all(|key| after.contains_key(key)));
            assert_eq!(after.len(), 20, "the same records, the same keys");
        }
    }
}

#[test]
fn a_second_run_on_a_checkpoint_in_use_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("log.ndjson"), &lines("log", 1, 5));
    let api = api();
    let first = run(dir, &api, &["log.ndjson"], &["--follow"]);
    eventually(Duration::from_secs(30), "the first run delivers", || {
        api.counts().records_delivered >= 5
    });
    let second = wait_bounded(
        run(dir, &api, &["log.ndjson"], &[]),
        Duration::from_secs(30),
    );
    assert_eq!(second.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another sluice run"), "{stderr}");
    signal(&first, "-TERM");
    let output = wait_bounded(first, Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(3));
}

#[test]
fn a_read_failure_names_the_file_and_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let path = dir.join("broken.ndjson.gz");
    gzip(&path, &lines("broken", 1, 2_000));
    // Corrupt the compressed stream after its start.
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 16] {
        *byte ^= 0xff;
    }
    std::fs::write(&path, bytes).unwrap();
    let api = api();
    let output = wait_bounded(
        run(dir, &api, &["broken.ndjson.gz"], &[]),
        Duration::from_secs(60),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reading failed") && stderr.contains("broken.ndjson.gz"),
        "{stderr}"
    );
    let report = report(&output);
    assert_eq!(report["read_failures"].as_array().unwrap().len(), 1);
}
