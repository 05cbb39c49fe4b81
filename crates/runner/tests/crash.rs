//! `kill -9` at ten moments of a batched, parallel run against an API that
//! fails a fifth of its calls: nothing lost, every record that reached the
//! API twice did so under its one key, and the duplicates stay within
//! what was in flight or resolved in the checkpoint's last coalescing
//! interval.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{MockApi, sluice, wait_bounded};

const RECORDS: u64 = 5_000;
const BATCH: u64 = 10;
const IN_FLIGHT: u64 = 4;
/// The checkpoint's coalescing interval (sluice-files'
/// `DEFAULT_CHECKPOINT_INTERVAL`), plus this test's polling period.
const COALESCING_AND_POLL: Duration = Duration::from_millis(200 + 100);

fn run(dir: &Path, api: &MockApi) -> Child {
    sluice()
        .current_dir(dir)
        .args(["run", "records.ndjson", "--profile", "json"])
        .args([
            "--partition-field",
            "partition",
            "--checkpoint",
            "records.checkpoint",
        ])
        .args(["--batch-max", &BATCH.to_string()])
        .args(["--max-in-flight", &IN_FLIGHT.to_string()])
        .args(["--rate-limit", "none", "--max-attempts", "50", "--json"])
        .args(["--http-url", &api.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Deliveries per record identity (stream, partition, sequence).
fn deliveries(api: &MockApi) -> BTreeMap<(String, u64, u64), u64> {
    let mut counts = BTreeMap::new();
    for (stream, partitions) in api.ledger().streams {
        for (partition, delivered) in partitions {
            for sequence in delivered.delivered {
                *counts
                    .entry((stream.clone(), partition, sequence))
                    .or_default() += 1;
            }
        }
    }
    counts
}

#[test]
fn kill_9_at_ten_moments_loses_nothing_and_repeats_only_keys_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let lines: String = (1..=RECORDS)
        .map(|n| {
            format!(
                "{{\"stream\":\"crash\",\"partition\":{},\"sequence\":{n}}}\n",
                n % 8
            )
        })
        .collect();
    std::fs::write(dir.join("records.ndjson"), lines).unwrap();
    // Slow enough (50 ms to 100 ms a call: about 400 records/s) that ten
    // kills come well before the end of the input.
    let api = MockApi::start(&[
        "--rate-limit",
        "none",
        "--failure-rate",
        "0.2",
        "--latency",
        "50ms..100ms",
        "--seed",
        "19",
    ]);
    // The moments: a fixed pseudo-random sequence (an LCG), 150 to 650 ms
    // after each run has delivered its first record.
    let mut state: u64 = 0x5eed;
    let mut bound = 0;
    for kill in 0..10 {
        let mut child = run(dir, &api);
        let start = api.counts().records_delivered;
        let started = Instant::now();
        while api.counts().records_delivered == start {
            assert!(
                child.try_wait().unwrap().is_none(),
                "run {kill} ended early"
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "run {kill} delivers nothing"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = Duration::from_millis(150 + (state >> 33) % 500);
        // What the API took, polled every 100 ms, to bound what the
        // checkpoint may not yet have when the kill comes.
        let mut seen: Vec<(Instant, u64)> = Vec::new();
        let until = Instant::now() + wait;
        while Instant::now() < until {
            seen.push((Instant::now(), api.counts().records_delivered));
            std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
        }
        common::signal(&child, "-9");
        let killed_at = Instant::now();
        let _ = child.wait();
        let at_kill = api.counts().records_delivered;
        let before = seen
            .iter()
            .rev()
            .find(|(when, _)| killed_at.duration_since(*when) >= COALESCING_AND_POLL)
            .map_or(start, |(_, delivered)| *delivered);
        // In flight: IN_FLIGHT calls of BATCH records; resolved lately:
        // what the API took in the last interval before the kill.
        bound += IN_FLIGHT * BATCH + (at_kill - before);
    }
    let last = wait_bounded(run(dir, &api), Duration::from_secs(120));
    assert_eq!(
        last.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );

    let counts = deliveries(&api);
    let lost: Vec<u64> = (1..=RECORDS)
        .filter(|n| !counts.contains_key(&("crash".to_owned(), n % 8, *n)))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    let duplicates: u64 = counts.values().map(|n| n - 1).sum();
    // Each record reached the API under one key, however often it came.
    let keys = api.ledger().record_keys;
    assert_eq!(keys.len() as u64, RECORDS, "one key per record");
    assert_eq!(keys.values().sum::<u64>(), RECORDS + duplicates);
    println!(
        "{duplicates} duplicates after 10 kills; bound from in flight and the last interval: {bound}"
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, bound {bound}"
    );
}
